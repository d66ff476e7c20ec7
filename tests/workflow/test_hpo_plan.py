"""The plans of the HPO target and of the replicas (dry runs): what runs, where it writes, what it reuses.

The HPO stage itself runs end to end in CI (.ci/run on the tiny config, .ci/slurm/run-workflow.sh with two
SLURM workers); tests/hpo covers its parts, including a worker killed mid-trial."""

from __future__ import annotations

import re

import pytest

from snakemake_runner import run_snakemake


def plan(*args: str) -> str:
    result = run_snakemake("-n", "--cores", "2", "-p", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _jobs(out: str) -> dict[str, int]:
    table = out[out.index("Job stats:") :]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def test_hpo_target_plans_workers_sharing_one_study_and_the_comparison():
    out = plan("results/hpo", "--configfile", "config/hpo.yaml", "--config", "hpo={'n_workers': 3}")
    jobs = _jobs(out)
    assert jobs["hpo_worker"] == 3
    assert jobs["hpo_study"] == jobs["hpo_best"] == jobs["hpo"] == 1
    assert jobs["hpo_train_tuned"] == 1
    assert jobs["train"] == 1  # the default side of the comparison is the main model, trained once
    workers = [line for line in out.splitlines() if "mlpf hpo worker" in line]
    assert len(workers) == 3
    assert {re.search(r"--study-dir (\S+)", w)[1] for w in workers} == {"results/studies/hpo"}
    assert all("results/models/" not in w for w in workers)  # trials never write over the main model
    assert "infer" not in jobs  # the study uses the training shards only: no held-out test shard


def test_replica_seeds_train_beside_the_main_model_and_reach_the_card():
    out = plan("results/models/mlpf/model_card.md", "--config", "replicas={'seeds': [42, 7, 8]}")
    jobs = _jobs(out)
    assert jobs["train_replica"] == 2  # seed 42 is the main model itself
    assert jobs["train"] == 1
    assert "results/replicas/mlpf/seed7/checkpoint.pt" in out
    assert "--split-seed 42" in out
    assert "--replicas results/metrics/mlpf/replicas.json" in out


@pytest.mark.parametrize("seeds", [[], [3, 4]])
def test_comparison_seeds(seeds):
    out = plan("results/hpo", "--configfile", "config/hpo.yaml", "--config", f"replicas={{'seeds': {seeds}}}")
    jobs = _jobs(out)
    assert jobs["hpo_train_tuned"] == max(1, len(seeds))
    assert jobs.get("train_replica", 0) == len(seeds)
