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


def best_hits(
    ev: EventCollections,
    pf: chunk.Candidates,
    cl_off: np.ndarray,
    hit_off: np.ndarray,
    hit_energy: np.ndarray,
    hit_valid: np.ndarray,
) -> np.ndarray:
    """Global index of the most energetic valid hit of each PF particle's clusters (-1 if none).

    Ties go to the lower hit index. Vectorised: (PFO, cluster) pairs are expanded to (PFO, hit) pairs through
    the clusters' hit lists sorted by cluster.
    """
    best = np.full(len(pf.pdg), -1, dtype=np.int64)
    pfo, cluster = chunk.flat_relation(ev.pfos.clusters, pf.offsets, cl_off)
    hit_cluster, hit_global = chunk.flat_relation(ev.clusters.hits, cl_off, hit_off)
    if len(pfo) == 0 or len(hit_cluster) == 0:
        return best
    order = np.argsort(hit_cluster, kind="stable")
    sorted_cluster, sorted_hit = hit_cluster[order], hit_global[order]
    lo = np.searchsorted(sorted_cluster, cluster, side="left")
    n = np.searchsorted(sorted_cluster, cluster, side="right") - lo
    owner = np.repeat(pfo, n)
    hit = sorted_hit[np.repeat(lo - chunk.offsets(n)[:-1], n) + np.arange(int(n.sum()))]
    ok = hit_valid[hit]
    owner, hit = owner[ok], hit[ok]
    rank = np.lexsort((hit, -hit_energy[hit], owner))
    uniq, first = np.unique(owner[rank], return_index=True)
    best[uniq] = hit[rank][first]
    return best


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
    ev_idx = np.arange(n_ev)
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
    y_track = chunk.target_rows(assoc.track_owner, features.ELEM_TYPE_TRACK, mc, assoc.p4)
    y_hit = chunk.target_rows(assoc.cluster_owner, features.ELEM_TYPE_HIT, mc, assoc.p4)

    # --- baseline candidates: on the first track, else on the most energetic hit of the clusters ----------
    pf = chunk.candidates(ev, trk_off, cl_off)
    track_pfo, hit_pfo, unplaced = targets.candidate_placement(
        pf.pdg, pf.first_track, best_hits(ev, pf, cl_off, hit_off, energy, hit_valid), n_tracks, n_hits
    )
    c_track = pf.rows(track_pfo, features.ELEM_TYPE_TRACK)
    c_hit = pf.rows(hit_pfo, features.ELEM_TYPE_HIT)

    # --- assemble per event: tracks first, then (valid) hits -------------------------------------------------
    n_valid_hit = np.bincount(np.repeat(ev_idx, n_hit)[hit_valid], minlength=n_ev)
    n_elem, pos = chunk.element_positions(n_trk, n_valid_hit)
    X = chunk.place(pos, x_track, x_hit[hit_valid])
    ytarget = chunk.place(pos, y_track, y_hit[hit_valid])
    ycand = chunk.place(pos, c_track, c_hit[hit_valid])
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
