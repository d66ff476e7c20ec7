"""ONNX export of a trained MLPF model, with dynamic batch and element axes.

Inputs `X` [batch, elements, 17] float32 (raw element features; normalisation is inside the graph) and `mask`
[batch, elements] bool (True = element); outputs `binary`, `pid`, `charge`, `momentum` as `MLPF.forward`.
Upstream exports with the TorchScript-based exporter (`dynamo=False`, its `tests/test_onnx_export.py`); so
does this module, which needs no extra packages.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from mlpf.atomic import atomic_output
from mlpf.errors import ConfigError
from mlpf.model.factory import model_from_checkpoint
from mlpf.provenance import provenance
from mlpf.runtime import load_checkpoint

INPUT_NAMES = ("X", "mask")
OUTPUT_NAMES = ("binary", "pid", "charge", "momentum")
MIN_OPSET = 17  # LayerNormalization is a native ONNX op from opset 17


def example_inputs(batch: int = 2, elements: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A small batch with both element types and padding, used to trace the graph."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(batch, elements, 17, generator=g) * 5
    X[..., 0] = torch.randint(1, 3, (batch, elements), generator=g).float()
    mask = torch.ones(batch, elements, dtype=torch.bool)
    mask[0, elements // 2 :] = False
    return X * mask[..., None], mask


def export_onnx(checkpoint: str | Path, output: str | Path, opset: int = MIN_OPSET) -> Path:
    """Export the model of `checkpoint` to `output` and store provenance in the ONNX metadata."""
    if opset < MIN_OPSET:
        raise ConfigError(f"--opset must be >= {MIN_OPSET}")
    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state).eval()
    dynamic = {"X": {0: "num_batch", 1: "num_elements"}, "mask": {0: "num_batch", 1: "num_elements"}}
    dynamic.update({name: {0: "num_batch", 1: "num_elements"} for name in OUTPUT_NAMES})
    output = Path(output)
    with atomic_output(output) as tmp, warnings.catch_warnings():
        # The TorchScript exporter warns about traced Python values (shapes) that are symbolic here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            example_inputs(),
            str(tmp),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )
        proto = onnx.load(str(tmp))
        record = provenance({"model": state["model_settings"]}, checkpoint=str(checkpoint), stage="export")
        entry = proto.metadata_props.add()
        entry.key, entry.value = "mlpf", json.dumps(record, default=str)
        onnx.save(proto, str(tmp))
    return output


def onnx_outputs(path: str | Path, X: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """Run an exported model with onnxruntime on CPU."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(list(OUTPUT_NAMES), {"X": X.astype(np.float32), "mask": mask.astype(bool)})
