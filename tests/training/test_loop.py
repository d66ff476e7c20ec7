"""Tests of the training loop: outputs, learning, determinism, exact resume, CLI."""

from __future__ import annotations

import csv
import json
import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from mlpf.cli import main
from mlpf.data.stream import TrainingData
from mlpf.errors import MlpfError
from mlpf.model.geometry import N_CALORIMETER_FEATURES
from mlpf.runtime import CHECKPOINT_FORMAT, checkpoint_checksum, load_checkpoint, save_checkpoint
from mlpf.training.loop import train
from model._synthetic import write_parquet

MODEL = {"width": 32, "num_layers": 2, "num_heads": 4, "head_width": 16}
TRAINING = {"epochs": 3, "batch_size": 8, "learning_rate": 0.003}


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("datasets")
    return [write_parquet(root / "ttbar.parquet", 40, 1), write_parquet(root / "qq.parquet", 24, 2)]


def _history(directory: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((directory / "history.csv").read_text().splitlines()))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model_state"]


def test_train_writes_outputs_and_learns(shards: list[Path], tmp_path: Path) -> None:
    summary = train(shards, tmp_path, MODEL, TRAINING, {"validation_fraction": 0.25}, seed=1, threads=1)
    assert summary["finished"]
    rows = _history(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for col in (
        "step",
        "lr",
        "train_loss",
        "train_loss_binary",
        "train_loss_pid",
        "train_loss_energy",
        "val_loss",
        "val_loss_pt",
        "val_jet_iqr_over_median",
        "val_jet_iqr_over_median_pf",
        "elapsed_s",
    ):
        assert col in rows[0]
    assert float(rows[-1]["val_loss"]) < 0.7 * float(rows[0]["train_loss"])
    assert float(rows[-1]["lr"]) == pytest.approx(0.1 * 0.003)  # cosine decays to min_lr_ratio x peak
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["n_params"] == sum(v.numel() for v in _weights(tmp_path / "checkpoint.pt").values())
    assert info["n_validation_events"] == 16
    assert info["hardware"]["threads"] == 1
    assert info["n_derived_inputs"] == N_CALORIMETER_FEATURES  # calorimeter_features is on by default


def test_the_validation_jet_metric_uses_the_jets_it_is_given(shards: list[Path], tmp_path: Path) -> None:
    # evaluation.jets reaches the metric: with a threshold no jet passes, nothing is matched
    training = {**TRAINING, "epochs": 1}
    train(
        shards,
        tmp_path,
        MODEL,
        training,
        {"validation_fraction": 0.25},
        seed=1,
        threads=1,
        jet_settings={"min_pt": 1e4},
    )
    assert _history(tmp_path)[0]["val_jet_iqr_over_median"] == "nan"
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["validation_jets"]["min_pt"] == 1e4
    assert info["validation_jets"]["radius"] == 0.7  # the other keys keep their defaults


def test_same_seed_same_weights_and_resume_is_exact(shards: list[Path], tmp_path: Path) -> None:
    full = tmp_path / "full"
    train(shards, full, MODEL, TRAINING, {}, seed=7, threads=1)
    again = tmp_path / "again"
    train(shards, again, MODEL, TRAINING, {}, seed=7, threads=1)
    a, b = _weights(full / "checkpoint.pt"), _weights(again / "checkpoint.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)

    part = tmp_path / "part"
    summary = train(shards, part, MODEL, TRAINING, {}, seed=7, threads=1, stop_after_steps=9)  # mid-epoch 2
    assert not summary["finished"]
    assert not (part / "checkpoint.pt").exists()
    assert load_checkpoint(part / "last.pt")["global_step"] == 9
    with pytest.raises(MlpfError, match="cannot resume"):
        train(shards, part, MODEL, TRAINING, {}, seed=8, threads=1, resume=True)
    summary = train(shards, part, MODEL, TRAINING, {}, seed=7, threads=1, resume=True)
    assert summary["finished"]
    c = _weights(part / "checkpoint.pt")
    assert all(torch.equal(a[k], c[k]) for k in a)
    resumed, uninterrupted = _history(part), _history(full)
    for row_r, row_u in zip(resumed, uninterrupted, strict=True):  # the same loss curve, except wall time
        assert {k: v for k, v in row_r.items() if k != "elapsed_s"} == {
            k: v for k, v in row_u.items() if k != "elapsed_s"
        }


def test_streamed_resume_is_exact_with_other_workers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Shards in row groups, more events than the stream holds (so they are streamed, not kept) and a window
    smaller than a shard, so that an epoch interleaves pieces: a run stopped mid-epoch without workers and resumed
    with two ends with the weights of one run with a worker throughout. Dropout draws from the training's random
    state, which the loading must leave alone."""
    root = tmp_path / "data"
    shards = []
    for k, n in enumerate((80, 60, 70)):
        path = write_parquet(root / f"s{k}.parquet", n, k)
        pq.write_table(pq.read_table(path), path, row_group_size=10)
        shards.append(path)
    model = {**MODEL, "dropout": 0.1}
    training = {**TRAINING, "epochs": 2, "batch_size": 4, "shuffle_window": 12, "num_workers": 1}
    full = tmp_path / "full"
    with caplog.at_level(logging.INFO, logger="mlpf.training.loop"):
        train(shards, full, model, training, {}, seed=3, threads=1)
    held = re.search(r"at most (\d+) events held", caplog.text)
    assert held is not None
    assert int(held.group(1)) < 168  # streamed: never all the training events at once
    part = tmp_path / "part"
    train(shards, part, model, {**training, "num_workers": 0}, {}, seed=3, threads=1, stop_after_steps=50)
    assert load_checkpoint(part / "last.pt")["step_in_epoch"] == 8  # 168 training events: 42 steps an epoch
    train(shards, part, model, {**training, "num_workers": 2}, {}, seed=3, threads=1, resume=True)
    a, b = _weights(full / "checkpoint.pt"), _weights(part / "checkpoint.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(MlpfError, match="cannot resume"):  # the window changes the batches: no resume
        train(shards, part, model, {**training, "shuffle_window": 13}, {}, seed=3, threads=1, resume=True)


def test_cli_train_and_bad_settings(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "m"
    rc = main(
        [
            "train",
            "--train",
            *map(str, shards),
            "--model-settings",
            json.dumps({"type": "gnn_lsh", **MODEL}),
            "--settings",
            json.dumps({"epochs": 1, "batch_size": 16}),
            "--dataset-settings",
            "{}",
            "--seed",
            "3",
            "--threads",
            "1",
            "--output-dir",
            str(out),
        ]
    )
    assert rc == 0
    assert load_checkpoint(out / "checkpoint.pt")["model_settings"]["type"] == "gnn_lsh"
    rc = main(["train", "--train", str(shards[0]), "--settings", '{"epochz": 1}', "--output-dir", str(out)])
    assert rc == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err


def test_bf16_autocast_trains_with_float32_weights(shards: list[Path], tmp_path: Path) -> None:
    training = {**TRAINING, "epochs": 2, "precision": "bf16"}
    summary = train(shards, tmp_path, MODEL, training, {}, seed=1, threads=1)
    assert summary["finished"]
    rows = _history(tmp_path)
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    weights = _weights(tmp_path / "checkpoint.pt")
    assert all(v.dtype == torch.float32 for v in weights.values())


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_resume_finishes(shards: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "m"
    cmd = [
        sys.executable,
        "-m",
        "mlpf.cli",
        "train",
        "--train",
        *map(str, shards),
        "--model-settings",
        json.dumps(MODEL),
        "--settings",
        json.dumps({**TRAINING, "epochs": 200, "checkpoint_every": 5}),
        "--threads",
        "1",
        "--output-dir",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped (SIGTERM)" in err
    state = load_checkpoint(out / "last.pt")
    assert 0 < state["global_step"] < 200 * 7
    assert not (out / "checkpoint.pt").exists()
    assert not list(out.glob(".*tmp*"))  # no half-written files left behind


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(shards: list[Path], tmp_path: Path) -> None:
    """DDP with gloo: each rank takes half of the batches, rank 0 writes the outputs."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "mlpf.cli",
        "train",
        "--train",
        *map(str, shards),
        "--model-settings",
        json.dumps(MODEL),
        "--settings",
        json.dumps({**TRAINING, "epochs": 2}),
        "--threads",
        "1",
        "--output-dir",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["hardware"]["world_size"] == 2
    # 51 training events dealt to 2 ranks in pieces (row-group parts): 22-29 each, so 3 or 4 batches of 8 per
    # epoch, the same on both ranks (the smaller share); the plans say which without reading any event
    plans = [
        TrainingData(
            shards,
            validation_fraction=0.2,
            split_seed=42,
            seed=42,
            batch_size=8,
            window=4096,
            rank=r,
            world_size=2,
        )
        for r in range(2)
    ]
    steps = [plans[0].steps(epoch) for epoch in range(2)]
    assert steps == [plans[1].steps(epoch) for epoch in range(2)]
    assert all(3 <= s <= 4 for s in steps)
    assert info["steps"] == sum(steps)
    assert float(_history(tmp_path)[-1]["train_loss"]) < float(_history(tmp_path)[0]["train_loss"])


def _small_state() -> dict:
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    return {
        "format": CHECKPOINT_FORMAT,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "history": [{"epoch": 1, "loss": 0.25}],
        "rng_state": torch.get_rng_state(),
        "train_files": ("a.parquet",),
    }


def test_checkpoint_contents_are_verified_on_load(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, _small_state())
    state = load_checkpoint(path)
    assert "checksum" not in state  # verified and removed: callers see the state they saved
    assert set(state) == set(_small_state())
    # the checksum is of the contents, so it is the same after a round trip through the file
    raw = torch.load(path, weights_only=True)
    assert raw["checksum"].startswith("sha256:")
    assert raw["checksum"] == checkpoint_checksum(raw)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: s["model_state"]["weight"].view(-1)[0].add_(1e-3), id="one-weight"),
        pytest.param(
            lambda s: s["optimizer_state"]["state"][0]["exp_avg"].view(-1)[2].mul_(2), id="optimiser"
        ),
        pytest.param(lambda s: s["history"][0].update(loss=0.5), id="plain-data"),
    ],
)
def test_any_changed_value_fails_the_checksum(tmp_path: Path, change) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, _small_state())
    raw = torch.load(path, weights_only=True)
    change(raw)
    torch.save(raw, path)
    with pytest.raises(MlpfError, match=r"last\.pt: corrupt checkpoint"):
        load_checkpoint(path)


