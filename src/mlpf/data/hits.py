"""The hit level (`dataset.elements: hits`): an event's elements are its tracks and its calorimeter hits.

Hit level after the MLPF paper's second result (arXiv:2309.06782; upstream's CLIC/CLD hit datasets): no
clustering step between the detector and the network, O(10^4) elements per event. Definitions, once:

- Elements: every track (features.track_features), then every calorimeter hit of the collections in
  `dataset.collections.calo_hits` (ECAL, HCAL, muon system; features.hit_features, element type 3) with a
  finite, positive energy. Hits of other energy are skipped and counted (`hits_skipped_zero_energy`).
- Targets: the cluster level's association (targets.associate) with hits in place of clusters. The
  particle -> hit weights are the calorimeter truth links themselves (energy in GeV the particle left in the
  hit); visibility counts the linked energy in all hits, not only in clustered ones. Visible particles by
  decreasing energy take their best free track, else the free hit that received most of their energy, so one
  element carries at most one particle; a particle whose hits are all taken is added to the particle owning its
  best hit (or dropped if that hit has no owner). All other hits carry no particle (class 0).
- Baseline candidates: each PF particle (PDG != 0) on its first track, else on the most energetic hit of all
  its clusters; one candidate per element, the first in collection order wins a shared hit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import awkward as ak
import numpy as np

from mlpf.data import chunk, features, targets
from mlpf.io.edm4hep.reader import EventCollections

if TYPE_CHECKING:
    from mlpf.data.parse import ParseStats

# Events processed together at the hit level: a full-simulation ttbar event has ~8,500 calorimeter hits and
# ~12,000 truth links (jpata/particleflow PR #490), so a chunk of 200 events keeps the float64 intermediates
# of features and association to a few hundred MB; `dataset.chunk_events` larger than this is reduced to it.
HITS_MAX_CHUNK_EVENTS = 200


def hit_types(hits: ak.Array) -> np.ndarray:
    """The CalorimeterHit `type` of flat hits (read with Edm4hepFile(read_hit_type=True)); 0 if not read."""
    return chunk.to_numpy(hits["type"]) if "type" in hits.fields else np.zeros(len(hits), dtype=np.int32)


def _segment_best(
    owner: np.ndarray, item: np.ndarray, value: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per run of equal `owner` (pairs grouped by owner): (owner, item with the largest value, that value); ties
    go to the lower item. A segmented maximum, no sort."""
    change = np.r_[True, owner[1:] != owner[:-1]]
    starts = np.flatnonzero(change)
    top = np.maximum.reduceat(value, starts)
    group = np.cumsum(change) - 1
    lowest = np.where(value == top[group], item, np.iinfo(np.int64).max)
    return owner[starts], np.minimum.reduceat(lowest, starts), top


def best_hits(
    ev: EventCollections,
    pf: chunk.Candidates,
    cl_off: np.ndarray,
    hit_off: np.ndarray,
    hit_energy: np.ndarray,
    hit_valid: np.ndarray,
) -> np.ndarray:
    """Global index of the most energetic valid hit of each PF particle's clusters (-1 if none).

    Ties go to the lower hit index. `flat_relation` lists pairs grouped by owner, so each cluster's best hit is
    a segmented maximum over the (cluster, hit) pairs, and each PFO's the same over its clusters' best hits.
    """
    best = np.full(len(pf.pdg), -1, dtype=np.int64)
    cluster, hit = chunk.flat_relation(ev.clusters.hits, cl_off, hit_off)
    ok = hit_valid[hit]
    cluster, hit = cluster[ok], hit[ok]
    pfo, pfo_cluster = chunk.flat_relation(ev.pfos.clusters, pf.offsets, cl_off)
    if len(cluster) == 0 or len(pfo) == 0:
        return best
    with_hits, cluster_hit, cluster_energy = _segment_best(cluster, hit, hit_energy[hit])
    n_clusters = int(cl_off[-1])
    best_of_cluster = np.full(n_clusters, -1, dtype=np.int64)
    best_of_cluster[with_hits] = cluster_hit
    energy_of_cluster = np.full(n_clusters, -np.inf, dtype=hit_energy.dtype)
    energy_of_cluster[with_hits] = cluster_energy
    candidate = best_of_cluster[pfo_cluster]
    keep = candidate >= 0
    if keep.any():
        owners, hits, _ = _segment_best(pfo[keep], candidate[keep], energy_of_cluster[pfo_cluster[keep]])
        best[owners] = hits
    return best


