"""Per-job random seeds derived from the master seed and the job's wildcards."""

from __future__ import annotations

import hashlib

import numpy as np

# Pythia8 accepts Random:seed in [0, 900000000]; 0 would mean "seed from the clock", so it is avoided.
PYTHIA_SEED_MAX = 900_000_000


def job_seed(master_seed: int, sample: str, shard: int | str) -> int:
    """Deterministic seed for one (sample, shard) job: same inputs, same seed; different shards differ.

    A cryptographic hash of the three values, so neighbouring shards get unrelated seeds.
    """
    digest = hashlib.sha256(f"mlpf-fastsim:{int(master_seed)}:{sample}:{shard}".encode()).digest()
    return 1 + int.from_bytes(digest[:8], "little") % (PYTHIA_SEED_MAX - 1)


def stage_rng(seed: int, stage: str) -> np.random.Generator:
    """An independent numpy Generator per simulation stage, so changing one stage leaves the others' draws alone."""
    key = int.from_bytes(hashlib.sha256(stage.encode()).digest()[:4], "little")
    return np.random.default_rng(np.random.SeedSequence([int(seed), key]))
