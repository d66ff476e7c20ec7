"""What a study and the replicas produce: best configuration, trial table, figures, comparison, spread, card."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from mlpf.cli import main
from mlpf.config import load_config, validate_section
from mlpf.evaluate.model_card import render
from mlpf.hpo import space
from mlpf.hpo import study as studies
from mlpf.hpo.objective import TrialSetup
from mlpf.hpo.replicas import spread, write_replica_summary
from mlpf.hpo.report import read_overlay, write_best, write_report
from mlpf.hpo.worker import WorkerSettings, run_worker
from mlpf.training.loop import train

from ._tiny import DATASET, MODEL, TRAINING, hpo_settings

REPO = Path(__file__).resolve().parents[2]
ONE_EPOCH = {**TRAINING, "epochs": 1}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, shards: list[Path]) -> dict:
    """A 3-trial study, its best configuration, and one-epoch trainings of the default (2 seeds) and tuned."""
    root = tmp_path_factory.mktemp("finished")
    base = {
        n: validate_section(n, s) for n, s in (("model", MODEL), ("training", TRAINING), ("dataset", DATASET))
    }
    hpo = hpo_settings(study_name="s", n_trials=3, epochs=1, pruner={"type": "none"})
    dims = space.dimensions(hpo["search_space"])
    files = [str(p) for p in shards]
    storage = studies.open_storage("", root)
    spec = studies.definition(hpo, base, 1, files)
    study, _ = studies.create_or_load(storage, "s", spec, [space.base_values(dims, base)])
    run_worker(
        storage,
        "s",
        spec,
        WorkerSettings("w", 0, hpo),
        TrialSetup(dims, base, files, 1, "val_loss", 1, root / "trials", 1),
    )
    write_best(study, "toy", root / "best.yaml", root / "trials.csv")
    for seed in (1, 2):
        train(shards, root / f"default{seed}", MODEL, ONE_EPOCH, DATASET, seed=seed, threads=1, split_seed=1)
    argv = ["hpo", "train-best", "--best", str(root / "best.yaml"), "--train", *files, "--seed", "1",
            "--model-settings", json.dumps(MODEL), "--training-settings", json.dumps(ONE_EPOCH),
            "--dataset-settings", json.dumps(DATASET), "--threads", "1", "--output-dir", str(root / "tuned1")]  # fmt: skip
    assert main(argv) == 0
    return {"root": root, "study": study, "base": base, "hpo": hpo}


def test_best_configuration_is_a_config_overlay(finished: dict) -> None:
    root, study = finished["root"], finished["study"]
    overlay = read_overlay(root / "best.yaml")
    assert overlay["model"]["name"] == "toy-s"  # the tuned model lives beside the default one
    assert overlay["training"]["learning_rate"] == pytest.approx(
        study.best_trial.params["training.learning_rate"]
    )
    text = (root / "best.yaml").read_text()
    assert f"trial {study.best_trial.number}" in text
    # as `--configfile` reads it: on top of the default configuration, valid, with the tuned values
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    merged = default | {
        "model": default["model"] | overlay["model"],
        "training": default["training"] | overlay["training"],
    }
    (root / "merged.yaml").write_text(yaml.safe_dump(merged))
    assert load_config(root / "merged.yaml")["model"]["dropout"] == overlay["model"]["dropout"]
    tuned = json.loads((root / "tuned1" / "model.json").read_text())
    assert tuned["model"]["dropout"] == overlay["model"]["dropout"]
    assert tuned["model"]["width"] == MODEL["width"]  # untuned keys keep the base values


def test_trial_table(finished: dict) -> None:
    rows = list(csv.DictReader((finished["root"] / "trials.csv").read_text().splitlines()))
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert {r["state"] for r in rows} == {"COMPLETE"}
    assert rows[0]["training.learning_rate"] == str(TRAINING["learning_rate"])  # trial 0: the base values
    for column in ("value", "epochs", "worker", "model.dropout", "val_loss", "val_met_iqr_over_median"):
        assert column in rows[0]


def test_report_directory(finished: dict, tmp_path: Path) -> None:
    root = finished["root"]
    runs = {
        "default": (
            [root / f"default{s}" / "history.csv" for s in (1, 2)],
            [root / f"default{s}" / "model.json" for s in (1, 2)],
        ),
        "tuned": ([root / "tuned1" / "history.csv"], [root / "tuned1" / "model.json"]),
    }
    settings = {"hpo": finished["hpo"], **finished["base"], "seed": 1}
    out = tmp_path / "hpo"
    write_report(
        finished["study"],
        root / "best.yaml",
        root / "trials.csv",
        runs,
        finished["base"]["training"]["loss_weights"],
        settings,
        out,
    )
    for name in (
        "optimization_history",
        "param_importances",
        "parallel_coordinate",
        "intermediate_values",
        "before_after",
    ):
        assert (out / f"{name}.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["number"] == finished["study"].best_trial.number
    assert [row["variant"] for row in summary["comparison"]] == ["default", "tuned"]
    assert summary["comparison"][0]["seeds"] == 2
    assert summary["comparison"][0]["val_loss_std"] > 0
    assert summary["provenance"]["settings"]["hpo"]["storage"] == "journal file in the study directory"
    assert (out / "best.yaml").read_text() == (root / "best.yaml").read_text()


def test_replica_spread_in_json_figure_and_card(finished: dict, tmp_path: Path) -> None:
    root = finished["root"]
    runs = [root / f"default{s}" for s in (1, 2)]
    summary = write_replica_summary(
        [r / "history.csv" for r in runs],
        [r / "model.json" for r in runs],
        [1, 2],
        tmp_path / "replicas.json",
        tmp_path / "figs",
    )
    assert (tmp_path / "figs" / "validation_seeds.png").stat().st_size > 1000
    loss = summary["last_epoch"]["val_loss"]
    assert len(loss["values"]) == 2
    assert loss["std"] > 0  # two seeds, two different trainings
    assert summary["last_epoch"]["val_jet_iqr_over_median_pf"]["std"] == 0  # same validation events
    assert json.loads((tmp_path / "replicas.json").read_text())["seeds"] == [1, 2]
    card = render([], {}, {}, summary)
    assert "## Training statistics across seeds" in card
    assert f"{loss['mean']:.3f} ± {loss['std']:.3f}" in card


def test_spread() -> None:
    assert spread([1.0, 3.0]) == {"values": [1.0, 3.0], "mean": 2.0, "std": pytest.approx(2**0.5)}
    assert spread([2.0, float("nan")])["values"] == [2.0, None]
    assert spread([2.0])["std"] == 0.0
