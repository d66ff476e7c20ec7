"""The objective of a trial and a worker's loop: scores on one scale, pruning that stops the training."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from mlpf.hpo import space
from mlpf.hpo import study as studies
from mlpf.hpo.objective import TrialSetup, objective_value, reference_loss, run_trial
from mlpf.hpo.worker import WorkerSettings, run_worker
from mlpf.model.losses import LOSS_TERMS

from ._tiny import hpo_settings


def _row(weights: dict[str, float]) -> dict[str, float]:
    """A history row whose unweighted terms are all 1, written with `weights` as train() writes them."""
    row = {f"val_loss_{t}": weights[t] * 1.0 for t in LOSS_TERMS}
    row["val_loss"] = sum(row.values())
    row.update(val_jet_iqr_over_median=0.06, val_jet_iqr_over_median_pf=0.05)
    row.update(val_met_iqr_over_median=0.3, val_met_iqr_over_median_pf=0.6)
    return row


def test_trials_with_other_loss_weights_are_scored_with_the_reference_weights() -> None:
    reference = dict.fromkeys(LOSS_TERMS, 1.0) | {"eta": 0.0}
    heavy = dict.fromkeys(LOSS_TERMS, 1.0) | {"binary": 100.0}
    # same per-term losses, other weights: the same reference loss (the eta term has reference weight 0)
    assert reference_loss(_row(heavy), reference, heavy) == pytest.approx(len(LOSS_TERMS) - 1)
    assert reference_loss(_row(reference), reference, reference) == pytest.approx(len(LOSS_TERMS) - 1)
    assert objective_value(_row(heavy), "val_loss", reference, heavy) == pytest.approx(len(LOSS_TERMS) - 1)


def test_metric_objectives() -> None:
    w = dict.fromkeys(LOSS_TERMS, 1.0)
    assert objective_value(_row(w), "val_jet_iqr_over_median", w, w) == pytest.approx(0.06)
    assert objective_value(_row(w), "val_met_iqr_over_median", w, w) == pytest.approx(0.3)
    assert objective_value(_row(w), "val_resolution_over_pf", w, w) == pytest.approx(0.5 * (1.2 + 0.5))
    nan = _row(w) | {"val_jet_iqr_over_median": math.nan}
    assert math.isnan(objective_value(nan, "val_jet_iqr_over_median", w, w))


def _inside(d: space.Dimension) -> float | int | str:
    """A value of the dimension `d`, whatever the search space holds (the middle of a range, or its first choice)."""
    if d.choices:
        return d.choices[0]
    middle = math.sqrt(d.low * d.high) if d.log else 0.5 * (d.low + d.high)
    return round(middle) if d.kind == "int" else middle


def test_a_pruned_trial_stops_training_where_the_pruner_says(
    tmp_path: Path, shards: list[Path], base: dict
) -> None:
    hpo = hpo_settings(n_trials=2, epochs=4, pruner={"reduction_factor": 2}, enqueue_base=False)
    dims = space.dimensions(hpo["search_space"])
    storage = studies.open_storage("", tmp_path)
    spec = studies.definition(hpo, base, seed=1, train_files=[str(p) for p in shards])
    study, _ = studies.create_or_load(storage, "s", spec, [])
    # A finished trial with a perfect first-epoch score: the next one is below it at the first rung and stops.
    perfect = {d.name: _inside(d) for d in dims}
    study.add_trial(
        optuna.trial.create_trial(
            params=perfect,
            distributions={d.name: _distribution(d) for d in dims},
            value=0.0,
            intermediate_values={1: 0.0},
            system_attrs={"completed_rung_0": 0.0},
        )
    )
    setup = TrialSetup(
        dims, base, [str(p) for p in shards], 1, "val_loss", hpo["epochs"], tmp_path / "trials", 1
    )
    record = run_worker(storage, "s", spec, WorkerSettings("w0", 0, hpo), setup)
    assert record["trials"] == [
        {"number": 1, "state": "PRUNED", "value": pytest.approx(record["trials"][0]["value"])}
    ]
    trial = study.get_trials()[1]
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]
    assert trial.user_attrs["epochs"] == 1
    assert trial.user_attrs["worker"] == 0
    history = (tmp_path / "trials" / "00001" / "history.csv").read_text().splitlines()
    assert len(history) == 2  # header + the one epoch it trained
    assert not list((tmp_path / "trials").rglob("*.pt"))  # checkpoints of trials are not kept
    assert studies.trials_left(study, 2) == 0
    # a rerun of a worker whose study is spent does nothing
    assert run_worker(storage, "s", spec, WorkerSettings("w0", 0, hpo), setup)["trials"] == []


def _distribution(dim: space.Dimension) -> optuna.distributions.BaseDistribution:
    return optuna.distributions.FloatDistribution(dim.low, dim.high, log=dim.log)


def test_a_trial_validates_with_the_configured_jets(
    tmp_path: Path, base: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the objective's jet resolution is that of evaluation.jets, not of the schema's default jets
    import mlpf.training.loop

    seen: dict = {}

    def fake_train(files, output, model, training, dataset, **kwargs):
        seen.update(kwargs)
        w = training["loss_weights"]
        kwargs["epoch_callback"](_row(w) | {"epoch": 1})
        return {"finished": True, "stop_reason": "", "epoch": 1, "elapsed_s": 0.0}

    monkeypatch.setattr(mlpf.training.loop, "train", fake_train)
    hpo = hpo_settings(n_trials=1, epochs=1, pruner={"type": "none"})
    dims = space.dimensions(hpo["search_space"])
    jets = {"algorithm": "ee_genkt", "radius": 0.4, "p": -1.0, "min_pt": 10.0, "match_dr": 0.1}
    trial = optuna.create_study().ask()
    setup = TrialSetup(dims, base, ["x.parquet"], 1, "val_loss", 1, tmp_path, 1, jets=jets)
    assert math.isfinite(run_trial(trial, setup))
    assert seen["jet_settings"] == jets


def test_another_jet_definition_is_another_study(base: dict) -> None:
    hpo = hpo_settings()
    default = studies.definition(hpo, base, 1, ["x.parquet"])
    assert default == studies.definition(hpo, base, 1, ["x.parquet"], jets={})
    assert default != studies.definition(hpo, base, 1, ["x.parquet"], jets={"radius": 0.4})
