"""The track-cluster link of rule-based particle flow, as inputs and as the starting point of cluster energies.

Rule-based particle flow links each track to the cluster its extrapolation reaches and assigns that cluster the
neutral excess E_cluster - sum of the linked tracks' momenta (PAPAS, Pandora; mlpf.sim.pfa does the same). The
network gets the same information here, per element:

- a track: the energy, ECAL energy and HCAL energy of its linked cluster (E / p and the electromagnetic fraction,
  by which an electron is told from a pion), whether it has one, and how far it is;
- a cluster: the summed momentum and the number of its linked tracks, and its neutral excess (signed log).

A track links to the nearest cluster, in (eta, phi) of their calorimeter points, within LINK_MAX_DISTANCE.
`reference_log_ratio` turns the excess into log(E_ref / E_cluster), which the model adds to its cluster pt and
energy outputs, so that a cluster's regression learns a correction to the particle-flow estimate instead of the
whole subtraction of the track momenta (at the default scale the network's cluster energies were worse than the
baseline's in every category: docs/model.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlpf.data.features import (
    CLUSTER_FEATURES,
    ELEM_TYPE_HIT,
    ELEM_TYPE_TRACK,
    HIT_FEATURES,
    X_ENERGY,
    X_TYPE,
)
from mlpf.io.edm4hep.collections import SUBDETECTOR_ECAL, SUBDETECTOR_HCAL
from mlpf.model.cell_sums import GRID_ETA_MAX, cell_list_nearest

X_CLUSTER_ECAL, X_CLUSTER_HCAL = (CLUSTER_FEATURES.index(name) for name in ("energy_ecal", "energy_hcal"))
X_HIT_SUBDETECTOR = HIT_FEATURES.index("subdetector")
# A hadron shower's core in the HCAL is ~70 mm wide (PAPAS HCAL cluster size 10 cm) at 1.7-2.5 m from the beam,
# 0.03-0.04 rad; with the shower's halo and the track's extrapolation error a track finds its cluster within
# about twice that.
LINK_MAX_DISTANCE = 0.08
N_PF_LINK_FEATURES = 5
# The neutral excess a cluster's reference energy may not go below, as a fraction of its energy: a cluster fully
# explained by its tracks starts its regression from a small energy instead of zero (log(0)).
MIN_REFERENCE_FRACTION = 0.05
# Query blocks of the tensor path (GPUs): memory ~ block x N.
QUERY_BLOCK = 1024


@dataclass
class TrackClusterLinks:
    features: torch.Tensor  # [B, N, N_PF_LINK_FEATURES]
    linked_momentum: (
        torch.Tensor
    )  # [B, N]: per cluster the summed momentum of its linked tracks, 0 for tracks


def ecal_hcal_energy(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([...], [...]) the ECAL and HCAL energy of each calorimeter element: a cluster's energy_ecal and
    energy_hcal columns, a hit's energy in the calorimeter it belongs to (the same columns of a hit row hold its
    subdetector code and hit type, not energies); 0 for tracks."""
    energy = X[..., X_ENERGY].clamp_min(0.0)
    is_hit = X[..., X_TYPE] == ELEM_TYPE_HIT
    is_calorimeter = (X[..., X_TYPE] != ELEM_TYPE_TRACK).to(X.dtype)
    subdetector = X[..., X_HIT_SUBDETECTOR]
    parts = []
    for column, code in ((X_CLUSTER_ECAL, SUBDETECTOR_ECAL), (X_CLUSTER_HCAL, SUBDETECTOR_HCAL)):
        of_hit = energy * (subdetector == code).to(X.dtype)
        parts.append(torch.where(is_hit, of_hit, X[..., column].clamp_min(0.0)) * is_calorimeter)
    return parts[0], parts[1]


