"""A worker: runs trials of a study one after another until the study's trial budget is spent.

Any number of workers (local processes, SLURM jobs on other nodes) share one study through its storage. Before
each trial a worker fails and re-enqueues the trials of dead workers (`study.reap`) and checks the budget, so
the budget is global: a rerun of a finished study does nothing, a rerun of an interrupted one continues it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import optuna

from . import study as studies
from .objective import TrialSetup, WorkerInterrupted, run_trial

log = logging.getLogger(__name__)


@dataclass
class WorkerSettings:
    """The worker's identity and the `hpo` settings it uses."""

    worker_id: str  # stable across restarts of the same worker job (the path of its record)
    index: int
    hpo: dict[str, Any]


def make_sampler(hpo: dict[str, Any], index: int, n_existing: int) -> optuna.samplers.BaseSampler:
    """TPE with a seed that differs between workers and between restarts, so that their random start-up
    proposals differ; constant liar so that parallel workers avoid each other's running points."""
    text = f"{hpo['sampler']['seed']}:{index}:{n_existing}".encode()
    seed = int.from_bytes(hashlib.sha256(text).digest()[:4], "little")
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=hpo["sampler"]["n_startup_trials"],
        multivariate=hpo["sampler"]["multivariate"],
        constant_liar=True,
    )


def make_pruner(hpo: dict[str, Any]) -> optuna.pruners.BasePruner:
    settings = hpo["pruner"]
    if settings["type"] == "none":
        return optuna.pruners.NopPruner()
    if settings["type"] == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=settings["min_epochs"],
            max_resource=hpo["epochs"],
            reduction_factor=settings["reduction_factor"],
        )
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=settings["min_epochs"], reduction_factor=settings["reduction_factor"]
    )


def run_worker(
    storage: optuna.storages.BaseStorage,
    name: str,
    spec: dict[str, Any],
    worker: WorkerSettings,
    setup: TrialSetup,
) -> dict[str, Any]:
    """Run trials until none is left; returns a record of what this worker did."""
    hpo = worker.hpo
    existing = studies.load(storage, name)
    studies.check_definition(existing, spec)
    study = studies.load(
        storage,
        name,
        sampler=make_sampler(hpo, worker.index, len(existing.trials)),
        pruner=make_pruner(hpo),
    )
    record: dict[str, Any] = {"worker": worker.worker_id, "trials": [], "reaped": []}

    def objective(trial: optuna.Trial) -> float:
        tid = studies.trial_id(storage, study, trial.number)
        trial.set_user_attr("worker", worker.index)
        with studies.heartbeat(storage, tid, worker.worker_id, hpo["heartbeat_seconds"]):
            try:
                return run_trial(trial, setup)
            except WorkerInterrupted as exc:  # the job is ending: Optuna marks the trial failed, we retry it
                retry = int(trial.user_attrs.get(studies.RETRY_COUNT, 0)) < hpo["max_retries"]
                storage.set_trial_system_attr(tid, studies.INTERRUPTED_ATTR, str(exc))
                storage.set_trial_system_attr(tid, studies.RETRIED_ATTR, retry)
                if retry:
                    studies.enqueue_retry(study, trial)
                raise

    def finished(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        record["trials"].append({"number": trial.number, "state": trial.state.name, "value": trial.value})

    while True:
        record["reaped"] += studies.reap(
            study, storage, worker.worker_id, hpo["stale_after_seconds"], hpo["max_retries"]
        )
        left = studies.trials_left(study, hpo["n_trials"])
        if left <= 0:
            log.info("worker %d: trial budget of %d spent", worker.index, hpo["n_trials"])
            break
        study.optimize(objective, n_trials=1, callbacks=[finished], gc_after_trial=True)
    return record
