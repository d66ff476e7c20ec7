"""Generation and stored truth: status codes, ancestry, beam effects, long-lived decays, pile-up, guns."""

from __future__ import annotations

import numpy as np
import pytest

from mlpf.sim import constants as C
from mlpf.sim.generate import generate
from mlpf.sim.seeds import stage_rng
from mlpf.sim.truth import BIT_OVERLAY, build_truth


def _truth(sample, n=20, seed=3, **kw):
    gen = generate(sample, n, seed, 380.0, (kw.pop("emin", 1.0), kw.pop("emax", 100.0)), **kw)
    return gen, build_truth(gen, stage_rng(seed, "truth"), C.VERTEX_SIGMA_MM, C.CROSSING_ANGLE_BOOST)


def test_status_codes_and_ancestry():
    _, t = _truth("ttbar")
    # far fewer stored particles than Pythia entries, but every final-state particle is kept
    assert set(np.unique(t.gen_status)) >= {1, 2, 4, 22}
    off = t.offsets
    glob_parent = np.where(t.parent >= 0, t.parent + off[t.evt], -1)
    has_children = np.bincount(glob_parent[glob_parent >= 0], minlength=len(t.evt)) > 0
    assert not np.any(has_children[t.gen_status == 1])  # final-state particles have no daughters
    assert np.all(has_children[t.gen_status == 2])  # decayed ones do
    # decayed parents produced their daughters where they ended
    child = np.flatnonzero(glob_parent >= 0)
    decayed_parent = t.gen_status[glob_parent[child]] == 2
    d = np.hypot(t.vx[child] - t.ex[glob_parent[child]], t.vy[child] - t.ey[glob_parent[child]])
    assert np.all(d[decayed_parent] < 1e-6)
    # ttbar: top quarks in the hard process
    assert np.all(np.bincount(t.evt[np.abs(t.pdg) == 6], minlength=20) >= 2)


def test_final_state_carries_the_boosted_beam_momentum():
    _, t = _truth("qq", n=30)
    fin = t.final
    e = np.bincount(t.evt[fin], weights=t.energy[fin])
    px = np.bincount(t.evt[fin], weights=t.px[fin])
    beta = np.tan(C.CROSSING_ANGLE_BOOST)
    gamma = 1 / np.sqrt(1 - beta**2)
    # beam remnants (ISR photons along the beams) are final-state particles too: the full 4-momentum is kept
    np.testing.assert_allclose(e, gamma * 380.0, rtol=1e-6)
    np.testing.assert_allclose(px, beta * gamma * 380.0, rtol=1e-4)


def test_long_lived_decays_only_inside_the_cylinder():
    _, t = _truth("ttbar", n=40)
    decayed = t.gen_status == 2
    r = np.hypot(t.ex[decayed], t.ey[decayed])
    assert np.all(r < C.DECAY_XY_MAX + 1.0)
    assert np.all(np.abs(t.ez[decayed]) < C.DECAY_Z_MAX + 50.0)
    # K0S and Lambda decay in flight (displaced), K0L does not decay
    k0s = decayed & np.isin(np.abs(t.pdg), (310, 3122))
    assert np.median(np.hypot(t.ex[k0s], t.ey[k0s])) > 1.0
    assert not np.any(decayed & (np.abs(t.pdg) == 130))


def test_pileup_overlay_keeps_subevents_apart():
    _, t = _truth("ttbar_pu10", n=6, pileup_mean=10.0)
    ov = ((t.sim_status >> BIT_OVERLAY) & 1).astype(bool)
    assert ov.sum() > 0
    assert (~ov).sum() > 0
    off = t.offsets
    has_parent = t.parent >= 0
    parent_ov = ov[t.parent[has_parent] + off[t.evt[has_parent]]]
    np.testing.assert_array_equal(parent_ov, ov[has_parent])
    # pile-up interactions come in later bunch crossings (0.5 ns apart)
    assert np.median(t.time[ov]) > 0.4
    assert np.median(np.abs(t.time[~ov & (t.gen_status == 1)])) < 0.1


def test_pileup_overlay_holds_the_hadronic_products_without_the_beams():
    """The overlay delivers the photon-photon interactions' products, not the scattered beam leptons."""
    n = 8
    _, t = _truth("ttbar_pu10", n=n, pileup_mean=10.0)
    ov = ((t.sim_status >> BIT_OVERLAY) & 1).astype(bool)
    final_ov = ov & t.final
    # the scattered e+ e- of lepton2gamma carry ~165 GeV each down the beam pipe; none is left
    beam_like = final_ov & (np.abs(t.pdg) == 11) & (t.energy > 50.0)
    assert not beam_like.any()
    assert not np.any(ov & (t.gen_status == 4))  # no pile-up beam entries either
    # what is left is hadronic activity: tens of GeV per event, mostly hadrons and photons from their decays
    per_event = np.bincount(t.evt[final_ov], weights=t.energy[final_ov], minlength=n)
    assert 20.0 < np.median(per_event) < 2000.0
    hadronic = np.isin(np.abs(t.pdg[final_ov]), (22, 211, 321, 2212, 2112, 130, 11, 13, 12, 14, 16))
    assert hadronic.mean() > 0.95


def test_gun_energy_range_and_species():
    _, t = _truth("gun_pi", n=50, emin=10.0, emax=20.0)
    first = t.offsets[:-1]
    assert np.all(np.abs(t.pdg[first]) == 211)
    e = t.energy[first] / np.sqrt(
        1 + np.tan(C.CROSSING_ANGLE_BOOST) ** 2
    )  # undo the boost's energy change roughly
    assert np.all((e > 9.5) & (e < 20.5))
    assert len(np.unique(np.sign(t.pdg[first]))) == 2


@pytest.mark.parametrize(("sample", "pdg"), [("zh_tautau", 15), ("ww_fullhad", 24), ("z_tautau", 15)])
def test_process_cards(sample, pdg):
    _, t = _truth(sample, n=10)
    assert np.all(np.bincount(t.evt[np.abs(t.pdg) == pdg], minlength=10) >= 1)