class _Layout:
    """Where tracks and hits go in the elements of a chunk: per event its tracks, then its valid hits.

    Only the tracks' positions are materialised: a hit's position is computed for the few hits that carry a
    particle (`hit_positions`), so no array of 10^6 positions is built.
    """

    def __init__(self, n_trk: np.ndarray, n_hit: np.ndarray, hit_valid: np.ndarray) -> None:
        n_ev = len(n_trk)
        self.all_valid = bool(hit_valid.all())
        self.hit_off = chunk.offsets(n_hit)
        if self.all_valid:
            n_valid = n_hit
        else:
            n_valid = np.bincount(np.repeat(np.arange(n_ev), n_hit)[hit_valid], minlength=n_ev)
            self.valid_index = np.cumsum(hit_valid) - 1
        self.n_elem = n_trk + n_valid
        self.elem_off = chunk.offsets(self.n_elem)
        self.n_total = int(self.elem_off[-1])
        self.n_trk = n_trk
        self.valid_off = chunk.offsets(n_valid)
        trk_off = chunk.offsets(n_trk)
        trk_event = np.repeat(np.arange(n_ev), n_trk)
        self.track_pos = self.elem_off[trk_event] + np.arange(int(trk_off[-1])) - trk_off[trk_event]
        self.track_slot = np.zeros(self.n_total, dtype=bool)
        self.track_slot[self.track_pos] = True

    def hit_positions(self, hits: np.ndarray) -> np.ndarray:
        """Element positions of the given (valid) global hit indices."""
        event = np.searchsorted(self.hit_off, hits, side="right") - 1
        index = hits if self.all_valid else self.valid_index[hits]
        return self.elem_off[event] + self.n_trk[event] + index - self.valid_off[event]


def _particle_rows(
    n_elements: int,
    kinds: tuple,
    owners: tuple[np.ndarray, np.ndarray],
    pdg: np.ndarray,
    charge: np.ndarray,
    p4: np.ndarray,
) -> np.ndarray:
    """[n_elements, 7] rows, zero but where an element has a particle. Per kind (positions: array of each
    object's element position or a function of object indices, element type) the owner array gives each
    object's particle (-1 none)."""
    out = np.zeros((n_elements, len(targets.PARTICLE_COLUMNS)), dtype=np.float32)
    for (position, elem_type), owner in zip(kinds, owners, strict=True):
        rows, values = chunk.owned_rows(owner, elem_type, pdg, charge, p4)
        out[position(rows) if callable(position) else position[rows]] = values
    return out


