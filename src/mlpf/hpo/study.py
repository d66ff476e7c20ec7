"""The study: its storage, its definition, its trial budget, and what happens to trials whose worker died.

Storage: a journal file by default (append-only log with a lock file; works on one machine and on a shared
filesystem) or any SQLAlchemy URL (a database for workers on many nodes). Every worker job opens the same
study by name.

A killed worker (SIGKILL, a lost node, an out-of-memory kill) leaves its trial RUNNING forever: Optuna's own
heartbeat exists for databases only, so trials here carry their worker's identity and a heartbeat written
by a background thread. A restarted worker fails its own leftover trial at once (a Snakemake job never runs
twice at the same time in one working directory); any worker fails a trial whose heartbeat is older than
`hpo.stale_after_seconds`. A failed-because-interrupted trial is enqueued again with the same parameters
(up to `hpo.max_retries` times) and does not count against the budget; the study stays consistent and a
rerun continues it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from mlpf.config import validate_section
from mlpf.errors import ConfigError, MlpfError

from . import space

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.log"
# Study user attribute holding the definition a study was created with.
DEFINITION_ATTR = "mlpf_definition"
# Trial system attributes (not shown in the trial table).
WORKER_ATTR = "mlpf:worker"
HEARTBEAT_ATTR = "mlpf:heartbeat"
INTERRUPTED_ATTR = "mlpf:interrupted"
RETRIED_ATTR = "mlpf:retried"
# Trial user attributes of a retry (shown in the trial table).
RETRY_OF = "retry_of"
RETRY_COUNT = "retry"
# The config sections a study's definition holds, less the keys that do not change what a trial measures
# (the model's name; trials use hpo.epochs, not training.epochs).
DEFINITION_SECTIONS = ("model", "training", "dataset")
NOT_IN_DEFINITION = {"model": ("name",), "training": ("epochs", "device", "checkpoint_every", "max_steps")}


def open_storage(spec: str, study_dir: str | Path) -> optuna.storages.BaseStorage:
    """Storage from `hpo.storage`: empty = STUDY_DIR/journal.log, a URL = a database, else a journal path."""
    if "://" in spec:
        engine_kwargs = {"connect_args": {"timeout": 60}} if spec.startswith("sqlite") else None
        try:
            return optuna.storages.RDBStorage(spec, engine_kwargs=engine_kwargs)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types (driver missing, refused, auth)
            raise ConfigError(
                f"hpo.storage: cannot open {describe_storage(spec)} ({type(exc).__name__})"
            ) from None
    path = Path(spec) if spec else Path(study_dir) / JOURNAL_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return optuna.storages.JournalStorage(backend)


def describe_storage(spec: str) -> str:
    """The storage without a password, for logs and outputs."""
    if "://" not in spec:
        return f"journal file {spec}" if spec else "journal file in the study directory"
    scheme, _, rest = spec.partition("://")
    credentials, at, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{at}{host}" if at else spec


def definition(
    hpo: dict[str, Any],
    base: dict[str, dict[str, Any]],
    seed: int,
    train_files: list[str],
    jets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a study's trials measure; a study continues only under the same definition. `jets` is the
    evaluation.jets section the validation's jet metric uses (None: the schema's default)."""
    sections = {name: _definition_section(name, base[name]) for name in DEFINITION_SECTIONS}
    return {
        "objective": hpo["objective"],
        "epochs": hpo["epochs"],
        "search_space": hpo["search_space"],
        "seed": seed,
        "train_files": list(train_files),
        "jets": validate_section("evaluation", {"jets": jets or {}})["jets"],
        **sections,
    }


