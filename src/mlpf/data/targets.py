"""Target particles per element: classes, visibility, association to tracks/clusters, baseline candidates.

Definitions from jpata/particleflow `mlpf/data/key4hep/postprocessing.py` (`assign_genparticles_to_obj_and_merge`,
`map_pdgid_to_candid`, `get_recoptcl_to_obj`; docs/dataset.md). All functions take flat numpy arrays whose
indices are global over a chunk of events (an element index never repeats across events), so one call handles
many events; since particles of different events never share an element, a single energy-ordered pass over
all of them gives the same result as one pass per event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlpf.data.features import ELEM_TYPE_CLUSTER, ELEM_TYPE_HIT, ELEM_TYPE_TRACK

# Classes (upstream CLASS_LABELS["clic"]): index i of the target's `class` column <-> PDG id below.
CLASS_PDGS = (0, 211, 130, 22, 11, 13)
CLASS_NAMES = ("none", "charged_hadron", "neutral_hadron", "photon", "electron", "muon")
PARTICLE_COLUMNS = ("class", "charge", "pt", "eta", "sin_phi", "cos_phi", "energy")
# Indices of those columns in ytarget, ycand and ypred rows; the only names code uses for them.
Y_CLASS, Y_CHARGE, Y_PT, Y_ETA, Y_SIN_PHI, Y_COS_PHI, Y_ENERGY = (
    PARTICLE_COLUMNS.index(name) for name in ("class", "charge", "pt", "eta", "sin_phi", "cos_phi", "energy")
)
N_PARTICLE_COLUMNS = len(PARTICLE_COLUMNS)
N_CLASSES = len(CLASS_NAMES)

NEUTRINO_PDGS = (12, 14, 16)
GENERATOR_STATUS_FINAL = 1  # HepMC status 1: final-state particle handed to Geant4
# Acceptance of the generator truth for jets and MET: the calorimeter coverage of CLIC_o3_v14, whose ECAL plug
# reaches down to r = 260 mm at the endcap face z = 2307 mm (key4hep/k4geo CLIC/compact/CLIC_o3_v14;
# eta = asinh(2307 / 260) = 2.88). Particle flow has no input beyond it (tracks end at |eta| 2.54, and the
# LumiCal/BeamCal are not part of it), so a particle there is invisible to both MLPF and the baseline, and its
# target, too, is empty. The jets of the paper's procedure are built from all status-1 non-neutrino particles
# (arXiv:2309.06782; upstream `mlpf/jet_utils.py`); `dataset.truth_max_abs_eta: null` keeps that.
TRUTH_MAX_ABS_ETA = 2.88


@dataclass(frozen=True)
class Visibility:
    """Thresholds of a target definition (upstream PRs #304 and #352; docs/dataset.md)."""

    min_energy: float  # GeV, E > min_energy
    min_track_weight: float  # max track-link weight >= this (fraction of the track's hits)
    min_calo_fraction: float  # sum of calo-link energy in clustered hits / E > this
    credit_daughters: bool  # links of a status-1 particle's direct daughters count as its own


TARGET_DEFINITIONS = {
    # [paper] dataset 1.5.0 / PR #304: status 1, not a neutrino, E > 0.01 GeV, link >= 0.6 or calo > 10 %.
    "paper": Visibility(min_energy=0.01, min_track_weight=0.6, min_calo_fraction=0.1, credit_daughters=False),
    # [v2.3.0] PR #352 (E cut of v2.2.0 PR #345): daughters' links credited, thresholds 0.2 (track), 0.05 (calo).
    "v2": Visibility(min_energy=0.001, min_track_weight=0.2, min_calo_fraction=0.05, credit_daughters=True),
}


def jet_truth(
    generator_status: np.ndarray, pdg: np.ndarray, eta: np.ndarray, max_abs_eta: float | None
) -> np.ndarray:
    """The generator particles that jets and MET are scored against: status 1, not a neutrino, and inside
    `max_abs_eta` (TRUTH_MAX_ABS_ETA by default; None = everywhere). Defined here only; parse stores them."""
    inside = np.ones(len(pdg), dtype=bool) if max_abs_eta is None else np.abs(eta) < max_abs_eta
    return (generator_status == GENERATOR_STATUS_FINAL) & ~np.isin(np.abs(pdg), NEUTRINO_PDGS) & inside


def pdg_to_class(pdg: np.ndarray, charge: np.ndarray, elem_type: np.ndarray) -> np.ndarray:
    """Class index per element: `map_pdgid_to_candid` then the relabelling by element type.

    0 -> none; photon, electron, muon kept; other charged -> charged hadron, other neutral -> neutral hadron.
    On tracks neutral hadrons and photons become charged hadrons; on clusters (and calorimeter hits, the
    calorimeter elements of the hit level) electrons and photons become photons and everything else a neutral
    hadron.
    """
    apdg = np.abs(pdg)
    cand = np.where(np.isin(apdg, (0, 22, 11, 13)), apdg, np.where(charge != 0, 211, 130))
    on_track = elem_type == ELEM_TYPE_TRACK
    on_cluster = (elem_type == ELEM_TYPE_CLUSTER) | (elem_type == ELEM_TYPE_HIT)
    cand = np.where(on_track & np.isin(cand, (130, 22)), 211, cand)
    cand = np.where(on_cluster & (cand != 0), np.where(np.isin(cand, (11, 22)), 22, 130), cand)
    lookup = np.zeros(max(CLASS_PDGS) + 1, dtype=np.int64)
    lookup[list(CLASS_PDGS)] = np.arange(len(CLASS_PDGS))
    return lookup[cand]


def particle_rows(
    cls: np.ndarray, charge: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray
) -> np.ndarray:
    """[n, 7] float32 rows (class, charge, pt, eta, sin_phi, cos_phi, energy); class 0 rows are all zero."""
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), 0.0)
    phi = np.arctan2(py, px)
    rows = np.stack([cls, charge, pt, eta, np.sin(phi), np.cos(phi), energy], axis=1).astype(np.float64)
    rows[cls == 0] = 0.0
    return np.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def aggregate_pairs(a: np.ndarray, b: np.ndarray, w: np.ndarray, n_b: int) -> tuple[np.ndarray, ...]:
    """Sum weights of duplicate (a, b) pairs; drops pairs with a negative index. Returns (a, b, w), sorted."""
    ok = (a >= 0) & (b >= 0)
    key = a[ok].astype(np.int64) * max(n_b, 1) + b[ok]
    order = np.argsort(key, kind="stable")  # stable: weights are summed in input order
    key = key[order]
    if len(key) == 0:
        return key, key.copy(), np.zeros(0)
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    summed = np.add.reduceat(w[ok].astype(np.float64)[order], starts)
    uniq = key[starts]
    return uniq // max(n_b, 1), uniq % max(n_b, 1), summed


