"""The training hooks the study and the replicas use: the per-epoch callback, the MET metric, the split seed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mlpf.training.loop import train

from ._tiny import DATASET, MODEL

TRAINING = {"epochs": 3, "batch_size": 8, "learning_rate": 0.003}


def test_callback_sees_each_epoch_and_can_stop_the_run(shards: list[Path], tmp_path: Path) -> None:
    rows: list[dict] = []

    def stop_after_two(row: dict) -> bool:
        rows.append(row)
        return row["epoch"] == 2

    summary = train(
        shards, tmp_path, MODEL, TRAINING, DATASET, seed=1, threads=1, epoch_callback=stop_after_two
    )
    assert not summary["finished"]
    assert summary["stop_reason"] == "epoch_callback"
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in (
        "val_loss",
        "val_jet_iqr_over_median",
        "val_met_iqr_over_median",
        "val_met_iqr_over_median_pf",
    ):
        assert key in rows[0]
    assert rows[0]["val_met_iqr_over_median"] > 0  # an untrained model's MET is far from the target's
    history = list(csv.DictReader((tmp_path / "history.csv").read_text().splitlines()))
    assert len(history) == 2  # the stop came right after the second epoch's validation
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_callback_returning_nothing_lets_the_run_finish(shards: list[Path], tmp_path: Path) -> None:
    summary = train(shards, tmp_path, MODEL, {**TRAINING, "epochs": 1}, DATASET, seed=1, threads=1,
                    epoch_callback=lambda row: None)  # fmt: skip
    assert summary["finished"]


def test_split_seed_keeps_the_validation_events(shards: list[Path], tmp_path: Path) -> None:
    one = {**TRAINING, "epochs": 1}
    train(shards, tmp_path / "a", MODEL, one, DATASET, seed=1, threads=1)
    train(shards, tmp_path / "b", MODEL, one, DATASET, seed=2, threads=1, split_seed=1)
    train(shards, tmp_path / "c", MODEL, one, DATASET, seed=2, threads=1)

    def pf_metric(run: str) -> float:  # the baseline PF's number depends only on the validation events
        return json.loads((tmp_path / run / "model.json").read_text())["final"]["val_jet_iqr_over_median_pf"]

    assert pf_metric("b") == pf_metric("a")
    assert pf_metric("c") != pf_metric("a")
