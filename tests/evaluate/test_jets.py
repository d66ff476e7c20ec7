"""Jet clustering and gen-reco matching against hand-built events with known answers."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from mlpf.evaluate.jets import JetDefinition, cluster, delta_r, match, matched_pt
from mlpf.evaluate.particles import missing_pt, reco_particles, total_momentum, truth_particles

CLIC_JETS = JetDefinition(radius=0.4, p=-1.0, min_pt=5.0, match_dr=0.1)


def _massless(pt: float, eta: float, phi: float) -> dict[str, float]:
    return {"pt": pt, "eta": eta, "phi": phi, "energy": pt * np.cosh(eta)}


def _truth(events: list[list[dict[str, float]]]) -> ak.Array:
    return truth_particles(ak.Array(events))


def test_two_close_particles_make_one_jet_and_far_ones_separate() -> None:
    events = _truth(
        [
            # A and B are 0.2 rad apart (< R = 0.4): one jet with their summed momentum; C alone; D below 5 GeV.
            [_massless(30, 0, 0), _massless(20, 0, 0.2), _massless(10, 0, 2.0), _massless(3, 0, -2.0)],
            [],  # no particles: no jets, no crash
            # 0.6 rad apart in phi at eta = 0 (> R): two jets.
            [_massless(12, 0, 1.0), _massless(8, 0, 1.6)],
        ]
    )
    jets = cluster(events, CLIC_JETS)
    assert ak.num(jets, axis=1).tolist() == [2, 0, 2]
    px = 30 + 20 * np.cos(0.2)
    py = 20 * np.sin(0.2)
    leading = jets[0][0]
    assert leading.pt == pytest.approx(np.hypot(px, py), rel=1e-9)
    assert leading.phi == pytest.approx(np.arctan2(py, px), abs=1e-9)
    assert leading.eta == pytest.approx(0.0, abs=1e-9)
    assert leading.energy == pytest.approx(50.0, rel=1e-9)
    assert jets[0][1].pt == pytest.approx(10.0, rel=1e-9)
    # Sorted by decreasing pT.
    assert jets[2].pt.tolist() == pytest.approx([12.0, 8.0])


def test_larger_radius_merges_what_smaller_radius_splits() -> None:
    events = _truth([[_massless(12, 0, 1.0), _massless(8, 0, 1.6)]])
    wide = cluster(events, JetDefinition(radius=0.7, p=-1.0, min_pt=5.0))
    assert ak.num(wide, axis=1).tolist() == [1]
    assert wide[0][0].pt == pytest.approx(
        np.hypot(12 * np.cos(1) + 8 * np.cos(1.6), 12 * np.sin(1) + 8 * np.sin(1.6))
    )


def test_min_pt_threshold_removes_soft_jets() -> None:
    events = _truth([[_massless(6, 0.5, 0), _massless(4, -0.5, 2.5)]])
    assert cluster(events, CLIC_JETS).pt.tolist() == [[pytest.approx(6.0)]]
    assert ak.num(cluster(events, JetDefinition(radius=0.4, min_pt=7.0)), axis=1).tolist() == [0]


def _jets(rows: list[list[tuple[float, float, float]]]) -> ak.Array:
    return ak.Array(
        [[{"pt": pt, "eta": eta, "phi": phi, "energy": pt} for pt, eta, phi in ev] for ev in rows]
    )


def test_match_takes_nearest_reco_jet_within_dr() -> None:
    gen = _jets([[(50, 0.0, 0.0), (30, 1.0, 2.0)], [(20, 0.0, 3.1)], [(25, 0.0, 0.0)], []])
    reco = _jets([[(28, 1.02, 2.0), (45, 0.05, 0.0), (40, 0.0, 0.09)], [], [(24, 0.0, 0.15)], [(10, 0, 0)]])
    index, dr = match(gen, reco, 0.1)
    # Gen jet 0 of event 0: reco 1 is 0.05 away, reco 2 is 0.09 away: the nearest wins.
    assert index.tolist() == [[1, 0], [-1], [-1], []]
    assert dr[0].tolist() == pytest.approx([0.05, 0.02])
    assert dr[1].tolist() == [np.inf]  # no reco jet in the event
    assert dr[2].tolist() == pytest.approx([0.15])  # nearest but outside Delta R < 0.1
    assert ak.to_list(matched_pt(reco, index)[:2]) == [[45.0, 28.0], [pytest.approx(np.nan, nan_ok=True)]]


def test_match_wraps_phi_and_is_not_one_to_one() -> None:
    gen = _jets([[(20, 0.0, 3.12), (18, 0.0, -3.12)]])
    reco = _jets([[(19, 0.0, -3.13), (5, 0.0, 0.0)]])
    index, dr = match(gen, reco, 0.1)
    # Both generator jets sit within 0.03 of the same reconstructed jet across the phi = +-pi boundary.
    assert index.tolist() == [[0, 0]]
    expected = 2 * np.pi - 3.12 - 3.13
    assert dr[0][0] == pytest.approx(expected, abs=1e-9)
    assert dr[0][1] == pytest.approx(0.01, abs=1e-9)


def test_delta_r_is_symmetric_and_wrapped() -> None:
    assert delta_r(0.0, np.pi - 0.05, 0.0, -np.pi + 0.05) == pytest.approx(0.1)
    assert delta_r(1.0, 0.0, 0.0, 0.0) == pytest.approx(1.0)


def _rows(*particles: tuple[int, float, float, float, float]) -> list[list[float]]:
    """(class, pt, eta, phi, energy) -> contract rows class, charge, pt, eta, sin_phi, cos_phi, energy."""
    return [[c, 0.0, pt, eta, np.sin(phi), np.cos(phi), e] for c, pt, eta, phi, e in particles]


def test_reco_particles_skip_class_zero_and_give_met() -> None:
    rows = ak.Array(
        [
            _rows((1, 10.0, 0.0, 0.0, 10.0), (0, 99.0, 0.0, 1.0, 99.0), (3, 10.0, 0.0, np.pi / 2, 10.0)),
            _rows((0, 5.0, 0.0, 0.0, 5.0)),
        ]
    )
    particles = reco_particles(rows)
    assert ak.num(particles, axis=1).tolist() == [2, 0]
    # Two 10 GeV particles at right angles: MET = 10 sqrt(2); the class-0 row does not count.
    assert missing_pt(particles).tolist() == pytest.approx([10 * np.sqrt(2), 0.0])
    assert total_momentum(particles).tolist() == pytest.approx([10 * np.sqrt(2), 0.0])


def test_total_momentum_includes_longitudinal_component() -> None:
    events = _truth([[_massless(10, 1.0, 0.0), _massless(10, 1.0, np.pi)]])
    # Transverse parts cancel; the longitudinal parts add: |sum p| = 2 * 10 sinh(1).
    assert missing_pt(events)[0] == pytest.approx(0.0, abs=1e-9)
    assert total_momentum(events)[0] == pytest.approx(20 * np.sinh(1.0))
