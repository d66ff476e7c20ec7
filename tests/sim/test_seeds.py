from __future__ import annotations

from mlpf.sim.seeds import PYTHIA_SEED_MAX, job_seed, stage_rng


def test_job_seed_deterministic_and_distinct():
    assert job_seed(42, "ttbar", 0) == job_seed(42, "ttbar", "0")
    seeds = {job_seed(42, s, k) for s in ("ttbar", "qq") for k in range(50)}
    assert len(seeds) == 100
    assert job_seed(1, "ttbar", 0) != job_seed(2, "ttbar", 0)
    assert all(0 < s < PYTHIA_SEED_MAX for s in seeds)


def test_stage_rngs_independent():
    a = stage_rng(5, "tracking").random(3)
    b = stage_rng(5, "calorimeter").random(3)
    assert (a != b).all()
    assert (stage_rng(5, "tracking").random(3) == a).all()
