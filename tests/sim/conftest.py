"""Shared fixtures: one small fastsim shard per test session (generation is the slow part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpf.config import validate_section
from mlpf.sim.pipeline import SimResult, run_shard, simulate

SMALL_EVENTS = 20


@pytest.fixture(scope="session")
def fastsim_settings() -> dict:
    return validate_section("fastsim", {"events_per_shard": SMALL_EVENTS})


@pytest.fixture(scope="session")
def ttbar_file(tmp_path_factory: pytest.TempPathFactory, fastsim_settings: dict) -> Path:
    path = tmp_path_factory.mktemp("fastsim") / "ttbar" / "0.root"
    run_shard("ttbar", "0", 42, fastsim_settings, path, show_progress=False)
    return path


@pytest.fixture(scope="session")
def ttbar_result(fastsim_settings: dict) -> SimResult:
    return simulate("ttbar", 30, 1234, fastsim_settings, show_progress=False)
