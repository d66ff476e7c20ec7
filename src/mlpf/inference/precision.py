"""The arithmetic a trained model runs inference in: fp32, int8 (CPU), bf16 or fp16 (GPU).

- `fp32`: the model as trained.
- `int8`: dynamic quantisation of the linear layers of the backbone stacks (weights stored as int8 per tensor,
  activations quantised per batch on the fly; torch.ao.quantization.quantize_dynamic with the fbgemm kernels,
  which use the VNNI instructions of current x86 CPUs). CPU only. The per-type encoders, the heads, the link
  features and everything outside linear layers stay fp32 (QUANTISED_PREFIXES says why).
- `bf16`, `fp16`: autocast of the forward pass (matrix products and attention in half precision, reductions
  in fp32); fp16 only on CUDA, bf16 on CUDA and on CPUs with bf16 instructions.

The physics cost of each setting is measured on the default run (docs/performance.md, quantised inference).
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from mlpf.errors import ConfigError
from mlpf.runtime import autocast_context

PRECISIONS = ("fp32", "int8", "bf16", "fp16")


# The linear layers quantised: those of the backbone stacks, which see embeddings of a bounded range. The
# per-type encoders read the raw features (energies from MeV to TeV next to angles) and the heads write the
# regressed kinematics; with their activations quantised per tensor the jet resolution lost 5-16 %.
QUANTISED_PREFIXES = ("stack_",)


def _quantise_int8(model: torch.nn.Module) -> torch.nn.Module:
    names = {
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.startswith(QUANTISED_PREFIXES)
    }
    with warnings.catch_warnings():
        # torch 2.13 announces the move of eager quantisation to torchao; the kernels are the same
        warnings.filterwarnings("ignore", message=".*(deprecat|migrated to torchao).*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        spec = dict.fromkeys(names, torch.ao.quantization.default_dynamic_qconfig)
        return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)


def prepare(
    model: torch.nn.Module, precision: str, device: torch.device
) -> tuple[torch.nn.Module, contextlib.AbstractContextManager]:
    """(model to run, context to run its forward pass in) for `precision` on `device`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"inference precision must be one of {', '.join(PRECISIONS)}, not '{precision}'")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("inference precision fp16 needs a CUDA device; use bf16 or int8 on a CPU")
    if precision == "int8":
        if device.type != "cpu":
            raise ConfigError("inference precision int8 runs on the CPU; use bf16 or fp16 on a GPU")
        return _quantise_int8(model.eval()), contextlib.nullcontext()
    return model, autocast_context(device, "fp32" if precision == "fp32" else precision)