def credit_map(generator_status: np.ndarray, pdg: np.ndarray, first_parent: np.ndarray) -> np.ndarray:
    """v2: the particle that receives each particle's links (its status-1 non-neutrino parent, else itself)."""
    idx = np.arange(len(pdg))
    parent = np.where(first_parent >= 0, first_parent, idx)
    parent_final = (generator_status[parent] == GENERATOR_STATUS_FINAL) & ~np.isin(
        np.abs(pdg[parent]), NEUTRINO_PDGS
    )
    own_final = generator_status == GENERATOR_STATUS_FINAL
    return np.where(~own_final & parent_final & (first_parent >= 0), parent, idx)


def visible(
    definition: Visibility,
    generator_status: np.ndarray,
    pdg: np.ndarray,
    energy: np.ndarray,
    max_track_weight: np.ndarray,
    calo_energy: np.ndarray,
) -> np.ndarray:
    """Target particles: status 1, not a neutrino, above the energy cut, and interacted with the detector."""
    with np.errstate(divide="ignore", invalid="ignore"):
        calo_fraction = np.where(energy > 0, calo_energy / energy, 0.0)
    interacted = (max_track_weight >= definition.min_track_weight) | (
        calo_fraction > definition.min_calo_fraction
    )
    return (
        (generator_status == GENERATOR_STATUS_FINAL)
        & ~np.isin(np.abs(pdg), NEUTRINO_PDGS)
        & (energy > definition.min_energy)
        & interacted
    )


def greedy_match(
    pair_p: np.ndarray, pair_e: np.ndarray, pair_w: np.ndarray, rank: np.ndarray, n_elements: int
) -> np.ndarray:
    """Element per particle (-1 = none): in rank order, each particle takes its best (highest weight) unused one.

    Same result as the sequential loop, computed in rounds: a particle's best free element is final as soon as
    no better-ranked unsettled particle still lists that element, because better-ranked particles can then only
    take elements this particle ranks lower. Each round settles at least the best-ranked unsettled particle;
    in practice a handful of rounds settle everything.
    """
    assigned = np.full(len(rank), -1, dtype=np.int64)
    if len(pair_p) == 0:
        return assigned
    # Particle rank first, then preference: weight descending, lower element index on ties (upstream argmax).
    order = np.lexsort((pair_e, -pair_w, rank[pair_p]))
    pp, pe = pair_p[order], pair_e[order]
    pr = rank[pp]
    taken = np.zeros(n_elements, dtype=bool)
    done = np.zeros(len(rank), dtype=bool)
    live = np.ones(len(pp), dtype=bool)
    sentinel = np.iinfo(np.int64).max
    top = np.full(n_elements, sentinel, dtype=np.int64)
    while True:
        live &= ~taken[pe] & ~done[pp]
        idx = np.flatnonzero(live)
        if len(idx) == 0:
            return assigned
        lp, le, lr = pp[idx], pe[idx], pr[idx]
        best = np.empty(len(lp), dtype=bool)
        best[0] = True
        np.not_equal(lp[1:], lp[:-1], out=best[1:])
        top[le] = sentinel
        np.minimum.at(top, le, lr)
        accept = best & (top[le] == lr)
        assigned[lp[accept]] = le[accept]
        taken[le[accept]] = True
        done[lp[accept]] = True


