"""Write a simulated shard as a ROOT file with EDM4hep (podio >= 1.0) collection and branch names.

Flat branches written by uproot (`C.member`, `C.momentum.x`, `C.r_begin/_end`, relation branches
`_C_r.index/.collectionID`, link collections `C.weight` + `_C_from` / `_C_to`), with the dtypes of the real
Key4HEP files (e.g. MCParticles momenta float64, hit energies float32, relation indices int32, collection IDs
uint32). The collection-ID table and the producing config go into the TObjString `mlpf_metadata` (JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from mlpf.atomic import atomic_output
from mlpf.io.edm4hep import collections as names
from mlpf.sim.calorimeter import Hits, resolution_had
from mlpf.sim.clustering import Clusters
from mlpf.sim.collections import COLLECTION_IDS, HIT_COLLECTIONS
from mlpf.sim.pfa import PFOs
from mlpf.sim.tracking import Tracks
from mlpf.sim.truth import Truth

FORMAT = "mlpf-fastsim"
FORMAT_VERSION = 1


def _local_index(evt: np.ndarray, n_events: int) -> np.ndarray:
    """Index of each row within its event (rows sorted by event)."""
    counts = np.bincount(evt, minlength=n_events)
    start = np.concatenate([[0], np.cumsum(counts)])[:-1]
    return np.arange(len(evt)) - start[evt]


def _begin_end(n_rel: np.ndarray, obj_evt: np.ndarray, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-event begin/end offsets of each object's relation entries (objects sorted by event)."""
    total = np.cumsum(n_rel)
    rel_per_event = np.bincount(obj_evt, weights=n_rel, minlength=n_events).astype(np.int64)
    event_start = np.concatenate([[0], np.cumsum(rel_per_event)])[:-1]
    end = total - event_start[obj_evt]
    return (end - n_rel).astype(np.uint32), end.astype(np.uint32)


