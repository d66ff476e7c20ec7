"""Tests of the track extrapolation to the calorimeter against the real CLD reconstruction and the fastsim helix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import uproot

from edm4hep_fixtures import CLD_FILE
from mlpf.data.features import (
    ELEM_TYPE_CLUSTER,
    ELEM_TYPE_TRACK,
    X_COS_PHI,
    X_ENERGY,
    X_ETA,
    X_SIN_PHI,
    X_TYPE,
)
from mlpf.io.edm4hep.collections import TRACK_STATE_AT_CALORIMETER, TRACK_STATE_AT_IP
from mlpf.model import geometry
from mlpf.model.geometry import (
    LINK_WIDTHS,
    N_CALORIMETER_FEATURES,
    N_LINK_FEATURES,
    N_PF_LINK_FEATURES,
    X_OMEGA,
    X_TAN_LAMBDA,
    X_Z0,
    calorimeter_features,
    helix_at_calorimeter,
    link_features,
    n_calorimeter_features,
)
from mlpf.model.pf_links import X_CLUSTER_ECAL, X_CLUSTER_HCAL
from mlpf.sim import constants as C
from mlpf.sim.geometry import Helix

STATES = "_SiTracks_Refitted_trackStates/_SiTracks_Refitted_trackStates."
# Where this file's AtCalorimeter states lie: barrel from 2150 mm, endcap at |z| = 2307 mm.
CLD_ECAL_BARREL_R_MM, CLD_ECAL_ENDCAP_Z_MM = 2150.0, 2307.0


def _track_rows(phi, tan_lambda, omega, z0) -> torch.Tensor:
    X = torch.zeros(len(phi), 17, dtype=torch.float64)
    X[:, X_TYPE] = ELEM_TYPE_TRACK
    X[:, X_SIN_PHI], X[:, X_COS_PHI] = torch.sin(phi), torch.cos(phi)
    X[:, X_TAN_LAMBDA], X[:, X_OMEGA], X[:, X_Z0] = tan_lambda, omega, z0
    return X


def _wrap(dphi: np.ndarray) -> np.ndarray:
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def test_reproduces_the_real_cld_track_state_at_the_calorimeter() -> None:
    names = (
        "location",
        "phi",
        "omega",
        "tanLambda",
        "Z0",
        "referencePoint.x",
        "referencePoint.y",
        "referencePoint.z",
    )
    arrays = uproot.open(CLD_FILE)["events"].arrays([STATES + n for n in names], entry_stop=1)
    s = {n: np.asarray(arrays[STATES + n][0], dtype=np.float64) for n in names}
    ip, cal = s["location"] == TRACK_STATE_AT_IP, s["location"] == TRACK_STATE_AT_CALORIMETER
    assert ip.sum() == cal.sum() > 10
    x, y, z = (s[f"referencePoint.{c}"][cal] for c in "xyz")
    radius = np.hypot(x, y)
    in_endcap = np.abs(z) > CLD_ECAL_ENDCAP_Z_MM - 1.0
    X = _track_rows(*(torch.as_tensor(s[n][ip]) for n in ("phi", "tanLambda", "omega", "Z0")))
    # Barrel states at their own radius (the CLD ECAL barrel is a polygon, 2150-2220 mm from the beam).
    face = torch.as_tensor(np.where(in_endcap, CLD_ECAL_BARREL_R_MM, radius))
    eta, phi = helix_at_calorimeter(X, face, CLD_ECAL_ENDCAP_Z_MM)
    true_phi = np.arctan2(y, x)
    bend = np.abs(_wrap(true_phi - s["phi"][ip]))
    # 0.01 rad: D0 (up to 33 mm here) is neglected; a few real states are not at the first calorimeter crossing.
    good = (np.abs(_wrap(phi.numpy() - true_phi)) < 0.01) & (
        np.abs(eta.numpy() - np.arcsinh(z / radius)) < 0.01
    )
    assert good.mean() >= 0.75
    # ... and it follows the bending (0.2 rad typical here, up to 0.85 among the matches), not the IP direction.
    assert np.median(bend[good]) > 0.15
    assert bend[good].max() > 0.5
    assert good[in_endcap].sum() >= 1


@pytest.mark.parametrize("charge", [-1.0, 1.0])
def test_agrees_with_the_fastsim_helix_in_barrel_and_endcap(charge: float) -> None:
    rng = np.random.default_rng(3)
    n = 400
    pt = rng.uniform(1.0, 50.0, n)
    phi0 = rng.uniform(-np.pi, np.pi, n)
    tan_lambda = np.sinh(rng.uniform(-2.5, 2.5, n))
    q = np.full(n, charge)
    helix = Helix(
        np.zeros(n), np.zeros(n), np.zeros(n), pt * np.cos(phi0), pt * np.sin(phi0), pt * tan_lambda, q
    )
    s = np.minimum(helix.to_cylinder(C.ECAL_BARREL_RMIN), helix.to_plane(C.ECAL_ENDCAP_ZMIN))
    x, y, z, _ = helix.at(s)
    omega = q * C.C_LIGHT_GEV * C.B_FIELD_T / pt  # the sign convention the fastsim writes (mlpf.sim.tracking)
    X = _track_rows(*(torch.as_tensor(a) for a in (phi0, tan_lambda, omega, np.zeros(n))))
    eta, phi = helix_at_calorimeter(X, C.ECAL_BARREL_RMIN, C.ECAL_ENDCAP_ZMIN)
    np.testing.assert_allclose(_wrap(phi.numpy() - np.arctan2(y, x)), 0.0, atol=1e-6)
    np.testing.assert_allclose(eta.numpy(), np.arcsinh(z / np.hypot(x, y)), atol=1e-6)


def test_agrees_with_the_calorimeter_state_the_fast_simulation_writes(tmp_path) -> None:
    """The model extrapolates the fitted IP parameters of X itself; the fast simulation writes the same fit's
    AtCalorimeter state, so for tracks that reach the barrel (pT > 0.9 GeV in 4 T) the two agree up to the
    neglected D0 (displaced decay products)."""
    import awkward as ak

    from mlpf.data.parse import parse_file
    from mlpf.io.edm4hep.reader import Edm4hepFile
    from mlpf.sim.pipeline import run_shard

    root = tmp_path / "ttbar.root"
    run_shard("ttbar", "0", 11, {"events_per_shard": 30}, root, show_progress=False)
    parse_file(root, tmp_path / "ttbar.parquet", {})
    with Edm4hepFile(root) as source:
        state = ak.flatten(source.read(0, source.n_events).tracks).calo
    x, y, z = (ak.to_numpy(state[k]).astype(np.float64) for k in ("ref_x", "ref_y", "ref_z"))
    X = ak.to_numpy(ak.flatten(ak.from_parquet(tmp_path / "ttbar.parquet").X, axis=1)).astype(np.float64)
    X = X[X[:, X_TYPE] == ELEM_TYPE_TRACK]
    eta, phi = helix_at_calorimeter(torch.as_tensor(X), C.ECAL_BARREL_RMIN, C.ECAL_ENDCAP_ZMIN)
    reaches_barrel = X[:, 1] > 0.9
    assert reaches_barrel.sum() > 300
    distance = np.hypot(_wrap(phi.numpy() - np.arctan2(y, x)), eta.numpy() - np.arcsinh(z / np.hypot(x, y)))
    assert np.median(distance[reaches_barrel]) < 1e-4
    assert np.mean(distance[reaches_barrel] < 0.01) > 0.95


def test_clusters_keep_their_position_and_padding_is_zero() -> None:
    X = torch.zeros(1, 3, 17)
    X[0, 0, X_TYPE] = ELEM_TYPE_CLUSTER
    X[0, 0, X_ETA], X[0, 0, X_SIN_PHI], X[0, 0, X_COS_PHI] = 0.7, np.sin(2.0), np.cos(2.0)
    X[0, 1, X_TYPE] = ELEM_TYPE_TRACK
    X[0, 1, X_SIN_PHI], X[0, 1, X_COS_PHI], X[0, 1, X_OMEGA] = 0.0, 1.0, 2e-3  # 2 rho < 1500 mm: a looper
    mask = torch.tensor([[True, True, False]])
    f, linked_momentum = calorimeter_features(X, mask)
    assert f.shape == (1, 3, N_CALORIMETER_FEATURES)
    assert linked_momentum.shape == (1, 3)
    torch.testing.assert_close(
        f[0, 0, :3], torch.tensor([0.7, np.sin(2.0), np.cos(2.0)], dtype=torch.float32)
    )
    # the looper is placed half a turn on: phi0 - pi/2 for a positive track
    torch.testing.assert_close(f[0, 1, 1:3], torch.tensor([-1.0, 0.0]), atol=1e-6, rtol=0)
    assert torch.isfinite(f).all()
    assert f[0, 2].abs().sum() == 0


def test_without_link_sums_the_other_inputs_are_unchanged() -> None:
    """`link_sums=False` (model.link_sums, the hit-level configuration) leaves out exactly the kernel-sum columns."""
    g = torch.Generator().manual_seed(3)
    X = torch.zeros(1, 30, 17)
    X[..., X_TYPE] = torch.randint(1, 3, (1, 30), generator=g).float()
    X[..., X_ENERGY] = torch.rand(1, 30, generator=g) * 20
    X[..., X_ETA] = torch.randn(1, 30, generator=g) * 0.2
    phi = torch.rand(1, 30, generator=g) * 0.5
    X[..., X_SIN_PHI], X[..., X_COS_PHI] = torch.sin(phi), torch.cos(phi)
    mask = torch.ones(1, 30, dtype=torch.bool)
    full, momentum = calorimeter_features(X, mask)
    reduced, momentum_reduced = calorimeter_features(X, mask, link_sums=False)
    assert reduced.shape[-1] == n_calorimeter_features(False) == N_CALORIMETER_FEATURES - N_LINK_FEATURES
    start = N_CALORIMETER_FEATURES - N_PF_LINK_FEATURES - N_LINK_FEATURES  # the link sums precede the PF link
    assert full[..., start : start + N_LINK_FEATURES].abs().sum() > 0
    kept = torch.cat([full[..., :start], full[..., start + N_LINK_FEATURES :]], -1)
    torch.testing.assert_close(reduced, kept)
    torch.testing.assert_close(momentum_reduced, momentum)


# the grid in several query blocks with a ragged last one, in a single block, and the exported graph's all pairs
@pytest.mark.parametrize(
    ("path", "block", "exporting"),
    [("cells", 1024, False), ("grid", 7, False), ("grid", 1024, False), ("all pairs", 1024, True)],
)
def test_link_features_are_the_kernel_sums(
    path: str, block: int, exporting: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every path (compiled cell lists on CPUs, tensor grid elsewhere, all pairs in an exported graph) gives the
    brute-force kernel sums over the other elements of each type."""
    monkeypatch.setattr(geometry, "LINK_QUERY_BLOCK", block)
    monkeypatch.setattr(geometry, "compiled_cell_lists", lambda device: path == "cells")
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: exporting)
    g = torch.Generator().manual_seed(0)
    B, N = 2, 40
    X = torch.zeros(B, N, 17)
    X[..., X_TYPE] = torch.randint(1, 3, (B, N), generator=g).float()
    X[..., X_ENERGY] = torch.rand(B, N, generator=g) * 20
    fraction = torch.rand(B, N, generator=g)  # ECAL share of a cluster's energy
    X[..., X_CLUSTER_ECAL] = fraction * X[..., X_ENERGY] * (X[..., X_TYPE] == ELEM_TYPE_CLUSTER)
    X[..., X_CLUSTER_HCAL] = (1 - fraction) * X[..., X_ENERGY] * (X[..., X_TYPE] == ELEM_TYPE_CLUSTER)
    # elements packed into a few 0.1 x 0.1 patches so that every kernel width sees neighbours
    eta = torch.randint(0, 3, (B, N), generator=g) * 0.1 + torch.randn(B, N, generator=g) * 0.03
    phi = torch.randint(0, 3, (B, N), generator=g) * 0.1 + torch.randn(B, N, generator=g) * 0.03 + 3.1
    phi = torch.remainder(phi + torch.pi, 2 * torch.pi) - torch.pi  # patches across the phi = +-pi seam
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 25:] = False
    X = X * mask[..., None]
    f = link_features(X, mask, eta, phi)
    assert f.shape == (B, N, N_LINK_FEATURES)
    n_widths = len(LINK_WIDTHS)
    for w, width in enumerate(LINK_WIDTHS):
        kappa = 1.0 / width**2
        dphi = phi[..., :, None] - phi[..., None, :]
        deta = eta[..., :, None] - eta[..., None, :]
        K = torch.exp(kappa * (torch.cos(dphi.double()) - 1) - 0.5 * kappa * deta.double() ** 2) * (
            1 - torch.eye(N)
        )
        tracks = ((X[..., X_TYPE] == ELEM_TYPE_TRACK) & mask)[:, None, :].float()
        clusters = ((X[..., X_TYPE] == ELEM_TYPE_CLUSTER) & mask)[:, None, :].float()
        # columns: per width the sums of track p, cluster E, cluster E_ECAL, cluster E_HCAL; then per width the
        # track and cluster counts; then per width the excess
        for k, (keys, column) in enumerate(
            ((tracks, X_ENERGY), (clusters, X_ENERGY), (clusters, X_CLUSTER_ECAL), (clusters, X_CLUSTER_HCAL))
        ):
            value_sum = (K * keys * X[..., column][:, None, :]).sum(-1).float()
            torch.testing.assert_close(
                f[..., 4 * w + k][mask], torch.log1p(value_sum)[mask], atol=1e-5, rtol=0
            )
            if k == 0:
                excess = X[..., X_ENERGY] - value_sum
                expected = torch.sign(excess) * torch.log1p(excess.abs())
                torch.testing.assert_close(
                    f[..., 6 * n_widths + w][mask], expected[mask], atol=1e-2, rtol=1e-3
                )
        for t, keys in enumerate((tracks, clusters)):
            kernel_sum = (K * keys).sum(-1).float()
            torch.testing.assert_close(
                f[..., 4 * n_widths + 2 * w + t][mask], torch.log1p(kernel_sum)[mask], atol=1e-2, rtol=0
            )
    assert f[~mask].abs().sum() == 0
    counts = f[..., 4 * n_widths : 6 * n_widths][mask]
    assert (counts > 0.1).any()  # the patches do put neighbours in the kernels


def test_cell_lists_on_several_threads_give_the_one_thread_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlpf.model import cell_sums

    g = torch.Generator().manual_seed(3)
    B, N = 2, 600
    eta = torch.randn(B, N, generator=g) * 0.5
    phi = (torch.rand(B, N, generator=g) * 2 - 1) * torch.pi
    values = torch.rand(B, N, 4, generator=g)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 500:] = False
    args = (eta, phi, values, mask, LINK_WIDTHS, geometry.LINK_CUTOFF, geometry.LINK_GRID_ETA_MAX)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = cell_sums.cell_list_kernel_sums(*args)
        torch.set_num_threads(2)
        monkeypatch.setattr(cell_sums, "PARALLEL_MIN_ELEMENTS", 1)
        several = cell_sums.cell_list_kernel_sums(*args)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(one, several, atol=0, rtol=0)
    assert one[1, 500:].abs().sum() == 0
    assert (one[..., 1] > 0.5).any()  # a dense event: neighbours inside the kernels
