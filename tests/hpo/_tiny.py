"""A tiny study: parquet shards, base configuration and `hpo` settings shared by the HPO tests."""

from __future__ import annotations

from typing import Any

from mlpf.config import validate_section

# A model that trains an epoch of the tiny shards in a fraction of a second on one thread.
MODEL = {"width": 16, "num_layers": 1, "num_heads": 2, "head_width": 8, "calorimeter_features": False}
TRAINING = {"batch_size": 8, "learning_rate": 0.003}
DATASET = {"validation_fraction": 0.25}
# Two tuned keys keep the tests' search space small; everything else stays at the base values.
SPACE = {
    "model": {
        "num_layers": None,
        "width": None,
        "num_heads": None,
        "bin_size": None,
        "distance_dim": None,
        "dropout": {"low": 0.0, "high": 0.2},
    },
    "training": {
        "learning_rate": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
        "weight_decay": None,
        "batch_size": None,
        "loss_weights": {"binary": None, "pid": None, "pt": None, "energy": None},
    },
}


def hpo_settings(**overrides: Any) -> dict[str, Any]:
    """A validated `hpo` section: the tests' small space, 2 epochs per trial, plus `overrides`."""
    return validate_section("hpo", {"search_space": SPACE, "epochs": 2, **overrides})
