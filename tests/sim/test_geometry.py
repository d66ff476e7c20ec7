from __future__ import annotations

import numpy as np
import pytest

from mlpf.sim import constants as C
from mlpf.sim.collections import COLLECTION_IDS
from mlpf.sim.geometry import Helix


def test_collection_ids_are_podio_hashes():
    # MCParticles ID in every Key4HEP file (podio murmurhash3 of the name)
    assert COLLECTION_IDS["MCParticles"] == 2714477136


@pytest.mark.parametrize("charge", [1.0, -1.0])
def test_perigee_matches_upstream_pt_formula(charge):
    rng = np.random.default_rng(1)
    n = 200
    pt = rng.uniform(0.2, 100, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    pz = rng.normal(size=n) * pt
    h = Helix(
        np.zeros(n), np.zeros(n), np.zeros(n), pt * np.cos(phi), pt * np.sin(phi), pz, np.full(n, charge)
    )
    par = h.perigee()
    # upstream MLPF: pt = 3e-4 |B / omega| with omega in 1/mm and B = 4 T; sign of omega = charge
    np.testing.assert_allclose(3e-4 * C.B_FIELD_T / np.abs(par["omega"]), pt, rtol=1e-3)
    assert np.all(np.sign(par["omega"]) == charge)
    np.testing.assert_allclose(par["tanLambda"], pz / pt)
    np.testing.assert_allclose(np.angle(np.exp(1j * (par["phi"] - phi))), 0, atol=1e-9)
    np.testing.assert_allclose(par["D0"], 0, atol=1e-9)
    np.testing.assert_allclose(par["Z0"], 0, atol=1e-9)


def test_displaced_track_d0_and_curvature_direction():
    # a positive track along +x starting at y = 5 mm: D0 magnitude 5 mm; in +z field it bends to -y
    h = Helix([0.0], [5.0], [3.0], [10.0], [0.0], [0.0], [1.0])
    par = h.perigee()
    assert abs(abs(par["D0"][0]) - 5.0) < 1e-6
    assert abs(par["Z0"][0] - 3.0) < 1e-6
    x, y, _, _ = h.at(np.array([0.1]))
    assert y[0] < 5.0
    assert x[0] > 0


def test_cylinder_crossing_radius():
    rng = np.random.default_rng(2)
    n = 100
    pt = rng.uniform(1, 50, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    q = rng.choice([-1.0, 1.0], n)
    h = Helix(np.zeros(n), np.zeros(n), np.zeros(n), pt * np.cos(phi), pt * np.sin(phi), np.zeros(n), q)
    s = h.to_cylinder(1500.0)
    x, y, _, _ = h.at(s)
    np.testing.assert_allclose(np.hypot(x, y), 1500.0, rtol=1e-9)
    # low-pT loopers never reach: 2R < 1500 mm for pT < 0.9 GeV
    low = Helix([0.0], [0.0], [0.0], [0.5], [0.0], [0.0], [1.0])
    assert np.isinf(low.to_cylinder(1500.0)[0])
    # neutral particles go straight
    n0 = Helix([0.0], [0.0], [0.0], [0.5], [0.5], [0.0], [0.0])
    x, y, _, phi0 = n0.at(n0.to_cylinder(1500.0))
    assert abs(x[0] - y[0]) < 1e-9
    assert abs(phi0[0] - np.pi / 4) < 1e-12


def test_perigee_of_displaced_helices_is_their_closest_point():
    rng = np.random.default_rng(0)
    n = 500
    x0, y0, z0 = rng.normal(size=(3, n)) * 50
    pt = rng.uniform(0.3, 20, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    h = Helix(
        x0, y0, z0, pt * np.cos(phi), pt * np.sin(phi), rng.normal(size=n) * pt, rng.choice([-1.0, 1.0], n)
    )
    p = h.perigee()
    # LCIO: the PCA is (-D0 sin phi0, D0 cos phi0); it lies on the circle, nearest to the z axis
    xp, yp = -p["D0"] * np.sin(p["phi"]), p["D0"] * np.cos(p["phi"])
    np.testing.assert_allclose(np.hypot(xp - h.xc, yp - h.yc), h.radius, atol=1e-6)
    np.testing.assert_allclose(np.hypot(xp, yp), np.abs(np.hypot(h.xc, h.yc) - h.radius), atol=1e-6)
    # following the helix from the start to the PCA gives Z0 and the direction phi0
    alpha = (np.arctan2(yp - h.yc, xp - h.xc) - h.beta0) * h.h
    x, y, z, ph = h.at((alpha + np.pi) % (2 * np.pi) - np.pi)
    np.testing.assert_allclose(np.hypot(x - xp, y - yp), 0, atol=1e-6)
    np.testing.assert_allclose(z, p["Z0"], atol=1e-6)
    np.testing.assert_allclose(np.angle(np.exp(1j * (ph - p["phi"]))), 0, atol=1e-9)
