"""Fixtures of the HPO tests: tiny parquet shards and the tiny base configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlpf.config import validate_section
from model._synthetic import write_parquet

from ._tiny import DATASET, MODEL, TRAINING


@pytest.fixture(scope="session")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("hpo-datasets")
    return [
        write_parquet(root / "ttbar" / "0.parquet", 40, seed=1),
        write_parquet(root / "qq" / "0.parquet", 24, seed=2),
    ]


@pytest.fixture
def base() -> dict[str, dict[str, Any]]:
    return {
        "model": validate_section("model", MODEL),
        "training": validate_section("training", TRAINING),
        "dataset": validate_section("dataset", DATASET),
    }
