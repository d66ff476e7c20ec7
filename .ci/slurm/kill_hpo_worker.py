"""Kill (SIGKILL) the worker process of the first HPO trial seen running, while it trains: what an
out-of-memory kill or a lost node does to a worker. Used by .ci/slurm/run-workflow.sh, where the worker
is a SLURM job on this node; the job fails, Snakemake resubmits it, and the study must continue.

    python .ci/slurm/kill_hpo_worker.py WORKDIR STUDY [--timeout 600]

Prints the trial and process it killed; exit 1 if no trial ran within the timeout.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def running_trial(journal: Path, study: str) -> optuna.trial.FrozenTrial | None:
    """A trial that has started training (its worker recorded itself) and has not finished."""
    if not journal.is_file():
        return None
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return None
    for trial in trials:
        if trial.state == optuna.trial.TrialState.RUNNING and "worker" in trial.user_attrs:
            return trial
    return None


def worker_pid(workdir: Path, index: int) -> int | None:
    """The `mlpf hpo worker --index INDEX` process running in WORKDIR."""
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = (proc / "cwd").resolve()
        except OSError:
            continue
        if cwd != workdir.resolve() or b"worker" not in args or b"hpo" not in args:
            continue
        if any(a.endswith(b"mlpf") for a in args[:2]) and args[args.index(b"--index") + 1] == str(index).encode():
            return int(proc.name)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("study")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    journal = args.workdir / "results" / "studies" / args.study / "journal.log"
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.timeout:
        trial = running_trial(journal, args.study)
        pid = worker_pid(args.workdir, trial.user_attrs["worker"]) if trial else None
        if pid:
            os.kill(pid, signal.SIGKILL)
            print(f"killed worker {trial.user_attrs['worker']} (pid {pid}) during trial {trial.number}")
            return 0
        time.sleep(0.2)
    print(f"no running trial within {args.timeout} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
