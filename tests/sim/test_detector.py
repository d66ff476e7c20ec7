"""Detector response: tracking tables, calorimeter resolutions, clustering merge/split, hit truth."""

from __future__ import annotations

import numpy as np
import pytest

from mlpf.sim import constants as C
from mlpf.sim.calorimeter import HIT_COLLECTIONS, digitise, make_spots, resolution_em, resolution_had
from mlpf.sim.clustering import cluster_hits
from mlpf.sim.geometry import Helix
from mlpf.sim.tracking import efficiency, fitted_helix, pt_resolution, reconstruct_tracks


def _shoot(pdg, energy, eta, phi, n, seed=0):
    """n particles straight from the origin to the barrel/endcap ECAL front face."""
    theta = 2 * np.arctan(np.exp(-eta))
    u = np.column_stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    u = np.broadcast_to(u, (n, 3)).copy()
    s_b = C.ECAL_BARREL_RMIN / np.hypot(u[:, 0], u[:, 1])
    s_e = C.ECAL_ENDCAP_ZMIN / np.maximum(np.abs(u[:, 2]), 1e-9)
    barrel = s_b <= s_e
    entry = u * np.minimum(s_b, s_e)[:, None]
    idx = np.arange(n)
    spots = make_spots(
        idx,
        idx,
        np.full(n, pdg),
        np.full(n, float(energy)),
        entry,
        u,
        barrel,
        np.zeros(n),
        np.random.default_rng(seed),
    )
    return digitise(spots)


def test_tracking_efficiency_table():
    eff = efficiency(
        np.array([211, 211, 11, 13, 211]),
        np.array([10.0, 1.0, 50.0, 2.0, 10.0]),
        np.array([2.4, 1.0, 2.2, 2.3, 2.6]),
        np.array([1.0, 0.5, 5.0, 0.3, 0.05]),
    )
    np.testing.assert_allclose(eff, [0.994, 0.990, 0.998, 0.999, 0.0])


def test_track_pt_resolution_matches_delphes_table():
    n = 4000
    rng = np.random.default_rng(3)
    pt = np.full(n, 50.0)
    phi = rng.uniform(-np.pi, np.pi, n)
    mom = np.column_stack([pt * np.cos(phi), pt * np.sin(phi), np.zeros(n)])
    tracks = reconstruct_tracks(
        np.zeros(n, dtype=int),
        np.arange(n),
        np.full(n, 211),
        rng.choice([-1.0, 1.0], n),
        np.zeros((n, 3)),
        mom,
        np.full(n, 50.0),
        rng,
        fake_rate=0.0,
    )
    assert len(tracks.evt) == n  # central 50 GeV pions: efficiency 1
    pt_meas = 3e-4 * C.B_FIELD_T / np.abs(tracks.params["omega"])
    rel = np.std(pt_meas / 50.0 * (2.99792458e-4 / 3e-4) - 1)
    expected = pt_resolution(np.array([211]), np.array([0.0]), np.array([50.0]))[0]
    assert expected == pytest.approx(np.hypot(1.32845e-5 * 50, 2.09325e-3))
    assert rel == pytest.approx(expected, rel=0.1)
    assert np.all(tracks.hit_numbers.sum(axis=1) >= C.MIN_TRACK_HITS)
    np.testing.assert_array_equal(tracks.states["location"][0], [1, 2, 3, 4])
    # calorimeter-face state sits on the ECAL barrel radius
    r_calo = np.hypot(tracks.states["referencePoint.x"][:, 3], tracks.states["referencePoint.y"][:, 3])
    np.testing.assert_allclose(r_calo, C.ECAL_BARREL_RMIN, rtol=1e-6)


def test_calorimeter_state_is_the_fitted_track_extrapolated():
    """The AtCalorimeter state (and with it the baseline's track-cluster link) comes from the fitted track
    parameters, as a reconstruction extrapolates its fit, not from the particle's true helix."""
    n = 3000
    rng = np.random.default_rng(5)
    pt = rng.uniform(1.0, 5.0, n)  # low pT: the fit's curvature error moves the face point visibly
    phi = rng.uniform(-np.pi, np.pi, n)
    mom = np.column_stack([pt * np.cos(phi), pt * np.sin(phi), rng.uniform(-0.5, 0.5, n) * pt])
    charge = rng.choice([-1.0, 1.0], n)
    tracks = reconstruct_tracks(
        np.zeros(n, dtype=int), np.arange(n), np.full(n, 211), charge, np.zeros((n, 3)), mom,
        np.linalg.norm(mom, axis=1), rng, fake_rate=0.0,
    )  # fmt: skip
    fit = fitted_helix(tracks.params)
    s, _ = fit.to_box(C.ECAL_BARREL_RMIN, C.ECAL_ENDCAP_ZMIN)
    x, y, z, state_phi = fit.at(s)
    np.testing.assert_allclose(tracks.calo_point, np.column_stack([x, y, z]), atol=1e-6)
    np.testing.assert_allclose(tracks.states["referencePoint.x"][:, 3], x, atol=1e-6)
    np.testing.assert_allclose(tracks.states["phi"][:, 3], state_phi, atol=1e-9)
    # the true particle arrives elsewhere, by about the fit's error: 0.1-1 mm at these momenta
    found = tracks.link_mc[:, 0]
    true = Helix(*np.zeros((3, len(found))), *mom[found].T, charge[found])
    s_true, _ = true.to_box(C.ECAL_BARREL_RMIN, C.ECAL_ENDCAP_ZMIN)
    distance = np.linalg.norm(np.column_stack(true.at(s_true)[:3]) - tracks.calo_point, axis=1)
    assert 0.05 < np.median(distance) < 5.0
    # the IP parameters reproduce themselves through the fitted helix
    for name, value in fit.perigee().items():
        np.testing.assert_allclose(value, tracks.params[name], atol=1e-6, rtol=1e-9)


