"""A worker killed with SIGKILL in the middle of a trial (an out-of-memory kill, a lost node) leaves a consistent
study, and running the same worker again continues that study: the dead trial is failed and retried with the
same parameters, the budget is met, and nothing starts over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from mlpf.hpo import study as studies

from ._tiny import DATASET, MODEL, SPACE, TRAINING

HPO = {
    "study_name": "kill",
    "search_space": SPACE,
    "epochs": 8,  # long enough to be killed between two epochs
    "n_trials": 2,
    "pruner": {"type": "none"},
    "enqueue_base": False,
}


def _command(step: str, study_dir: Path, shards: list[Path], *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "mlpf", "hpo", step, "--study-dir", str(study_dir),
        "--hpo-settings", json.dumps(HPO), "--model-settings", json.dumps(MODEL),
        "--training-settings", json.dumps(TRAINING), "--dataset-settings", json.dumps(DATASET),
        "--seed", "1", "--train", *map(str, shards), *extra,
    ]  # fmt: skip


def _trials(study_dir: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="kill", storage=studies.open_storage("", study_dir)).get_trials()


def _wait_mid_trial(study_dir: Path, worker: subprocess.Popen, deadline_s: float) -> None:
    """Until trial 0 is running and has reported at least one epoch (so it is in the middle of training)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        assert worker.poll() is None, "the worker ended before it could be killed"
        trials = _trials(study_dir)
        if trials and trials[0].state == TrialState.RUNNING and trials[0].intermediate_values:
            return
        time.sleep(0.05)
    raise AssertionError(f"trial 0 reported no epoch within {deadline_s} s")


def test_killed_worker_leaves_a_study_that_its_rerun_continues(tmp_path: Path, shards: list[Path]) -> None:
    study_dir = tmp_path / "study"
    subprocess.run(
        _command("create", study_dir, shards, "--output", str(study_dir / "study.json")), check=True
    )
    record = study_dir / "workers" / "0.json"
    worker_args = _command(
        "worker", study_dir, shards, "--index", "0", "--threads", "1", "--output", str(record)
    )
    log = (tmp_path / "first.log").open("w")
    with log:
        worker = subprocess.Popen(worker_args, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_mid_trial(study_dir, worker, deadline_s=120)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        finally:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL
    assert not record.exists()  # the killed job left no finished-looking record
    killed = _trials(study_dir)
    assert [t.state for t in killed] == [TrialState.RUNNING]  # as SIGKILL leaves it: nobody could clean up
    assert 0 < len(killed[0].intermediate_values) < HPO["epochs"]

    rerun = subprocess.run(worker_args, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trials = _trials(study_dir)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    dead, retry, fresh = trials
    assert dead.system_attrs[studies.INTERRUPTED_ATTR] == "its worker restarted"
    assert retry.user_attrs[studies.RETRY_OF] == 0
    assert retry.params == dead.params  # the same point, run again from the start
    assert len(retry.intermediate_values) == HPO["epochs"]
    assert fresh.params != dead.params
    done = json.loads(record.read_text())
    assert done["reaped"] == [0]
    assert [t["number"] for t in done["trials"]] == [1, 2]
    assert (
        studies.trials_left(
            optuna.load_study(study_name="kill", storage=studies.open_storage("", study_dir)), 2
        )
        == 0
    )
