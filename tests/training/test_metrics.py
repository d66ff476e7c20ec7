"""Tests of the validation metrics."""

from __future__ import annotations

import numpy as np

from mlpf.evaluate.jets import JetDefinition
from mlpf.training.metrics import (
    ResponseAccumulator,
    jet_response_iqr_over_median,
    met_response_iqr_over_median,
    response_iqr_over_median,
)
from model._synthetic import make_events


def test_response_iqr_over_median() -> None:
    ref = np.array([10.0, 20.0, 30.0, 40.0, 0.0])
    assert response_iqr_over_median(1.1 * ref, ref) == 0.0  # a pure scale has no spread
    reco = ref * np.array([0.8, 0.9, 1.1, 1.2, 1.0])
    assert response_iqr_over_median(reco, ref) > 0.1
    assert np.isnan(response_iqr_over_median(ref[-1:], ref[-1:]))


def test_jet_response_is_zero_for_perfect_and_grows_with_smearing() -> None:
    events = make_events(20, seed=4, n_min=40, n_max=80)
    counts = np.asarray(events.X.layout.offsets.data[1:] - events.X.layout.offsets.data[:-1])
    target = np.asarray(events.ytarget.layout.content.content.data).reshape(-1, 7).copy()
    jets = JetDefinition()
    assert jet_response_iqr_over_median(target, target, counts, jets) == 0.0
    rng = np.random.default_rng(0)
    smeared = target.copy()
    factor = rng.normal(1.0, 0.3, len(target)).clip(0.1)
    smeared[:, 2] *= factor
    smeared[:, 6] *= factor
    iqr = jet_response_iqr_over_median(smeared, target, counts, jets)
    assert 0.02 < iqr < 0.5
    # the definition is the caller's: jets above 1 TeV do not exist here, so nothing is matched
    assert np.isnan(jet_response_iqr_over_median(smeared, target, counts, JetDefinition(min_pt=1000.0)))


def test_met_response_is_zero_for_perfect_and_grows_with_smearing() -> None:
    events = make_events(40, seed=5, n_min=20, n_max=60)
    counts = np.asarray(events.X.layout.offsets.data[1:] - events.X.layout.offsets.data[:-1])
    target = np.asarray(events.ytarget.layout.content.content.data).reshape(-1, 7).copy()
    assert met_response_iqr_over_median(target, target, counts) == 0.0
    rng = np.random.default_rng(1)
    smeared = target.copy()
    smeared[:, 2] *= rng.normal(1.0, 0.3, len(target)).clip(0.1)
    assert met_response_iqr_over_median(smeared, target, counts) > 0.05
    no_particles = target.copy()
    no_particles[:, 0] = 0  # no target particle: target MET 0 in every event, so no response is defined
    assert np.isnan(met_response_iqr_over_median(target, no_particles, counts))


def test_accumulated_responses_equal_those_of_all_rows_at_once() -> None:
    events = make_events(30, seed=6, n_min=40, n_max=80)
    counts = np.asarray(events.X.layout.offsets.data[1:] - events.X.layout.offsets.data[:-1])
    target = np.asarray(events.ytarget.layout.content.content.data).reshape(-1, 7).copy()
    rng = np.random.default_rng(2)
    pred, cand = target.copy(), target.copy()
    pred[:, 2] *= rng.normal(1.0, 0.3, len(target)).clip(0.1)
    cand[:, 2] *= rng.normal(1.0, 0.2, len(target)).clip(0.1)
    jets = JetDefinition()
    accumulator = ResponseAccumulator(jets, chunk_events=7)  # reduced every 7 events: several chunks
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for lo in range(0, 30, 4):  # batches of 4 events
        rows = slice(offsets[lo], offsets[min(lo + 4, 30)])
        accumulator.add(pred[rows], cand[rows], target[rows], counts[lo : lo + 4])
    got = accumulator.iqr_over_median()
    assert got["jet"] == jet_response_iqr_over_median(pred, target, counts, jets) > 0
    assert got["jet_pf"] == jet_response_iqr_over_median(cand, target, counts, jets) > 0
    assert got["met"] == met_response_iqr_over_median(pred, target, counts) > 0
    assert got["met_pf"] == met_response_iqr_over_median(cand, target, counts) > 0
    assert np.isnan(ResponseAccumulator(jets, 7).iqr_over_median()["jet"])  # nothing added: no response