def _definition_section(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A config section without the keys that do not change what a trial measures (NOT_IN_DEFINITION)."""
    drop = NOT_IN_DEFINITION.get(name, ())
    return {k: v for k, v in settings.items() if k not in drop}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def check_enqueue(entries: list[dict[str, Any]], dims: list[space.Dimension]) -> None:
    names = {d.name for d in dims}
    for i, entry in enumerate(entries):
        unknown = sorted(set(entry) - names)
        if unknown:
            raise ConfigError(f"hpo.enqueue.{i}: {', '.join(unknown)} not in the search space")


def create_or_load(
    storage: optuna.storages.BaseStorage, name: str, spec: dict[str, Any], enqueue: list[dict[str, Any]]
) -> tuple[optuna.Study, bool]:
    """Create the study with its definition and first trials, or load it and check it has the same one."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
        study.set_user_attr(DEFINITION_ATTR, spec)
        for params in enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
        return study, True
    check_definition(study, spec)
    return study, False


def _with_new_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored definition with the settings added to the schema since it was written at their defaults: a
    study made by an older version continues under a newer one as long as the new settings keep their
    defaults. A section the current schema rejects stays as it was (and so differs)."""
    current = dict(stored)
    for name in DEFINITION_SECTIONS:
        if not isinstance(stored.get(name), dict):
            continue
        try:
            filled = validate_section(name, stored[name], source=f"stored study definition ({name})")
        except ConfigError:
            continue
        current[name] = _definition_section(name, filled)
    return current


def check_definition(study: optuna.Study, spec: dict[str, Any]) -> None:
    stored = study.user_attrs.get(DEFINITION_ATTR)
    if stored is None:
        raise MlpfError(
            f"study '{study.study_name}' was not created by mlpf hpo; take another hpo.study_name"
        )
    stored = _with_new_defaults(stored)
    if _digest(stored) != _digest(spec):
        changed = sorted(k for k in set(stored) | set(spec) if _digest(stored.get(k)) != _digest(spec.get(k)))
        raise MlpfError(
            f"study '{study.study_name}' was created with another {', '.join(changed)}; a study continues only"
            " under its own definition: take a new hpo.study_name (or restore the old settings)"
        )


def load(storage: optuna.storages.BaseStorage, name: str, **kwargs: Any) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage, **kwargs)
    except KeyError:
        raise MlpfError(f"no study '{name}' in the storage; create it with `mlpf hpo create`") from None


def counts_against_budget(trial: FrozenTrial) -> bool:
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and not trial.system_attrs.get(RETRIED_ATTR, False)


def trials_left(study: optuna.Study, n_trials: int) -> int:
    """Budget not yet spent or claimed: finished trials that count, and running ones, are taken."""
    trials = study.get_trials(deepcopy=False)
    taken = sum(counts_against_budget(t) or t.state == TrialState.RUNNING for t in trials)
    return n_trials - taken


def trial_id(storage: optuna.storages.BaseStorage, study: optuna.Study, number: int) -> int:
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def _last_alive(trial: FrozenTrial) -> float | None:
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    if beat is not None:
        return float(beat)
    return trial.datetime_start.timestamp() if trial.datetime_start else None


def reap(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    worker: str,
    stale_after_s: float,
    max_retries: int,
) -> list[int]:
    """Fail the running trials of dead workers (this worker's leftovers, or a stale heartbeat) and enqueue
    their retries. Returns the numbers of the trials failed here."""
    now = time.time()
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        own = trial.system_attrs.get(WORKER_ATTR) == worker
        alive = _last_alive(trial)
        stale = alive is not None and now - alive > stale_after_s
        if not (own or stale):
            continue
        why = "its worker restarted" if own else f"no heartbeat for {now - alive:.0f} s"
        if fail_interrupted(study, storage, trial, why, max_retries):
            reaped.append(trial.number)
    return reaped


def fail_interrupted(
    study: optuna.Study, storage: optuna.storages.BaseStorage, trial: FrozenTrial, why: str, max_retries: int
) -> bool:
    """Mark a running trial as failed by interruption and enqueue its retry; False if another worker was first."""
    tid = trial_id(storage, study, trial.number)
    retry = int(trial.user_attrs.get(RETRY_COUNT, 0)) < max_retries
    try:
        storage.set_trial_system_attr(tid, INTERRUPTED_ATTR, why)
        storage.set_trial_system_attr(tid, RETRIED_ATTR, retry)
        storage.set_trial_state_values(tid, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    log.warning("trial %d failed: %s%s", trial.number, why, "; enqueued again" if retry else "")
    if retry:
        enqueue_retry(study, trial)
    return True


def enqueue_retry(study: optuna.Study, trial: FrozenTrial) -> None:
    attrs = {RETRY_OF: trial.number, RETRY_COUNT: int(trial.user_attrs.get(RETRY_COUNT, 0)) + 1}
    study.enqueue_trial(trial.params, user_attrs=attrs)


@contextlib.contextmanager
def heartbeat(
    storage: optuna.storages.BaseStorage, tid: int, worker: str, interval_s: float
) -> Iterator[None]:
    """Record the owning worker, then a heartbeat every `interval_s` seconds until the block ends."""
    storage.set_trial_system_attr(tid, WORKER_ATTR, worker)
    storage.set_trial_system_attr(tid, HEARTBEAT_ATTR, time.time())
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval_s):
            try:
                storage.set_trial_system_attr(tid, HEARTBEAT_ATTR, time.time())
            except UpdateFinishedTrialError:  # failed by another worker meanwhile: nothing left to keep alive
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{tid}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)
