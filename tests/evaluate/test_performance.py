"""Evaluation of 10k events must take under a minute on one core (issue requirement)."""

from __future__ import annotations

import time
from pathlib import Path

import awkward as ak
import pytest
from synthetic_predictions import make_events

from mlpf.config import validate_section
from mlpf.evaluate.evaluation import evaluate_events
from mlpf.evaluate.reader import read_predictions

N_EVENTS = 10_000
BUDGET_S = 60.0


@pytest.mark.slow
def test_ten_thousand_events_in_under_a_minute(tmp_path: Path) -> None:
    # ~80 truth particles and ~96 elements per event, about a CLIC ttbar event's size.
    events = make_events(N_EVENTS, seed=3, sprays=(4, 8), per_spray=(5, 25))
    path = tmp_path / "pred.parquet"
    ak.to_parquet(events, path)
    settings = validate_section("evaluation", {"jets": {"radius": 0.4, "min_pt": 5.0}})
    # CPU time of this process (all threads): independent of other jobs sharing the machine.
    start = time.process_time()
    metrics, _ = evaluate_events(read_predictions(path), settings)
    elapsed = time.process_time() - start
    assert metrics["n_events"] == N_EVENTS
    assert metrics["jets"]["n_gen_jets"] > 4 * N_EVENTS
    assert elapsed < BUDGET_S, f"{elapsed:.1f} s CPU for {N_EVENTS} events"
