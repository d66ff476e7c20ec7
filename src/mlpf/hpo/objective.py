"""One trial: a `mlpf.training.loop.train` run with the trial's hyperparameters, scored on the validation split.

The trial trains on the same training shards, with the same seed and the same training/validation split as the
main run, for `hpo.epochs` epochs. After every epoch train() hands its history row to a callback that reports
the objective to Optuna (step = epoch) and asks the pruner whether to go on; a pruned trial stops there. The
objective of a finished trial is its value at the last epoch, the model a training of that length delivers.
Trial outputs (history.csv, model.json) go to TRIAL_ROOT/<number>/; the checkpoints are removed, since the
tuned configuration is trained again (and only the numbers of a trial are needed).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from mlpf.model.losses import LOSS_TERMS

from . import space

log = logging.getLogger(__name__)

# Columns of a training history row that a trial keeps as user attributes (shown in the trial table).
RECORDED = (
    "val_loss",
    "val_jet_iqr_over_median",
    "val_jet_iqr_over_median_pf",
    "val_met_iqr_over_median",
    "val_met_iqr_over_median_pf",
)
CHECKPOINTS = ("checkpoint.pt", "last.pt")


class WorkerInterrupted(Exception):
    """The training was stopped from outside (SIGTERM from the batch system): the trial is retried later."""


def reference_loss(row: dict[str, Any], reference: dict[str, float], weights: dict[str, float]) -> float:
    """Validation loss re-weighted to the reference (base config) weights: history terms carry the trial's
    weights, so term / trial weight x reference weight puts every trial on the same scale."""
    total = 0.0
    for term in LOSS_TERMS:
        if reference[term] == 0:
            continue
        total += float(row[f"val_loss_{term}"]) * reference[term] / weights[term]
    return total


def objective_value(
    row: dict[str, Any], objective: str, reference: dict[str, float], weights: dict[str, float]
) -> float:
    """The `hpo.objective` of one history row (NaN when its metric is undefined, e.g. no jet matched)."""
    if objective == "val_loss":
        return reference_loss(row, reference, weights)
    if objective == "val_resolution_over_pf":
        ratios = [
            float(row[f"val_{q}_iqr_over_median"]) / float(row[f"val_{q}_iqr_over_median_pf"])
            for q in ("jet", "met")
        ]
        return 0.5 * sum(ratios)
    return float(row[objective])


@dataclass
class TrialSetup:
    """Everything a trial needs besides its hyperparameters (the same for every trial of a study)."""

    dims: list[space.Dimension]
    base: dict[str, dict[str, Any]]
    train_files: Sequence[str]
    seed: int
    objective: str
    epochs: int
    trial_root: Path
    threads: int | None = None
    jets: dict[str, Any] | None = None  # evaluation.jets, the jets of the validation's jet metric


def run_trial(trial: optuna.Trial, setup: TrialSetup) -> float:
    """Train with the trial's parameters; returns the objective, raises TrialPruned or WorkerInterrupted."""
    from mlpf.training.loop import train  # noqa: PLC0415 - torch only where a trial trains, not for best/report

    params = space.suggest(trial, setup.dims, setup.base)
    sections = space.apply(params, setup.base)
    reason = space.incompatible(sections)
    if reason:
        trial.set_user_attr("pruned_because", reason)
        raise optuna.TrialPruned(reason)
    training = {**sections["training"], "epochs": setup.epochs, "max_steps": 0}
    reference, weights = setup.base["training"]["loss_weights"], training["loss_weights"]
    rows: list[dict[str, Any]] = []

    def after_epoch(row: dict[str, Any]) -> bool:
        rows.append(row)
        value = objective_value(row, setup.objective, reference, weights)
        trial.report(value, int(row["epoch"]))
        # after the last epoch the training is done: pruning it then would only discard a finished trial
        return int(row["epoch"]) < setup.epochs and trial.should_prune()

    output = setup.trial_root / f"{trial.number:05d}"
    log.info("trial %d: %s", trial.number, json.dumps(params, sort_keys=True))
    summary = train(
        list(setup.train_files),
        output,
        sections["model"],
        training,
        setup.base["dataset"],
        seed=setup.seed,
        threads=setup.threads,
        epoch_callback=after_epoch,
        jet_settings=setup.jets,
    )
    _record(trial, rows, summary, output)
    if not summary["finished"] and summary["stop_reason"] == "epoch_callback":
        raise optuna.TrialPruned(f"pruned after epoch {summary['epoch']}")
    if not summary["finished"]:
        raise WorkerInterrupted(f"training stopped by {summary['stop_reason']}")
    value = objective_value(rows[-1], setup.objective, reference, weights)
    log.info("trial %d: objective %s = %.6g", trial.number, setup.objective, value)
    return value


def _record(trial: optuna.Trial, rows: list[dict[str, Any]], summary: dict[str, Any], output: Path) -> None:
    """Keep the trial's last validation metrics, its length and where its history is; drop its checkpoints."""
    trial.set_user_attr("epochs", len(rows))
    trial.set_user_attr("train_s", round(float(summary["elapsed_s"]), 2))
    trial.set_user_attr("history", str(output / "history.csv"))
    if rows:
        for key in RECORDED:
            value = float(rows[-1].get(key, math.nan))
            trial.set_user_attr(key, value if math.isfinite(value) else None)
    for name in CHECKPOINTS:
        (output / name).unlink(missing_ok=True)
