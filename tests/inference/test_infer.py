"""Tests of batch inference: the predictions contract (docs/contracts.md section 4)."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest

from mlpf.cli import main
from mlpf.training.loop import train
from model._synthetic import write_parquet


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("infer")
    shards = [write_parquet(root / "a.parquet", 40, 1), write_parquet(root / "b.parquet", 30, 2)]
    model = {"width": 32, "num_layers": 2, "num_heads": 4, "head_width": 16}
    train(shards, root / "model", model, {"epochs": 4, "batch_size": 8, "learning_rate": 0.003}, {}, 1, 1)
    return root / "model" / "checkpoint.pt", shards


def test_infer_writes_contract_with_inputs_copied_in_order(
    trained: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    checkpoint, shards = trained
    out = tmp_path / "pred" / "ttbar.parquet"
    rc = main(
        [
            "infer",
            "--checkpoint",
            str(checkpoint),
            "--input",
            *map(str, shards),
            "--output",
            str(out),
            "--threads",
            "1",
            "--batch-size",
            "16",
        ]
    )
    assert rc == 0
    pred = ak.from_parquet(out)
    inputs = ak.concatenate([ak.from_parquet(s) for s in shards])
    assert set(pred.fields) == {"X", "ytarget", "ycand", "truth", "genmet", "ypred", "ypred_proba"}
    assert len(pred) == 70
    for field in ("X", "ytarget", "ycand", "genmet"):
        assert ak.all(pred[field] == inputs[field])
    assert ak.all(pred.truth.pt == inputs.truth.pt)
    assert str(pred.ypred.type).endswith("var * 7 * float32")
    assert str(pred.ypred_proba.type).endswith("var * 6 * float32")
    assert ak.all(ak.num(pred.ypred) == ak.num(pred.X))

    ypred = ak.to_numpy(ak.flatten(pred.ypred))
    ytarget = ak.to_numpy(ak.flatten(pred.ytarget))
    proba = ak.to_numpy(ak.flatten(pred.ypred_proba))
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert np.all(ypred[ypred[:, 0] == 0] == 0)  # no-particle rows are zero like the targets
    # the trained model has learned something real: particle/no-particle accuracy well above the majority rule
    accuracy = np.mean((ypred[:, 0] > 0) == (ytarget[:, 0] > 0))
    assert accuracy > max(np.mean(ytarget[:, 0] > 0), np.mean(ytarget[:, 0] == 0)) + 0.03
    has = ypred[:, 0] > 0
    assert np.all(ypred[has, 6] >= ypred[has, 2] * np.cosh(ypred[has, 3]) * (1 - 1e-4))

    meta = json.loads(pq.read_schema(out).metadata[b"mlpf"])
    assert meta["checkpoint"] == str(checkpoint)
    assert meta["settings"]["model"]["type"] == "transformer"


def test_infer_bad_checkpoint_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "checkpoint.pt"
    bad.write_text("not a checkpoint")
    rc = main(
        ["infer", "--checkpoint", str(bad), "--input", "x.parquet", "--output", str(tmp_path / "p.parquet")]
    )
    assert rc == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "p.parquet").exists()
