"""Fixtures of the evaluation tests: synthetic prediction files (see synthetic_predictions.py)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import pytest
from synthetic_predictions import make_events


@pytest.fixture(scope="session")
def synthetic_events() -> ak.Array:
    return make_events(300, seed=7)


@pytest.fixture(scope="session")
def predictions_file(tmp_path_factory: pytest.TempPathFactory, synthetic_events: ak.Array) -> Path:
    path = tmp_path_factory.mktemp("predictions") / "ttbar.parquet"
    ak.to_parquet(synthetic_events, path)
    return path
