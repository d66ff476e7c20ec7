"""What every torch stage shares at run time: CPU threads, the device, autocast, and checkpoint files.

Below the model and the stages that use it (training, inference, export), so that none of them takes these
from another: a checkpoint is written by training and read by inference and export through the functions here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch

from mlpf.atomic import atomic_output
from mlpf.errors import ConfigError, MlpfError

log = logging.getLogger(__name__)

# Version of the checkpoint layout: a file with another version is not read as one.
CHECKPOINT_FORMAT = 1
# Key of the content checksum inside a checkpoint. Checkpoints written before it existed load with a warning.
CHECKSUM_KEY = "checksum"


def set_threads(threads: int | None) -> int:
    """Use `threads` CPU threads (default: every core this process may run on) and flush subnormal floats.

    Subnormals (e.g. from Gaussian kernels of far-apart elements) made upstream's v2.5.0 GNN-LSH training step
    3x slower on CPUs (docs/performance.md, upstream anchors); flushing them to zero changes results by less
    than float32 resolution.
    """
    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    torch.set_flush_denormal(True)
    return n


def pick_device(choice: str) -> torch.device:
    """auto = CUDA when available, else CPU; an explicit cuda without a GPU is a config error."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but no CUDA device is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to `precision` (fp32 = none); fp16 only on CUDA, where a gradient scaler goes with it."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("training.precision fp16 needs a CUDA device; use bf16 on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _digest_into(h: Any, value: Any) -> None:
    """Feed a canonical byte form of `value` (tensors by dtype, shape and raw bytes) into the hash `h`."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(value.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=repr):  # optimizer states have int keys: order by repr, not by type
            h.update(f"{key!r}=".encode())
            _digest_into(h, value[key])
    elif isinstance(value, list | tuple):  # a tuple may come back as a list; both hash alike
        h.update(f"L{len(value)}:".encode())
        for item in value:
            _digest_into(h, item)
    else:  # numbers, strings, booleans, None: repr round-trips exactly through torch.save
        h.update(f"{value!r};".encode())


def checkpoint_checksum(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's contents (every entry but the checksum itself), as `sha256:<hex>`."""
    h = hashlib.sha256()
    _digest_into(h, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return f"sha256:{h.hexdigest()}"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` atomically with a checksum of its contents, which `load_checkpoint` verifies."""
    with atomic_output(path) as tmp:
        torch.save({**state, CHECKSUM_KEY: checkpoint_checksum(state)}, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by training (one-line error if it is not one or its contents changed)."""
    path = Path(path)
    if not path.is_file():
        raise MlpfError("checkpoint does not exist", path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only
    except Exception as exc:  # noqa: BLE001 - torch raises several types for corrupt files
        raise MlpfError(f"not a readable checkpoint ({type(exc).__name__})", path=path) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise MlpfError("not an mlpf checkpoint", path=path)
    stored = state.pop(CHECKSUM_KEY, None)
    if stored is None:
        log.warning("%s: written without a checksum (an older version); its contents are not verified", path)
    elif stored != checkpoint_checksum(state):
        raise MlpfError(
            "corrupt checkpoint: its contents do not match the checksum stored with them", path=path
        )
    return state