@dataclass
class Association:
    """Result of associating target particles with elements."""

    track_owner: np.ndarray  # particle per track, -1 none
    cluster_owner: np.ndarray  # particle per cluster, -1 none
    p4: np.ndarray  # [n_particles, 4] (px, py, pz, E) after merging unmatched particles into owners
    visible: np.ndarray  # bool per particle
    merged_into: np.ndarray  # owner particle per merged particle (-1 otherwise)
    dropped: np.ndarray  # bool per visible particle that could be neither matched nor merged


def associate(
    *,
    visible_mask: np.ndarray,
    energy: np.ndarray,
    p4: np.ndarray,
    track_pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    cluster_pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_tracks: int,
    n_clusters: int,
) -> Association:
    """Upstream `assign_genparticles_to_obj_and_merge` (`mlpf/data/key4hep/postprocessing.py`).

    Visible particles by decreasing energy take their best unused track, else their best unused cluster;
    the rest are 4-vector-added to the particle owning their best cluster, or dropped if none owns it.
    """
    n_p = len(energy)
    # Rank: energy descending, lower index first on ties (a stable sort of -E).
    rank = np.empty(n_p, dtype=np.int64)
    rank[np.argsort(-energy, kind="stable")] = np.arange(n_p)

    tp, tt, tw = track_pairs
    keep = visible_mask[tp]
    trk_of = greedy_match(tp[keep], tt[keep], tw[keep], rank, n_tracks)

    cp, cc, cw = cluster_pairs
    keep = visible_mask[cp] & (trk_of[cp] < 0)
    cl_of = greedy_match(cp[keep], cc[keep], cw[keep], rank, n_clusters)

    track_owner = np.full(n_tracks, -1, dtype=np.int64)
    has_trk = trk_of >= 0
    track_owner[trk_of[has_trk]] = np.flatnonzero(has_trk)
    cluster_owner = np.full(n_clusters, -1, dtype=np.int64)
    has_cl = cl_of >= 0
    cluster_owner[cl_of[has_cl]] = np.flatnonzero(has_cl)

    # Unmatched visible particles: best cluster over all their cluster links (highest weight, lowest index).
    unmatched = visible_mask & ~has_trk & ~has_cl
    sel = unmatched[cp]
    up, uc, uw = cp[sel], cc[sel], cw[sel]
    order = np.lexsort((uc, -uw, up))
    first = np.unique(up[order], return_index=True)
    best_cluster = np.full(n_p, -1, dtype=np.int64)
    best_cluster[first[0]] = uc[order][first[1]]
    owner = np.where(best_cluster >= 0, cluster_owner[np.clip(best_cluster, 0, None)], -1)
    owner = np.where(unmatched, owner, -1)
    merged = owner >= 0
    out_p4 = p4.astype(np.float64).copy()
    np.add.at(out_p4, owner[merged], p4[merged])
    return Association(
        track_owner=track_owner,
        cluster_owner=cluster_owner,
        p4=out_p4,
        visible=visible_mask,
        merged_into=owner,
        dropped=unmatched & ~merged,
    )


def candidate_placement(
    pfo_pdg: np.ndarray,
    pfo_first_track: np.ndarray,
    pfo_first_cluster: np.ndarray,
    n_tracks: int,
    n_clusters: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Baseline PF candidate per element (upstream `get_recoptcl_to_obj`).

    A PFO sits on its (first) track or, if it has none, on its first cluster; PDG 0 PFOs are removed first.
    Each PFO lands on one element so that candidate energy sums reproduce the PFO collection. Returns
    (pfo per track, pfo per cluster, number of PFOs that found no free element).
    """
    n = len(pfo_pdg)
    alive = pfo_pdg != 0
    on_track = alive & (pfo_first_track >= 0)
    on_cluster = alive & ~on_track & (pfo_first_cluster >= 0)
    track_pfo = np.full(n_tracks, -1, dtype=np.int64)
    cluster_pfo = np.full(n_clusters, -1, dtype=np.int64)
    placed = 0
    for mask, element, table in (
        (on_track, pfo_first_track, track_pfo),
        (on_cluster, pfo_first_cluster, cluster_pfo),
    ):
        idx = np.flatnonzero(mask)
        # One PFO per element: the first in collection order wins a (rare) shared element.
        uniq, first = np.unique(element[idx], return_index=True)
        table[uniq] = idx[first]
        placed += len(uniq)
    return track_pfo, cluster_pfo, int(alive.sum()) - placed if n else 0