class _Builder:
    """Collects jagged branches (one record array per collection) for one tree."""

    def __init__(self, n_events: int) -> None:
        self.n_events = n_events
        self.data: dict[str, ak.Array] = {}

    def add(self, name: str, evt: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        counts = (
            np.bincount(evt, minlength=self.n_events) if len(evt) else np.zeros(self.n_events, dtype=np.int64)
        )
        self.data[name] = ak.zip(
            {k: ak.unflatten(np.ascontiguousarray(v), counts) for k, v in fields.items()},
        )

    def add_plain(self, name: str, evt: np.ndarray, values: np.ndarray) -> None:
        counts = (
            np.bincount(evt, minlength=self.n_events) if len(evt) else np.zeros(self.n_events, dtype=np.int64)
        )
        self.data[name] = ak.unflatten(np.ascontiguousarray(values), counts)

    def relation(
        self, name: str, evt: np.ndarray, index: np.ndarray, collection_id: np.ndarray | int
    ) -> None:
        cid = np.broadcast_to(np.asarray(collection_id, dtype=np.uint32), index.shape)
        self.add(name, evt, {"index": index.astype(np.int32), "collectionID": cid.astype(np.uint32)})


def build_branches(
    truth: Truth, tracks: Tracks, hits: Hits, clusters: Clusters, pfos: PFOs
) -> dict[str, ak.Array]:
    """All collections of all events as awkward record arrays keyed by branch-group name."""
    b = _Builder(len(truth.counts))
    _add_mc_particles(b, truth)
    track_local = _add_tracks(b, tracks)
    hit_local, hit_cid = _add_hits(b, hits)
    _add_clusters(b, clusters, hits, hit_local, hit_cid)
    _add_pfos(b, pfos, clusters, track_local)
    _add_calo_links(b, hits, truth, hit_local, hit_cid)
    _add_track_links(b, tracks, truth, track_local)
    return b.data


def _relation(collection: str, member: str) -> str:
    """podio's branch of a collection's relation or vector member: `_<collection>_<member>`."""
    return f"_{collection}_{member}"


def _add_mc_particles(b: _Builder, truth: Truth) -> None:
    """MCParticles with their parent and daughter relations (both within MCParticles)."""
    n_ev = b.n_events
    mc_id = COLLECTION_IDS[names.MC_PARTICLES]
    has_parent = truth.parent >= 0
    p_begin, p_end = _begin_end(has_parent.astype(np.int64), truth.evt, n_ev)
    parent_global = np.where(has_parent, truth.parent + truth.offsets[truth.evt], -1)
    n_daughters = np.bincount(parent_global[has_parent], minlength=len(truth.evt))
    d_begin, d_end = _begin_end(n_daughters, truth.evt, n_ev)
    children = np.flatnonzero(has_parent)
    children = children[np.lexsort((children, parent_global[children]))]
    local = _local_index(truth.evt, n_ev)
    b.add(
        names.MC_PARTICLES,
        truth.evt,
        {
            "PDG": truth.pdg.astype(np.int32),
            "generatorStatus": truth.gen_status.astype(np.int32),
            "simulatorStatus": truth.sim_status.astype(np.int32),
            "charge": truth.charge.astype(np.float32),
            "time": truth.time.astype(np.float32),
            "mass": truth.mass.astype(np.float64),
            "vertex.x": truth.vx,
            "vertex.y": truth.vy,
            "vertex.z": truth.vz,
            "endpoint.x": truth.ex,
            "endpoint.y": truth.ey,
            "endpoint.z": truth.ez,
            "momentum.x": truth.px,
            "momentum.y": truth.py,
            "momentum.z": truth.pz,
            "parents_begin": p_begin,
            "parents_end": p_end,
            "daughters_begin": d_begin,
            "daughters_end": d_end,
        },
    )
    b.relation(
        _relation(names.MC_PARTICLES, "parents"), truth.evt[has_parent], truth.parent[has_parent], mc_id
    )
    parent_evt = truth.evt[parent_global[children]]
    b.relation(_relation(names.MC_PARTICLES, "daughters"), parent_evt, local[children], mc_id)


def _add_tracks(b: _Builder, tracks: Tracks) -> np.ndarray:
    """Tracks with their states, hit numbers and dQdx; returns each track's index within its event."""
    n_ev, n_tr = b.n_events, len(tracks.evt)
    t_local = _local_index(tracks.evt, n_ev)
    n_states = tracks.states["location"].shape[1]
    s_begin, s_end = _begin_end(np.full(n_tr, n_states), tracks.evt, n_ev)
    h_begin, h_end = _begin_end(np.full(n_tr, tracks.hit_numbers.shape[1]), tracks.evt, n_ev)
    b.add(
        names.TRACKS,
        tracks.evt,
        {
            "type": np.zeros(n_tr, dtype=np.int32),
            "chi2": tracks.chi2.astype(np.float32),
            "ndf": tracks.ndf.astype(np.int32),
            "subdetectorHitNumbers_begin": h_begin,
            "subdetectorHitNumbers_end": h_end,
            "trackStates_begin": s_begin,
            "trackStates_end": s_end,
        },
    )
    b.add(
        _relation(names.TRACKS, "trackStates"),
        np.repeat(tracks.evt, n_states),
        {
            k: (v.reshape(-1).astype(np.int32) if k == "location" else v.reshape(-1).astype(np.float32))
            for k, v in tracks.states.items()
        },
    )
    b.add_plain(
        _relation(names.TRACKS, "subdetectorHitNumbers"),
        np.repeat(tracks.evt, tracks.hit_numbers.shape[1]),
        tracks.hit_numbers.reshape(-1).astype(np.int32),
    )
    b.add(
        names.TRACK_DQDX,
        tracks.evt,
        {
            "dQdx.type": np.zeros(n_tr, dtype=np.int16),
            "dQdx.value": np.zeros(n_tr, dtype=np.float32),
            "dQdx.error": np.zeros(n_tr, dtype=np.float32),
        },
    )
    b.relation(_relation(names.TRACK_DQDX, "track"), tracks.evt, t_local, COLLECTION_IDS[names.TRACKS])
    return t_local


def _add_hits(b: _Builder, hits: Hits) -> tuple[np.ndarray, np.ndarray]:
    """One collection per calorimeter hit collection; returns each hit's index within its collection and
    event, and the collection ID per hit collection code."""
    hit_local = np.zeros(len(hits.evt), dtype=np.int64)
    for c, name in enumerate(HIT_COLLECTIONS):
        rows = np.flatnonzero(hits.collection == c)
        hit_local[rows] = _local_index(hits.evt[rows], b.n_events)
        b.add(
            name,
            hits.evt[rows],
            {
                "cellID": hits.cell_id[rows].astype(np.uint64),
                "energy": hits.energy[rows].astype(np.float32),
                "energyError": hits.energy_error[rows].astype(np.float32),
                "time": hits.time[rows].astype(np.float32),
                "position.x": hits.position[rows, 0].astype(np.float32),
                "position.y": hits.position[rows, 1].astype(np.float32),
                "position.z": hits.position[rows, 2].astype(np.float32),
                "type": hits.type[rows].astype(np.int32),
            },
        )
    return hit_local, np.array([COLLECTION_IDS[n] for n in HIT_COLLECTIONS], dtype=np.uint32)


def _add_clusters(
    b: _Builder, clusters: Clusters, hits: Hits, hit_local: np.ndarray, hit_cid: np.ndarray
) -> None:
    """Clusters with their hit relations (into the hit collection of each hit)."""
    n_cl = len(clusters.evt)
    c_begin, c_end = _begin_end(clusters.hit_counts, clusters.evt, b.n_events)
    pos = clusters.position
    r = np.hypot(pos[:, 0], pos[:, 1])
    b.add(
        names.CLUSTERS,
        clusters.evt,
        {
            "type": np.zeros(n_cl, dtype=np.int32),
            "energy": clusters.energy.astype(np.float32),
            "energyError": resolution_had(
                clusters.energy, np.abs(np.arcsinh(pos[:, 2] / np.maximum(r, 1e-9)))
            ).astype(np.float32),
            "position.x": pos[:, 0].astype(np.float32),
            "position.y": pos[:, 1].astype(np.float32),
            "position.z": pos[:, 2].astype(np.float32),
            "iTheta": np.arctan2(r, pos[:, 2]).astype(np.float32),
            "phi": np.arctan2(pos[:, 1], pos[:, 0]).astype(np.float32),
            "hits_begin": c_begin,
            "hits_end": c_end,
        },
    )
    rows = clusters.hit_rows
    b.relation(
        _relation(names.CLUSTERS, "hits"), hits.evt[rows], hit_local[rows], hit_cid[hits.collection[rows]]
    )


def _add_pfos(b: _Builder, pfos: PFOs, clusters: Clusters, track_local: np.ndarray) -> None:
    """Baseline PF particles with their cluster and track relations."""
    n_ev = b.n_events
    cl_local = _local_index(clusters.evt, n_ev)
    has_cl = pfos.cluster >= 0
    has_tr = pfos.track >= 0
    pc_begin, pc_end = _begin_end(has_cl.astype(np.int64), pfos.evt, n_ev)
    pt_begin, pt_end = _begin_end(has_tr.astype(np.int64), pfos.evt, n_ev)
    b.add(
        names.PFOS,
        pfos.evt,
        {
            "PDG": pfos.pdg.astype(np.int32),
            "energy": pfos.energy.astype(np.float32),
            "momentum.x": pfos.momentum[:, 0].astype(np.float32),
            "momentum.y": pfos.momentum[:, 1].astype(np.float32),
            "momentum.z": pfos.momentum[:, 2].astype(np.float32),
            "charge": pfos.charge.astype(np.float32),
            "mass": pfos.mass.astype(np.float32),
            "clusters_begin": pc_begin,
            "clusters_end": pc_end,
            "tracks_begin": pt_begin,
            "tracks_end": pt_end,
        },
    )
    b.relation(
        _relation(names.PFOS, "clusters"),
        pfos.evt[has_cl],
        cl_local[pfos.cluster[has_cl]],
        COLLECTION_IDS[names.CLUSTERS],
    )
    b.relation(
        _relation(names.PFOS, "tracks"),
        pfos.evt[has_tr],
        track_local[pfos.track[has_tr]],
        COLLECTION_IDS[names.TRACKS],
    )


def _add_calo_links(
    b: _Builder, hits: Hits, truth: Truth, hit_local: np.ndarray, hit_cid: np.ndarray
) -> None:
    """Calorimeter hit -> MC particle links, weighted by the energy the particle left in the hit."""
    order = np.lexsort((np.arange(len(hits.link_hit)), hits.evt[hits.link_hit]))
    lh, lm = hits.link_hit[order], hits.link_mc[order]
    l_evt = hits.evt[lh]
    b.add(names.CALO_LINK, l_evt, {"weight": hits.link_energy[order].astype(np.float32)})
    b.relation(_relation(names.CALO_LINK, "from"), l_evt, hit_local[lh], hit_cid[hits.collection[lh]])
    mc_local = lm - truth.offsets[truth.evt[lm]]
    b.relation(_relation(names.CALO_LINK, "to"), l_evt, mc_local, COLLECTION_IDS[names.MC_PARTICLES])


def _add_track_links(b: _Builder, tracks: Tracks, truth: Truth, track_local: np.ndarray) -> None:
    """Track -> MC particle links (up to two per track), weighted by the fraction of the track's hits."""
    n_links = tracks.link_mc.shape[1]
    trk_rows = np.repeat(np.arange(len(tracks.evt)), n_links)
    lmc = tracks.link_mc.reshape(-1)
    lw = tracks.link_weight.reshape(-1)
    ok = lmc >= 0
    trk_rows, lmc, lw = trk_rows[ok], lmc[ok], lw[ok]
    t_evt = tracks.evt[trk_rows]
    b.add(names.TRACK_LINK, t_evt, {"weight": lw.astype(np.float32)})
    b.relation(
        _relation(names.TRACK_LINK, "from"), t_evt, track_local[trk_rows], COLLECTION_IDS[names.TRACKS]
    )
    mc_local = lmc - truth.offsets[truth.evt[lmc]]
    b.relation(_relation(names.TRACK_LINK, "to"), t_evt, mc_local, COLLECTION_IDS[names.MC_PARTICLES])


def metadata(
    sample: str, shard: str, seed: int, job_seed: int, n_events: int, config: dict[str, Any], version: str
) -> dict[str, Any]:
    """The `mlpf_metadata` JSON content (docs/contracts.md section 1)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "collection_ids": dict(COLLECTION_IDS),
        "sample": sample,
        "shard": shard,
        "seed": int(seed),
        "job_seed": int(job_seed),
        "n_events": int(n_events),
        "detector": "clic",  # CLIC_o3_v14-like, 4 T (the parse stage takes the field from this)
        "config": config,
        "mlpf_version": version,
    }


# Events per TTree basket (one `extend` call each). The parse stage decompresses a basket at a time, so one
# basket holding a whole 10k-event shard made parsing it take ~2 GB; podio files from Key4HEP hold tens to
# hundreds of events per basket.
EVENTS_PER_BASKET = 1000


def write_root(path: str | Path, branches: dict[str, ak.Array], meta: dict[str, Any]) -> None:
    """Write tree `events` in baskets of EVENTS_PER_BASKET events, and the metadata string; the file appears
    only when complete."""
    with atomic_output(path) as tmp, uproot.recreate(tmp, compression=uproot.ZSTD(5)) as f:
        tree = f.mktree(
            names.EVENTS_TREE,
            {k: v.type for k, v in branches.items()},
            field_name=lambda outer, inner: f"{outer}.{inner}",
            counter_name=lambda counted: f"{counted}_size",
        )
        n_events = len(next(iter(branches.values()))) if branches else 0
        for start in range(0, n_events, EVENTS_PER_BASKET):
            tree.extend({name: array[start : start + EVENTS_PER_BASKET] for name, array in branches.items()})
        f["mlpf_metadata"] = json.dumps(meta, sort_keys=True)
