"""ONNX export: dynamic batch and element axes, onnxruntime outputs equal PyTorch's to 1e-4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from mlpf.cli import main
from mlpf.data.dataset import ParquetEventDataset, collate
from mlpf.inference.export import OUTPUT_NAMES, onnx_outputs
from mlpf.model.factory import model_from_checkpoint
from mlpf.runtime import load_checkpoint
from mlpf.training.loop import train
from model._synthetic import write_parquet

MODEL = {"width": 32, "num_layers": 2, "num_heads": 4, "head_width": 16, "bin_size": 16}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parquet(tmp_path_factory.mktemp("export") / "a.parquet", 24, 3, n_min=10, n_max=90)


# the kernel-sum inputs pairwise (the default), on the mesh (the hit-level configuration, config/hits.yaml) and
# left out
@pytest.mark.parametrize(
    ("kind", "sums"),
    [
        ("transformer", {}),
        ("gnn_lsh", {}),
        ("gnn_lsh", {"link_sums_mesh": True}),
        ("gnn_lsh", {"link_sums": False}),
    ],
)
def test_onnx_matches_pytorch_on_batches_of_other_shapes(
    kind: str, sums: dict[str, bool], data: Path, tmp_path: Path
) -> None:
    model_settings = {"type": kind, **MODEL, **sums}
    train([data], tmp_path, model_settings, {"epochs": 1, "batch_size": 8}, {}, seed=1, threads=1)
    onnx_path = tmp_path / "model.onnx"
    rc = main(["export", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--output", str(onnx_path)])
    assert rc == 0
    proto = onnx.load(str(onnx_path))
    assert proto.opset_import[0].version >= 17
    assert (
        json.loads({p.key: p.value for p in proto.metadata_props}["mlpf"])["settings"]["model"]["type"]
        == kind
    )
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == ["num_batch", "num_elements"]

    model = model_from_checkpoint(load_checkpoint(tmp_path / "checkpoint.pt")).eval()
    ds = ParquetEventDataset([data])
    for indices in ([0, 1, 2, 3, 4], [5], list(range(6, 24))):  # batch and element counts differ from tracing
        batch = collate([ds[i] for i in indices])
        with torch.no_grad():
            ref = model(batch["X"], batch["mask"])
        got = onnx_outputs(onnx_path, batch["X"].numpy(), batch["mask"].numpy())
        for name, r, g in zip(OUTPUT_NAMES, ref, got, strict=True):
            np.testing.assert_allclose(g, r.numpy(), atol=1e-4, rtol=1e-4, err_msg=name)
