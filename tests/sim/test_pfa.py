"""Baseline particle flow on single particles: identification, linking and neutral-excess rules."""

from __future__ import annotations

import numpy as np
import pytest

from mlpf.sim.pipeline import simulate

N = 150


@pytest.fixture(scope="module")
def guns(fastsim_settings):
    settings = {**fastsim_settings, "gun_energy_min": 5.0, "gun_energy_max": 50.0}
    return {
        s: simulate(s, N, 77, settings, show_progress=False)
        for s in ("gun_pi", "gun_e", "gun_mu", "gun_gamma")
    }


def _pid_fractions(result):
    pf = result.pfos
    charged = pf.charge != 0
    return {pdg: np.mean(np.abs(pf.pdg[charged]) == pdg) for pdg in (11, 13, 211)}


def test_charged_identification(guns):
    assert _pid_fractions(guns["gun_pi"])[211] > 0.95
    assert _pid_fractions(guns["gun_e"])[11] > 0.9
    assert _pid_fractions(guns["gun_mu"])[13] > 0.95
    # the PDG sign follows the track charge (e- = +11 with charge -1)
    pf = guns["gun_e"].pfos
    ele = np.abs(pf.pdg) == 11
    assert np.all(np.sign(pf.pdg[ele]) == -pf.charge[ele])


def test_tracks_link_to_their_shower(guns):
    r = guns["gun_pi"]
    assert np.mean(r.track_cluster >= 0) > 0.95
    # few fake neutrals from a charged pion (fragments or fluctuations above 2 sigma)
    assert np.sum(r.pfos.charge == 0) / N < 0.4


def test_photons_become_photon_pfos_with_their_energy(guns):
    r = guns["gun_gamma"]
    pf = r.pfos
    assert np.mean(pf.pdg == 22) > 0.9
    lead = np.zeros(N)
    np.maximum.at(lead, pf.evt, pf.energy)
    first = r.truth.offsets[:-1]
    central = np.abs(r.truth.pz[first] / r.truth.energy[first]) < 0.7
    ratio = lead[central] / r.truth.energy[first][central]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)
