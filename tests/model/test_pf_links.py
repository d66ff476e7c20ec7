"""The particle-flow track-cluster link: nearest cluster per track, linked momenta, the cluster reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlpf.data.features import ELEM_TYPE_CLUSTER, ELEM_TYPE_HIT, ELEM_TYPE_TRACK, X_ENERGY, X_TYPE
from mlpf.io.edm4hep.collections import SUBDETECTOR_ECAL, SUBDETECTOR_HCAL, SUBDETECTOR_OTHER
from mlpf.model import pf_links
from mlpf.model.pf_links import (
    LINK_MAX_DISTANCE,
    MIN_REFERENCE_FRACTION,
    X_CLUSTER_ECAL,
    X_CLUSTER_HCAL,
    X_HIT_SUBDETECTOR,
    ecal_hcal_energy,
    reference_log_ratio,
    track_cluster_links,
)


def _event(seed: int = 0, B: int = 2, N: int = 300):
    """Tracks and clusters in a few patches, so that tracks have clusters near them and some have none."""
    g = torch.Generator().manual_seed(seed)
    X = torch.zeros(B, N, 17)
    X[..., X_TYPE] = torch.randint(1, 3, (B, N), generator=g).float()
    X[..., X_ENERGY] = torch.rand(B, N, generator=g) * 20 + 0.1
    cluster = X[..., X_TYPE] == ELEM_TYPE_CLUSTER
    X[..., X_CLUSTER_ECAL] = 0.3 * X[..., X_ENERGY] * cluster
    X[..., X_CLUSTER_HCAL] = 0.7 * X[..., X_ENERGY] * cluster
    eta = torch.randint(0, 4, (B, N), generator=g) * 0.3 + torch.randn(B, N, generator=g) * 0.04
    phi = torch.randint(0, 4, (B, N), generator=g) * 0.3 + torch.randn(B, N, generator=g) * 0.04 + 3.0
    phi = torch.remainder(phi + torch.pi, 2 * torch.pi) - torch.pi  # patches across the phi = +-pi seam
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 250:] = False
    return X * mask[..., None], mask, eta, phi


def _brute_force_nearest(eta, phi, query, key):
    dphi = np.abs((phi[:, None] - phi[None, :] + np.pi) % (2 * np.pi) - np.pi)
    d2 = 4 * np.sin(dphi / 2) ** 2 + (eta[:, None] - eta[None, :]) ** 2
    d2 = np.where(query[:, None] & key[None, :] & (d2 < LINK_MAX_DISTANCE**2), d2, np.inf)
    nearest = np.argmin(d2, axis=1)
    return np.where(np.isfinite(d2.min(axis=1)), nearest, -1)


@pytest.mark.parametrize("path", ["cells", "tensor blocks", "all pairs"])
def test_each_track_links_to_its_nearest_cluster(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every path (compiled cell lists on CPUs, query blocks on GPUs, all pairs in an exported graph) links each
    track to its nearest cluster within the distance, and sums the linked momenta per cluster."""
    X, mask, eta, phi = _event()
    if path == "all pairs":
        monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    if path == "tensor blocks":  # the GPU path, run on the CPU tensors in blocks of 37 queries
        monkeypatch.setattr(
            pf_links,
            "cell_list_nearest",
            lambda eta, phi, query, key, *_: pf_links._nearest_by_tensors(eta, phi, query, key, block=37),
        )
    links = track_cluster_links(X, mask, eta, phi)
    is_track = ((X[..., X_TYPE] == ELEM_TYPE_TRACK) & mask).numpy()
    is_cluster = ((X[..., X_TYPE] == ELEM_TYPE_CLUSTER) & mask).numpy()
    for b in range(X.shape[0]):
        nearest = _brute_force_nearest(
            eta[b].double().numpy(), phi[b].double().numpy(), is_track[b], is_cluster[b]
        )
        p = X[b, :, X_ENERGY].numpy()
        expected = np.zeros(X.shape[1])
        np.add.at(expected, nearest[nearest >= 0], p[nearest >= 0])
        np.testing.assert_allclose(links.linked_momentum[b].numpy(), expected, rtol=1e-5, atol=1e-4)
        linked_tracks = is_track[b] & (nearest >= 0)
        assert 0 < linked_tracks.sum() < is_track[b].sum()  # some tracks find a cluster, some do not
        partner_energy = np.log1p(X[b, np.maximum(nearest, 0), X_ENERGY].numpy()) * linked_tracks
        got = links.features[b, :, 0].numpy()
        np.testing.assert_allclose(got[is_track[b]], partner_energy[is_track[b]], rtol=1e-5)
    assert links.features[~mask].abs().sum() == 0


def test_cluster_reference_is_the_neutral_excess() -> None:
    X = torch.zeros(1, 3, 17)
    X[0, :, X_TYPE] = ELEM_TYPE_CLUSTER
    X[0, :, X_ENERGY] = torch.tensor([10.0, 10.0, 10.0])
    linked = torch.tensor([[4.0, 0.0, 12.0]])  # a shared cluster, an isolated one, one its tracks explain
    ratio = reference_log_ratio(X, torch.ones(1, 3, dtype=torch.bool), linked)
    torch.testing.assert_close(ratio[0], torch.log(torch.tensor([0.6, 1.0, MIN_REFERENCE_FRACTION])))


def test_hits_give_their_energy_to_their_own_calorimeter() -> None:
    """A hit row keeps its subdetector code and hit type where a cluster row has its ECAL and HCAL energies:
    `ecal_hcal_energy` reads a hit's energy as ECAL or HCAL by its subdetector, a cluster's from its columns."""
    X = torch.zeros(1, 5, 17)
    X[0, :, X_TYPE] = torch.tensor(
        [ELEM_TYPE_TRACK, ELEM_TYPE_CLUSTER, ELEM_TYPE_HIT, ELEM_TYPE_HIT, ELEM_TYPE_HIT]
    )
    X[0, :, X_ENERGY] = torch.tensor([10.0, 6.0, 0.5, 0.25, 2.0])
    X[0, 1, X_CLUSTER_ECAL], X[0, 1, X_CLUSTER_HCAL] = 4.0, 2.0
    X[0, 2:, X_HIT_SUBDETECTOR] = torch.tensor([SUBDETECTOR_ECAL, SUBDETECTOR_HCAL, SUBDETECTOR_OTHER])
    X[0, 2:, X_CLUSTER_HCAL] = 20_101.0  # a hit's type code sits in the cluster's HCAL column
    ecal, hcal = ecal_hcal_energy(X)
    torch.testing.assert_close(ecal[0], torch.tensor([0.0, 4.0, 0.5, 0.0, 0.0]))
    torch.testing.assert_close(hcal[0], torch.tensor([0.0, 2.0, 0.0, 0.25, 0.0]))
