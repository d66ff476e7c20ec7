"""The study: storage, definition, global budget, and the failure and retry of trials whose worker died."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from mlpf.errors import ConfigError, MlpfError
from mlpf.hpo import study as studies

from ._tiny import hpo_settings

FILES = ["results/datasets/ttbar/0.parquet"]


def _spec(base: dict, **overrides: object) -> dict:
    return studies.definition(hpo_settings(**overrides), base, seed=1, train_files=FILES)


def _running(study: optuna.Study, storage: optuna.storages.BaseStorage, worker: str, beat: float) -> int:
    """A trial left RUNNING by `worker`, whose last heartbeat was at `beat` (epoch seconds)."""
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    tid = studies.trial_id(storage, study, trial.number)
    storage.set_trial_system_attr(tid, studies.WORKER_ATTR, worker)
    storage.set_trial_system_attr(tid, studies.HEARTBEAT_ATTR, beat)
    return trial.number


def test_create_enqueues_once_and_rejects_another_definition(tmp_path: Path, base: dict) -> None:
    storage = studies.open_storage("", tmp_path)
    assert (tmp_path / studies.JOURNAL_NAME).exists()
    first = [{"training.learning_rate": 0.005}]
    study, created = studies.create_or_load(storage, "s", _spec(base), first)
    assert created
    assert [t.state for t in study.trials] == [TrialState.WAITING]
    # another process opening the same journal sees the same study and adds nothing
    again, created = studies.create_or_load(studies.open_storage("", tmp_path), "s", _spec(base), first)
    assert not created
    assert len(again.trials) == 1
    with pytest.raises(MlpfError, match="created with another epochs, objective") as info:
        studies.create_or_load(storage, "s", _spec(base, epochs=5, objective="val_jet_iqr_over_median"), [])
    assert "\n" not in str(info.value)
    # the budget and the number of workers are not part of what a trial measures
    studies.create_or_load(storage, "s", _spec(base, n_trials=99, n_workers=7), [])


def test_a_study_of_an_older_version_continues_while_new_settings_keep_their_defaults(
    tmp_path: Path, base: dict
) -> None:
    """A setting added to the schema after the study was made (stored without it) is at its default: the same
    definition; set to anything else, another one."""
    storage = studies.open_storage("", tmp_path)
    spec = _spec(base)
    older = {**spec, "model": {k: v for k, v in spec["model"].items() if k != "link_sums"}}
    assert "link_sums" in spec["model"]
    study, _ = studies.create_or_load(storage, "s", older, [])
    assert "link_sums" not in study.user_attrs[studies.DEFINITION_ATTR]["model"]
    _, created = studies.create_or_load(storage, "s", spec, [])
    assert not created
    changed = {**base, "model": {**base["model"], "link_sums": False}}
    with pytest.raises(MlpfError, match="created with another model"):
        studies.create_or_load(storage, "s", _spec(changed), [])


def test_budget_counts_finished_trials_and_running_ones(tmp_path: Path) -> None:
    storage = studies.open_storage("", tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study.tell(study.ask(dist), 1.0)
    study.tell(study.ask(dist), state=TrialState.PRUNED)
    study.tell(study.ask(dist), state=TrialState.FAIL)  # e.g. a NaN objective: counts, is not retried
    study.ask(dist)  # running elsewhere
    assert studies.trials_left(study, 6) == 2


def test_a_restarted_worker_fails_its_own_leftover_and_retries_it(tmp_path: Path) -> None:
    storage = studies.open_storage("", tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    mine = _running(study, storage, "worker-a", beat=time.time())
    other = _running(study, storage, "worker-b", beat=time.time())  # alive: left alone
    assert studies.reap(study, storage, "worker-a", stale_after_s=600, max_retries=1) == [mine]
    trials = study.get_trials()
    assert trials[mine].state == TrialState.FAIL
    assert trials[mine].system_attrs[studies.RETRIED_ATTR] is True
    assert trials[other].state == TrialState.RUNNING
    retry = trials[-1]
    assert retry.state == TrialState.WAITING
    assert retry.user_attrs == {studies.RETRY_OF: mine, studies.RETRY_COUNT: 1}
    assert retry.system_attrs["fixed_params"] == trials[mine].params  # Optuna runs it with these values
    # the interrupted trial gives its budget to the retry: 2 trials taken (the retry is waiting, not taken)
    assert studies.trials_left(study, 3) == 2


def test_a_stale_heartbeat_is_failed_by_any_worker_and_retries_are_bounded(tmp_path: Path) -> None:
    storage = studies.open_storage("", tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    dead = _running(study, storage, "worker-a", beat=time.time() - 1000)
    assert studies.reap(study, storage, "worker-b", stale_after_s=600, max_retries=1) == [dead]
    # the retry dies as well: with max_retries 1 it is failed for good and counts against the budget
    retry = study.get_trials()[-1]
    assert retry.state == TrialState.WAITING
    trial = study.ask()  # a worker pops the waiting retry
    assert trial.number == retry.number
    tid = studies.trial_id(storage, study, trial.number)
    storage.set_trial_system_attr(tid, studies.HEARTBEAT_ATTR, time.time() - 1000)
    assert studies.reap(study, storage, "worker-b", stale_after_s=600, max_retries=1) == [trial.number]
    trials = study.get_trials()
    assert trials[-1].number == trial.number  # no further retry enqueued
    assert trials[-1].system_attrs[studies.RETRIED_ATTR] is False
    assert studies.trials_left(study, 1) == 0


def test_heartbeat_records_the_worker_and_keeps_beating(tmp_path: Path) -> None:
    storage = studies.open_storage("", tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    tid = studies.trial_id(storage, study, trial.number)
    with studies.heartbeat(storage, tid, "worker-a", interval_s=0.05):
        first = storage.get_trial(tid).system_attrs[studies.HEARTBEAT_ATTR]
        time.sleep(0.3)
        later = storage.get_trial(tid).system_attrs[studies.HEARTBEAT_ATTR]
    assert storage.get_trial(tid).system_attrs[studies.WORKER_ATTR] == "worker-a"
    assert later > first


def test_database_storage_and_password_never_shown(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = studies.open_storage(url, tmp_path)
    optuna.create_study(study_name="s", storage=storage)
    assert optuna.load_study(study_name="s", storage=url).study_name == "s"
    assert studies.describe_storage("postgresql://mlpf:secret@db.example:5432/hpo") == (
        "postgresql://mlpf@db.example:5432/hpo"
    )
    with pytest.raises(ConfigError, match=r"hpo\.storage: cannot open nosuchdriver://"):
        studies.open_storage("nosuchdriver://host/db", tmp_path)