def process_chunk_hits(
    ev: EventCollections,
    definition: targets.Visibility,
    bfield: float,
    stats: ParseStats,
    *,
    truth_max_abs_eta: float | None = targets.TRUTH_MAX_ABS_ETA,
) -> ak.Array:
    """Elements (tracks, calorimeter hits), targets, candidates and truth for a chunk of events (one record
    per event with elements); the definitions are the module's."""
    n_ev = ev.n_events
    n_trk, n_cl, n_hit = (chunk.counts_of(a) for a in (ev.tracks, ev.clusters, ev.hits))
    trk_off, cl_off, hit_off = chunk.offsets(n_trk), chunk.offsets(n_cl), chunk.offsets(n_hit)
    n_tracks, n_hits = int(trk_off[-1]), int(hit_off[-1])
    mc = chunk.particles(ev, definition)
    x_track = chunk.track_elements(ev, bfield)

    # --- elements: calorimeter hits (non-positive or non-finite energies are skipped and counted) ------------
    hits = ak.flatten(ev.hits, axis=1)
    energy = chunk.to_numpy(hits.energy)
    hit_valid = np.isfinite(energy) & (energy > 0)
    x_hit = features.hit_features(
        energy=energy, x=chunk.to_numpy(hits.x), y=chunk.to_numpy(hits.y), z=chunk.to_numpy(hits.z),
        time=chunk.to_numpy(hits.time), subdetector=chunk.to_numpy(hits.subdetector), hit_type=hit_types(hits),
    )  # fmt: skip

    # --- targets: particle -> hit weights are the calorimeter truth links -----------------------------------
    track_pairs = chunk.track_pairs(ev, mc, trk_off)
    link_hit, link_p, link_w = chunk.calo_links(ev, mc, hit_off)
    on_valid = hit_valid[link_hit]
    hit_pairs = targets.aggregate_pairs(link_p[on_valid], link_hit[on_valid], link_w[on_valid], n_hits)
    calo_energy = np.bincount(hit_pairs[0], weights=hit_pairs[2], minlength=len(mc))
    vis = targets.visible(
        definition, mc.status, mc.pdg, mc.energy, chunk.max_track_weight(track_pairs, len(mc)), calo_energy
    )
    assoc = targets.associate(
        visible_mask=vis, energy=mc.energy, p4=mc.p4, track_pairs=track_pairs, cluster_pairs=hit_pairs,
        n_tracks=n_tracks, n_clusters=n_hits,
    )  # fmt: skip
    # --- baseline candidates: on the first track, else on the most energetic hit of the clusters ----------
    pf = chunk.candidates(ev, trk_off, cl_off)
    track_pfo, hit_pfo, unplaced = targets.candidate_placement(
        pf.pdg, pf.first_track, best_hits(ev, pf, cl_off, hit_off, energy, hit_valid), n_tracks, n_hits
    )

    # --- assemble per event: tracks first, then (valid) hits; particle rows only where there is one --------
    layout = _Layout(n_trk, n_hit, hit_valid)
    X = np.empty((layout.n_total, features.N_FEATURES), dtype=np.float32)
    X[layout.track_slot] = x_track
    X[~layout.track_slot] = x_hit if layout.all_valid else x_hit[hit_valid]
    kinds = ((layout.track_pos, features.ELEM_TYPE_TRACK), (layout.hit_positions, features.ELEM_TYPE_HIT))
    ytarget = _particle_rows(layout.n_total, kinds, (assoc.track_owner, assoc.cluster_owner),
                             mc.pdg, mc.charge, assoc.p4)  # fmt: skip
    ycand = _particle_rows(layout.n_total, kinds, (track_pfo, hit_pfo), pf.pdg, pf.charge, pf.p4)
    n_elem = layout.n_elem
    events = chunk.event_record(X, ytarget, ycand, n_elem, mc, truth_max_abs_eta)
    keep = n_elem > 0

    stats.add(
        events_read=n_ev,
        events_skipped_empty=int((~keep).sum()),
        tracks=n_tracks,
        hits=int(hit_valid.sum()),
        hits_skipped_zero_energy=int((~hit_valid).sum()),
        clusters_read=int(cl_off[-1]),
        matched_to_hit=int((assoc.cluster_owner >= 0).sum()),
        **chunk.association_stats(assoc, vis, mc, keep),
        target_energy=float(ytarget[:, targets.Y_ENERGY].sum()),
        pfos=len(pf.pdg),
        pfo_energy=pf.energy_in(keep),
        pfos_unplaced=unplaced,
        candidate_energy=float(ycand[:, targets.Y_ENERGY].sum()),
    )
    return events[keep]