def test_low_pt_and_forward_particles_are_not_tracked():
    n = 3
    mom = np.array([[0.05, 0.0, 0.0], [1.0, 0.0, 40.0], [5.0, 0.0, 0.0]])
    vtx = np.array(
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1400.0, 0.0, 0.0]]
    )  # last one born outside the tracker
    tracks = reconstruct_tracks(
        np.zeros(n, dtype=int),
        np.arange(n),
        np.full(n, 211),
        np.ones(n),
        vtx,
        mom,
        np.linalg.norm(mom, axis=1),
        np.random.default_rng(0),
        fake_rate=0.0,
    )
    assert len(tracks.evt) == 0


@pytest.mark.parametrize(
    ("pdg", "energy", "eta", "resolution"),
    [
        (22, 10.0, 0.2, resolution_em),
        (22, 50.0, 1.8, resolution_em),
        (2112, 20.0, 0.2, resolution_had),
    ],
)
def test_calorimeter_energy_scale_and_resolution(pdg, energy, eta, resolution):
    n = 400
    hits = _shoot(pdg, energy, eta, 0.3, n)
    visible = energy - C.NEUTRON_MASS * 0 if pdg != 2112 else energy  # the test passes the visible energy
    total = np.bincount(hits.evt, weights=hits.energy, minlength=n)
    expected = resolution(np.array([visible]), np.array([eta]))[0] / visible
    assert np.mean(total) / visible == pytest.approx(1.0, abs=0.03)
    assert np.std(total) / np.mean(total) == pytest.approx(expected, rel=0.2)


def test_em_shower_stays_in_ecal_hadron_shares():
    gam = _shoot(22, 20.0, 0.0, 0.0, 50)
    ecal = np.isin(gam.collection, [0, 1])
    assert gam.energy[ecal].sum() / gam.energy.sum() > 0.97
    had = _shoot(211, 20.0, 0.0, 0.0, 300, seed=1)
    ecal_h = np.bincount(
        had.evt, weights=np.where(np.isin(had.collection, [0, 1]), had.energy, 0), minlength=300
    )
    tot_h = np.bincount(had.evt, weights=had.energy, minlength=300)
    frac = ecal_h / tot_h
    # PAPAS sharing: ~63% of hadrons start in the 1 lambda ECAL and leave U(0, 0.7) there
    assert 0.15 < np.mean(frac) < 0.35
    assert np.mean(frac < 0.05) > 0.25


def test_muons_are_mips_with_muon_hits():
    hits = _shoot(13, 30.0, 0.1, 1.0, 50)
    total = np.bincount(hits.evt, weights=np.where(hits.collection < 5, hits.energy, 0), minlength=50)
    assert np.median(total) == pytest.approx(C.MIP_ECAL_GEV + C.MIP_HCAL_GEV, rel=0.2)
    n_muon = np.bincount(hits.evt[hits.collection == HIT_COLLECTIONS.index("MUON")], minlength=50)
    assert np.all(n_muon >= 3)


def test_hit_truth_links_carry_the_hit_energy():
    hits = _shoot(22, 10.0, 0.0, 0.0, 20)
    per_hit = np.bincount(hits.link_hit, weights=hits.link_energy, minlength=len(hits.energy))
    np.testing.assert_allclose(per_hit, hits.energy, rtol=1e-9)
    assert np.all(hits.energy >= C.ECAL_HIT_THRESHOLD)


def _two_photons(dphi):
    """Two 10 GeV photons in one event, dphi apart."""
    a = _shoot(22, 10.0, 0.0, 0.0, 1, seed=5)
    b = _shoot(22, 10.0, 0.0, dphi, 1, seed=6)
    from mlpf.sim.calorimeter import Hits

    b.link_mc[:] = 1
    return Hits(
        *(
            np.concatenate([getattr(a, f), getattr(b, f) if f != "link_hit" else b.link_hit + len(a.evt)])
            for f in Hits.__dataclass_fields__
        )
    )


def test_clustering_separates_and_merges():
    far = cluster_hits(_two_photons(0.2))
    assert len(far.evt) == 2
    np.testing.assert_allclose(far.energy.sum(), 20.0, rtol=0.15)
    near = cluster_hits(_two_photons(0.003))
    assert len(near.evt) == 1
    assert near.hit_counts.sum() == len(near.hit_rows)