def test_checkpoints_without_a_checksum_still_load_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.pt"
    torch.save(_small_state(), path)  # as written before checksums existed
    assert load_checkpoint(path)["history"] == [{"epoch": 1, "loss": 0.25}]
    assert "without a checksum" in caplog.text


def test_the_final_checkpoint_holds_the_best_validation_epoch(shards: list[Path], tmp_path: Path) -> None:
    """select_checkpoint: the final weights are those of the epoch with the lowest validation loss, recomputed
    here on the same validation split from the saved checkpoint."""
    from mlpf.model.factory import model_from_checkpoint
    from mlpf.training import loop

    # a high constant learning rate: the validation loss is lowest at epoch 2 of 6, not at the end
    training = {**TRAINING, "epochs": 6, "learning_rate": 0.05, "lr_schedule": "constant",
                "select_checkpoint": "val_loss"}  # fmt: skip
    train(shards, tmp_path, MODEL, training, {}, 1, 1)
    losses = [float(row["val_loss"]) for row in _history(tmp_path)]
    assert losses.index(min(losses)) < len(losses) - 1
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["selected_by"] == "val_loss"
    assert info["selected_epoch"] == 1 + losses.index(min(losses))
    setup = loop._prepare(shards, tmp_path, MODEL, training, {}, 1, 1, None, None)
    model = model_from_checkpoint(load_checkpoint(tmp_path / "checkpoint.pt"))
    again = loop.validate(
        model, setup.data.validation_batches(), setup.settings, setup.device, "fp32", setup.jets
    )
    assert again["val_loss"] == pytest.approx(min(losses), rel=1e-5)