def _nearest_by_tensors(
    eta: torch.Tensor, phi: torch.Tensor, query: torch.Tensor, key: torch.Tensor, block: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`cell_list_nearest` with tensor operations: all pairs (an exported graph) or query blocks of all keys."""
    cutoff2 = LINK_MAX_DISTANCE**2
    n = eta.shape[1]
    step = n if block is None else block
    nearest, best = [], []
    for start in range(0, n, step):
        q = slice(start, start + step)
        d = (4.0 * torch.sin(0.5 * (phi[:, q, None] - phi[:, None, :])).square()) + (
            eta[:, q, None] - eta[:, None, :]
        ).square()
        allowed = query[:, q, None] & key[:, None, :] & (d < cutoff2)
        d = torch.where(allowed, d, torch.full_like(d, cutoff2))
        value, index = torch.min(d, dim=-1)  # the first of equal minima: the lowest index
        found = value < cutoff2
        nearest.append(torch.where(found, index, torch.full_like(index, -1)))
        best.append(torch.where(found, value, torch.full_like(value, cutoff2)))
    return torch.cat(nearest, 1), torch.cat(best, 1)


def _signed_log(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def track_cluster_links(
    X: torch.Tensor, mask: torch.Tensor, eta: torch.Tensor, phi: torch.Tensor
) -> TrackClusterLinks:
    """Each track's nearest cluster and what follows from it (module docstring). No gradient: inputs only."""
    with torch.no_grad(), torch.autocast(X.device.type, enabled=False):
        X, eta, phi = X.float(), eta.float(), phi.float()
        is_track = (X[..., X_TYPE] == ELEM_TYPE_TRACK) & mask
        is_cluster = (X[..., X_TYPE] != ELEM_TYPE_TRACK) & mask
        if torch.onnx.is_in_onnx_export():
            nearest, d2 = _nearest_by_tensors(eta, phi, is_track, is_cluster, block=None)
        elif X.device.type == "cpu":
            nearest, d2 = cell_list_nearest(eta, phi, is_track, is_cluster, LINK_MAX_DISTANCE, GRID_ETA_MAX)
        else:
            nearest, d2 = _nearest_by_tensors(eta, phi, is_track, is_cluster, block=QUERY_BLOCK)
        linked = (nearest >= 0) & is_track
        partner = nearest.clamp_min(0)
        momentum = X[..., X_ENERGY].clamp_min(0.0) * linked
        linked_momentum = torch.zeros_like(momentum).scatter_add(1, partner, momentum)
        n_linked = torch.zeros_like(momentum).scatter_add(1, partner, linked.float())
        link = linked.float()

        def of_partner(value: torch.Tensor) -> torch.Tensor:
            return torch.log1p(torch.gather(value, 1, partner)) * link

        ecal, hcal = ecal_hcal_energy(X)
        track = torch.stack(
            [
                of_partner(X[..., X_ENERGY].clamp_min(0.0)),
                of_partner(ecal),
                of_partner(hcal),
                link,
                torch.sqrt(d2) / LINK_MAX_DISTANCE * link,
            ],
            dim=-1,
        )
        has_tracks = (n_linked > 0).float()
        cluster = torch.stack(
            [
                torch.log1p(linked_momentum),
                torch.log1p(n_linked),
                _signed_log(X[..., X_ENERGY] - linked_momentum),
                has_tracks,
                torch.zeros_like(has_tracks),
            ],
            dim=-1,
        )
        features = torch.where(is_track[..., None], track, cluster * is_cluster[..., None].float())
        return TrackClusterLinks(features, linked_momentum * is_cluster)


def reference_log_ratio(X: torch.Tensor, mask: torch.Tensor, linked_momentum: torch.Tensor) -> torch.Tensor:
    """[B, N] log(E_ref / E_cluster) for clusters, E_ref = max(E - linked track momentum, MIN_REFERENCE_FRACTION E);
    0 for tracks and padding."""
    is_cluster = (X[..., X_TYPE] != ELEM_TYPE_TRACK) & mask
    fraction = 1.0 - linked_momentum / X[..., X_ENERGY].clamp_min(1e-6)
    ratio = torch.log(fraction.clamp(min=MIN_REFERENCE_FRACTION, max=1.0))
    return torch.where(is_cluster, ratio, torch.zeros_like(ratio))
