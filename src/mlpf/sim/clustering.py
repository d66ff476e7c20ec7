"""Calorimeter clustering: connected components of hits on a grid projected onto the ECAL front face.

ECAL and HCAL hits are projected along their direction from the interaction point onto the ECAL front surface
(cylinder r = 1500 mm, or the endcap planes), binned in CLUSTER_GRID_MM cells, and neighbouring occupied
cells (8-connectivity, phi wraps around) form one cluster, as a cone/topological clustering does. Nearby
showers therefore merge, and a shower with a gap (halo fragments, threshold losses) splits. Connected
components are found by min-label propagation with pointer jumping, vectorised over all events at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlpf.sim import constants as C
from mlpf.sim.calorimeter import ECAL_ENDCAP, MUON, Hits

_OFFSET = 1 << 19


@dataclass
class Clusters:
    evt: np.ndarray
    energy: np.ndarray
    energy_ecal: np.ndarray
    energy_hcal: np.ndarray
    position: np.ndarray  # (n, 3) energy-weighted
    hit_rows: np.ndarray  # global hit rows, grouped by cluster
    hit_counts: np.ndarray  # hits per cluster
    cells: np.ndarray  # grid key of every cluster cell (for track linking)
    cell_cluster: np.ndarray  # cluster index of each entry of `cells` (-1 = cell of a dropped island)


def project_to_grid(
    evt: np.ndarray, pos: np.ndarray, grid: float = C.CLUSTER_GRID_MM
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid coordinates (region, i, j) on the projected ECAL front and the wrap size of j per region."""
    x, y, z = pos[:, 0], pos[:, 1], pos[:, 2]
    r = np.hypot(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_at_barrel = z * C.ECAL_BARREL_RMIN / np.where(r > 0, r, 1e-9)
    barrel = np.abs(z_at_barrel) < C.ECAL_ENDCAP_ZMIN
    n_phi = int(np.floor(2 * np.pi * C.ECAL_BARREL_RMIN / grid))
    phi = np.arctan2(y, x)
    scale = C.ECAL_ENDCAP_ZMIN / np.maximum(np.abs(z), 1e-9)
    i = np.where(barrel, np.floor(z_at_barrel / grid), np.floor(x * scale / grid)).astype(np.int64)
    j = np.where(barrel, np.floor((phi + np.pi) / (2 * np.pi) * n_phi), np.floor(y * scale / grid)).astype(
        np.int64
    )
    j = np.where(barrel, j % n_phi, j)
    region = np.where(barrel, 0, np.where(z > 0, 1, 2)).astype(np.int64)
    return region, i, j, np.full(len(x), n_phi)


def grid_key(evt: np.ndarray, region: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Pack (event, region, i, j) into one int64 (20 + 2 + 20 + 20 bits)."""
    return (evt.astype(np.int64) << 42) | (region << 40) | ((i + _OFFSET) << 20) | (j + _OFFSET)


def neighbour_keys(evt, region, i, j, n_phi) -> np.ndarray:
    """Keys of the 8 neighbours of each cell (n, 8); phi (j) wraps around in the barrel."""
    keys = []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == 0 and dj == 0:
                continue
            jj = np.where(region == 0, (j + dj) % n_phi, j + dj)
            keys.append(grid_key(evt, region, i + di, jj))
    return np.stack(keys, axis=1)


def lookup(sorted_keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of each query key in sorted_keys, -1 where absent."""
    pos = np.searchsorted(sorted_keys, query)
    pos_c = np.minimum(pos, len(sorted_keys) - 1)
    found = (
        (len(sorted_keys) > 0) & (sorted_keys[pos_c] == query)
        if len(sorted_keys)
        else np.zeros(query.shape, bool)
    )
    return np.where(found, pos_c, -1)


def connected_components(keys: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Component label (smallest member index) of each cell; keys sorted and unique."""
    nb = lookup(keys, neighbours)
    label = np.arange(len(keys))
    while True:
        nb_label = np.where(nb >= 0, label[np.maximum(nb, 0)], label[:, None])
        new = np.minimum(label, nb_label.min(axis=1))
        new = new[new]  # pointer jumping
        # propagate the minimum back to the roots too
        np.minimum.at(new, label, new)
        new = new[new]
        if np.array_equal(new, label):
            return label
        label = new


def best_neighbour(
    evt: np.ndarray, pos: np.ndarray, score: np.ndarray, candidate: np.ndarray, radius: float
) -> np.ndarray:
    """For each cluster, the candidate cluster of highest `score` within `radius` (projected on the ECAL front).

    Neighbours are found through a coarse grid (cell = radius, 3 x 3 lookup of the best candidate per cell), so
    the cost stays linear in the number of clusters. Returns -1 where there is none.
    """
    n = len(evt)
    if n == 0 or not candidate.any():
        return np.full(n, -1)
    region, i, j, n_phi = project_to_grid(evt, pos, radius)
    key = grid_key(evt, region, i, j)
    cands = np.flatnonzero(candidate)
    order = cands[np.lexsort((-score[cands], key[cands]))]
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    cell_keys = key[order][first]
    cell_best = order[first]
    nb = np.concatenate([key[:, None], neighbour_keys(evt, region, i, j, n_phi)], axis=1)
    found = lookup(cell_keys, nb)
    cand = np.where(found >= 0, cell_best[np.maximum(found, 0)], -1)
    proj = pos * (C.ECAL_BARREL_RMIN / np.maximum(np.linalg.norm(pos, axis=1), 1e-9))[:, None]
    dist = np.linalg.norm(proj[np.maximum(cand, 0)] - proj[:, None, :], axis=2)
    cand_score = np.where((cand >= 0) & (dist < radius * 1.5), score[np.maximum(cand, 0)], -np.inf)
    best = np.argmax(cand_score, axis=1)
    out = cand[np.arange(n), best]
    return np.where(np.isfinite(cand_score[np.arange(n), best]), out, -1)


def merge_fragments(evt: np.ndarray, energy: np.ndarray, e_ecal: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Target cluster of each cluster after fragment removal (itself if kept).

    A hadronic-looking cluster (ECAL fraction < FRAGMENT_MAX_EM_FRACTION) with less than FRAGMENT_MAX_RATIO of the
    energy of the most energetic cluster within FRAGMENT_RADIUS_MM (projected on the ECAL front) is merged
    into it, as Pandora's fragment-removal step reattaches hadronic-shower satellites.
    """
    n = len(evt)
    target = np.arange(n)
    if n == 0:
        return target
    big = best_neighbour(evt, pos, energy, np.ones(n, dtype=bool), C.FRAGMENT_RADIUS_MM)
    big_e = np.where(big >= 0, energy[np.maximum(big, 0)], 0.0)
    em_frac = e_ecal / np.maximum(energy, 1e-12)
    fragment = (
        (big >= 0)
        & (big != target)
        & (energy < C.FRAGMENT_MAX_RATIO * big_e)
        & (em_frac < C.FRAGMENT_MAX_EM_FRACTION)
    )
    target = np.where(fragment, big, target)
    for _ in range(64):  # resolve chains fragment -> fragment -> shower
        nxt = target[target]
        if np.array_equal(nxt, target):
            break
        target = nxt
    return target


def cluster_hits(
    hits: Hits, grid: float = C.CLUSTER_GRID_MM, min_energy: float = C.CLUSTER_MIN_ENERGY
) -> Clusters:
    """Clusters of the ECAL and HCAL hits (muon hits are not clustered)."""
    calo = np.flatnonzero(hits.collection != MUON)
    evt = hits.evt[calo]
    region, i, j, n_phi = project_to_grid(evt, hits.position[calo], grid)
    key = grid_key(evt, region, i, j)
    cells, cell_of_hit = np.unique(key, return_inverse=True)
    first = np.unique(cell_of_hit, return_index=True)[1]
    nbk = neighbour_keys(evt[first], region[first], i[first], j[first], n_phi[first])
    label = connected_components(cells, nbk)
    comp, comp_of_cell = np.unique(label, return_inverse=True)
    comp_of_hit = comp_of_cell[cell_of_hit]
    e = hits.energy[calo]
    is_ecal = hits.collection[calo] <= ECAL_ENDCAP
    n_comp = len(comp)
    energy = np.bincount(comp_of_hit, weights=e, minlength=n_comp)
    e_ecal = np.bincount(comp_of_hit, weights=np.where(is_ecal, e, 0.0), minlength=n_comp)
    pos = np.stack(
        [np.bincount(comp_of_hit, weights=e * hits.position[calo, k], minlength=n_comp) for k in range(3)], 1
    )
    pos /= np.maximum(energy, 1e-12)[:, None]
    comp_evt = np.zeros(n_comp, dtype=np.int64)
    comp_evt[comp_of_hit] = evt
    # fragment removal: hadronic satellites join the big shower next to them
    target = merge_fragments(comp_evt, energy, e_ecal, pos)
    if np.any(target != np.arange(n_comp)):
        comp_of_hit = target[comp_of_hit]
        comp_of_cell = target[comp_of_cell]
        energy = np.bincount(comp_of_hit, weights=e, minlength=n_comp)
        e_ecal = np.bincount(comp_of_hit, weights=np.where(is_ecal, e, 0.0), minlength=n_comp)
        pos = np.stack(
            [
                np.bincount(comp_of_hit, weights=e * hits.position[calo, k], minlength=n_comp)
                for k in range(3)
            ],
            1,
        )
        pos /= np.maximum(energy, 1e-12)[:, None]
    keep = energy >= min_energy
    # order clusters by event, then by decreasing energy
    kept = np.flatnonzero(keep)
    order = kept[np.lexsort((-energy[kept], comp_evt[kept]))]
    new_id = np.full(n_comp, -1)
    new_id[order] = np.arange(len(order))
    hit_cluster = new_id[comp_of_hit]
    clustered = hit_cluster >= 0
    hit_order = np.lexsort((calo[clustered], hit_cluster[clustered]))
    hit_rows = calo[clustered][hit_order]
    counts = np.bincount(hit_cluster[clustered], minlength=len(order))
    return Clusters(
        evt=comp_evt[order],
        energy=energy[order],
        energy_ecal=e_ecal[order],
        energy_hcal=(energy - e_ecal)[order],
        position=pos[order],
        hit_rows=hit_rows,
        hit_counts=counts,
        cells=cells,
        cell_cluster=new_id[comp_of_cell],
    )
