"""One EDM4HEP file -> one parquet shard of elements, targets, baseline candidates and truth (contracts §2).

Per chunk of events the reader's awkward arrays are flattened once; every element, particle and link then
gets a chunk-global index, so features, visibility, association and candidate placement run as numpy
operations over all events of the chunk at once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq

from mlpf.atomic import atomic_output
from mlpf.config import validate_section
from mlpf.data import features, ranges, targets
from mlpf.errors import ConfigError
from mlpf.io.edm4hep.collections import CollectionNames
from mlpf.io.edm4hep.layout import Layout, detect_detector
from mlpf.io.edm4hep.reader import Edm4hepFile, EventCollections
from mlpf.progress import progress_bar
from mlpf.provenance import provenance

log = logging.getLogger(__name__)

PARQUET_METADATA_KEY = b"mlpf"
# Kinds of simulation an events record names (`event_source`).
SIMULATION_FAST, SIMULATION_FULL = "fastsim", "full"
# Conservation tolerance for target energy sums (upstream asserts |sum E| agreement within 1e-2 GeV).
ENERGY_TOLERANCE_GEV = 1e-2


@dataclass
class ParseStats:
    """Counts accumulated over a file; stored in the parquet metadata and used by dataset-validate."""

    counts: dict[str, float] = field(default_factory=dict)

    def add(self, **values: float) -> None:
        for key, value in values.items():
            self.counts[key] = self.counts.get(key, 0) + (
                float(value) if isinstance(value, float) else int(value)
            )


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _np(array: ak.Array) -> np.ndarray:
    return ak.to_numpy(array)


def _flat_relation(nested: ak.Array, owner_offsets: np.ndarray, target_offsets: np.ndarray):
    """[event][object][k] local indices -> (global owner, global target) pairs, dropping unresolved (-1)."""
    per_object = ak.flatten(nested, axis=1)  # [object][k]
    counts = _np(ak.num(per_object, axis=1))
    local = _np(ak.flatten(per_object, axis=1))
    owner = np.repeat(np.arange(len(counts)), counts)
    object_event = np.repeat(np.arange(len(owner_offsets) - 1), np.diff(owner_offsets))
    owner_event = np.repeat(object_event, counts)
    ok = local >= 0
    return owner[ok], local[ok] + target_offsets[owner_event[ok]]


def _join_hits(
    link_hit: np.ndarray,
    link_p: np.ndarray,
    link_w: np.ndarray,
    hit_global: np.ndarray,
    hit_cluster: np.ndarray,
    cluster_valid: np.ndarray,
    n_hits: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(particle, cluster, weight) for every calo link whose hit belongs to a valid cluster."""
    valid = cluster_valid[hit_cluster]
    members_hit, members_cluster = hit_global[valid], hit_cluster[valid]
    if np.bincount(members_hit, minlength=n_hits).max(initial=0) <= 1:
        # Usual case (Pandora): a hit belongs to at most one cluster -> a lookup table.
        table = np.full(n_hits, -1, dtype=np.int64)
        table[members_hit] = members_cluster
        cluster = table[link_hit] if len(link_hit) else np.zeros(0, dtype=np.int64)
        keep = cluster >= 0
        return link_p[keep], cluster[keep], link_w[keep]
    # Shared hits: every (link, cluster containing the hit) combination.
    by_hit = np.argsort(members_hit, kind="stable")
    sorted_hits, sorted_clusters = members_hit[by_hit], members_cluster[by_hit]
    lo = np.searchsorted(sorted_hits, link_hit, side="left")
    n_match = np.searchsorted(sorted_hits, link_hit, side="right") - lo
    link_rep = np.repeat(np.arange(len(link_hit)), n_match)
    pos = np.repeat(lo - _offsets(n_match)[:-1], n_match) + np.arange(int(n_match.sum()))
    return link_p[link_rep], sorted_clusters[pos], link_w[link_rep]


def _first_of(
    nested: ak.Array, owner_offsets: np.ndarray, target_offsets: np.ndarray, n_owners: int
) -> np.ndarray:
    """Global index of each owner's first resolved related object (-1 if none)."""
    owner, target = _flat_relation(nested, owner_offsets, target_offsets)
    first = np.full(n_owners, -1, dtype=np.int64)
    uniq, idx = np.unique(owner, return_index=True)
    first[uniq] = target[idx]
    return first


def process_chunk(
    ev: EventCollections,
    definition: targets.Visibility,
    bfield: float,
    stats: ParseStats,
    *,
    energy_weighted_spread: bool = False,
    truth_max_abs_eta: float | None = targets.TRUTH_MAX_ABS_ETA,
) -> ak.Array:
    """Elements, targets, candidates and truth for a chunk of events (one record per event with elements).

    `energy_weighted_spread` selects the cluster sigma_x/y/z definition (features.ENERGY_WEIGHTED_SPREAD),
    `truth_max_abs_eta` the acceptance of the jet/MET truth (targets.jet_truth).
    """
    n_ev = ev.n_events
    ev_idx = np.arange(n_ev)
    n_mc, n_trk, n_cl, n_hit, n_pfo = (
        _np(ak.num(a, axis=1)) for a in (ev.mc, ev.tracks, ev.clusters, ev.hits, ev.pfos)
    )
    mc_off, trk_off, cl_off, hit_off = _offsets(n_mc), _offsets(n_trk), _offsets(n_cl), _offsets(n_hit)
    pfo_off = _offsets(n_pfo)
    n_tracks, n_clusters, n_particles = int(trk_off[-1]), int(cl_off[-1]), int(mc_off[-1])

    # --- MC particles ---------------------------------------------------------------------------------------
    mc = ak.flatten(ev.mc, axis=1)
    pdg = _np(mc.pdg)
    status = _np(mc.generator_status)
    charge = _np(mc.charge)
    p4 = np.stack([_np(mc.px), _np(mc.py), _np(mc.pz), _np(mc.energy)], axis=1)
    energy = p4[:, 3]
    mc_event = np.repeat(ev_idx, n_mc)

    # --- elements: tracks ---------------------------------------------------------------------------------
    trk = ak.flatten(ev.tracks, axis=1)
    ip = trk.ip
    x_track = features.track_features(
        omega=_np(ip.omega), phi=_np(ip.phi), tan_lambda=_np(ip.tan_lambda), d0=_np(ip.d0), z0=_np(ip.z0),
        time=_np(ip.time), chi2=_np(trk.chi2), ndf=_np(trk.ndf), dedx=_np(trk.dedx), dedx_error=_np(trk.dedx_error),
        radius_innermost_hit=_np(trk.radius_innermost_hit), bfield_tesla=bfield,
    )  # fmt: skip

    # --- elements: clusters (zero-energy clusters are skipped and counted) --------------------------------
    cl = ak.flatten(ev.clusters, axis=1)
    hits = ak.flatten(ev.hits, axis=1)
    hit_cluster, hit_global = _flat_relation(ev.clusters.hits, cl_off, hit_off)
    hit_pos = np.stack([_np(hits.x), _np(hits.y), _np(hits.z)], axis=1)
    cl_energy = _np(cl.energy)
    x_cluster = features.cluster_features(
        energy=cl_energy, x=_np(cl.x), y=_np(cl.y), z=_np(cl.z), itheta=_np(cl.itheta), phi=_np(cl.phi),
        hit_cluster=hit_cluster, hit_energy=_np(hits.energy)[hit_global],
        hit_subdetector=_np(hits.subdetector)[hit_global].astype(np.int64), hit_position=hit_pos[hit_global],
        energy_weighted_spread=energy_weighted_spread,
    )  # fmt: skip
    cluster_valid = np.isfinite(cl_energy) & (cl_energy > 0)

    # --- truth links -> particle/element weights ----------------------------------------------------------
    credit = np.arange(n_particles)
    if definition.credit_daughters:
        first_parent = _first_of(ev.mc.parents, mc_off, mc_off, n_particles)
        credit = targets.credit_map(status, pdg, first_parent)
    tl = ak.flatten(ev.track_links, axis=1)
    tl_event = np.repeat(ev_idx, _np(ak.num(ev.track_links, axis=1)))
    tl_trk, tl_p = _np(tl.track), _np(tl.particle)
    ok = (tl_trk >= 0) & (tl_p >= 0)
    track_pairs = targets.aggregate_pairs(
        credit[tl_p[ok] + mc_off[tl_event[ok]]],
        tl_trk[ok] + trk_off[tl_event[ok]],
        _np(tl.weight)[ok],
        n_tracks,
    )
    cln = ak.flatten(ev.calo_links, axis=1)
    cl_event = np.repeat(ev_idx, _np(ak.num(ev.calo_links, axis=1)))
    c_hit, c_p = _np(cln.hit), _np(cln.particle)
    ok = (c_hit >= 0) & (c_p >= 0)
    link_hit = c_hit[ok] + hit_off[cl_event[ok]]
    link_p = credit[c_p[ok] + mc_off[cl_event[ok]]]
    link_w = _np(cln.weight)[ok].astype(np.float64)
    # Join calo links with cluster membership: particle->cluster weights.
    cluster_pairs = targets.aggregate_pairs(*_join_hits(link_hit, link_p, link_w, hit_global, hit_cluster,
                                                        cluster_valid, int(hit_off[-1])), n_clusters)  # fmt: skip

    max_track_weight = np.zeros(n_particles)
    np.maximum.at(max_track_weight, track_pairs[0], track_pairs[2])
    calo_energy = np.bincount(cluster_pairs[0], weights=cluster_pairs[2], minlength=n_particles)
    vis = targets.visible(definition, status, pdg, energy, max_track_weight, calo_energy)
    assoc = targets.associate(
        visible_mask=vis, energy=energy, p4=p4, track_pairs=track_pairs, cluster_pairs=cluster_pairs,
        n_tracks=n_tracks, n_clusters=n_clusters,
    )  # fmt: skip

    def target_rows(owner: np.ndarray, elem_type: int) -> np.ndarray:
        o = np.clip(owner, 0, None)
        has = owner >= 0
        types = np.full(len(owner), elem_type)
        cls = (
            np.where(has, targets.pdg_to_class(pdg[o], charge[o], types), 0)
            if len(owner)
            else np.zeros(0, int)
        )
        q = np.where(has & (elem_type == features.ELEM_TYPE_TRACK), charge[o] if len(owner) else 0, 0)
        v = assoc.p4[o] if len(owner) else np.zeros((0, 4))
        return targets.particle_rows(cls, q, v[:, 0], v[:, 1], v[:, 2], v[:, 3])

    y_track = target_rows(assoc.track_owner, features.ELEM_TYPE_TRACK)
    y_cluster = target_rows(assoc.cluster_owner, features.ELEM_TYPE_CLUSTER)

    # --- baseline candidates --------------------------------------------------------------------------------
    pfo = ak.flatten(ev.pfos, axis=1)
    pfo_pdg = _np(pfo.pdg)
    track_pfo, cluster_pfo, unplaced = targets.candidate_placement(
        pfo_pdg,
        _first_of(ev.pfos.tracks, pfo_off, trk_off, len(pfo_pdg)),
        np.where(
            (first_cl := _first_of(ev.pfos.clusters, pfo_off, cl_off, len(pfo_pdg))) >= 0,
            np.where(cluster_valid[np.clip(first_cl, 0, None)], first_cl, -1) if n_clusters else -1,
            -1,
        ),
        n_tracks,
        n_clusters,
    )
    pfo_p4 = candidate_p4(pfo)
    pfo_charge = _np(pfo.charge)

    def cand_rows(owner: np.ndarray, elem_type: int) -> np.ndarray:
        if len(owner) == 0:
            return np.zeros((0, 7), dtype=np.float32)
        o = np.clip(owner, 0, None)
        has = owner >= 0
        cls = np.where(has, targets.pdg_to_class(pfo_pdg[o], pfo_charge[o], np.full(len(o), elem_type)), 0)
        q = np.where(has & (elem_type == features.ELEM_TYPE_TRACK), pfo_charge[o], 0)
        v = pfo_p4[o]
        return targets.particle_rows(cls, q, v[:, 0], v[:, 1], v[:, 2], v[:, 3])

    c_track = cand_rows(track_pfo, features.ELEM_TYPE_TRACK)
    c_cluster = cand_rows(cluster_pfo, features.ELEM_TYPE_CLUSTER)

    # --- assemble per event: tracks first, then (valid) clusters ------------------------------------------
    # Scatter rows straight to their place: event e holds its tracks, then its valid clusters.
    n_valid_cl = np.bincount(np.repeat(ev_idx, n_cl)[cluster_valid], minlength=n_ev)
    n_elem = n_trk + n_valid_cl
    elem_off = _offsets(n_elem)
    trk_event = np.repeat(ev_idx, n_trk)
    trk_pos = elem_off[trk_event] + np.arange(n_tracks) - trk_off[trk_event]
    cl_event = np.repeat(ev_idx, n_cl)[cluster_valid]
    valid_off = _offsets(n_valid_cl)
    cl_pos = elem_off[cl_event] + n_trk[cl_event] + np.arange(len(cl_event)) - valid_off[cl_event]
    pos = np.concatenate([trk_pos, cl_pos])

    def place(track_rows: np.ndarray, cluster_rows: np.ndarray) -> np.ndarray:
        out = np.empty((int(elem_off[-1]), track_rows.shape[1]), dtype=np.float32)
        out[pos] = np.concatenate([track_rows, cluster_rows[cluster_valid]])
        return out

    X = place(x_track, x_cluster)
    ytarget = place(y_track, y_cluster)
    ycand = place(c_track, c_cluster)

    # --- truth for jets and MET (targets.jet_truth) -------------------------------------------------------
    mc_pt = np.hypot(p4[:, 0], p4[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        # along the beam (pt = 0) eta is infinite: outside any acceptance
        mc_eta = np.where(mc_pt > 0, np.arcsinh(p4[:, 2] / np.where(mc_pt > 0, mc_pt, 1.0)), np.inf)
    truth_mask = targets.jet_truth(status, pdg, mc_eta, truth_max_abs_eta)
    tp4 = p4[truth_mask]
    t_pt, t_eta = mc_pt[truth_mask], mc_eta[truth_mask]
    n_truth = np.bincount(mc_event[truth_mask], minlength=n_ev)
    met_x = np.bincount(mc_event[truth_mask], weights=tp4[:, 0], minlength=n_ev)
    met_y = np.bincount(mc_event[truth_mask], weights=tp4[:, 1], minlength=n_ev)
    truth = ak.zip(
        {
            "pt": t_pt.astype(np.float32),
            "eta": t_eta.astype(np.float32),
            "phi": np.arctan2(tp4[:, 1], tp4[:, 0]).astype(np.float32),
            "energy": tp4[:, 3].astype(np.float32),
            "pdg": pdg[truth_mask].astype(np.int32),
        }
    )
    events = ak.zip(
        {
            "X": ak.unflatten(ak.from_numpy(X.astype(np.float32)), n_elem),
            "ytarget": ak.unflatten(ak.from_numpy(ytarget), n_elem),
            "ycand": ak.unflatten(ak.from_numpy(ycand), n_elem),
            "truth": ak.unflatten(truth, n_truth),
            "genmet": np.hypot(met_x, met_y).astype(np.float32),
        },
        depth_limit=1,
    )
    keep = n_elem > 0

    # --- bookkeeping (conservation inputs for dataset-validate) -------------------------------------------
    kept_particles = vis & ~assoc.dropped
    owner_energy = np.concatenate([assoc.p4[assoc.track_owner[assoc.track_owner >= 0], 3],
                                   assoc.p4[assoc.cluster_owner[assoc.cluster_owner >= 0], 3]])  # fmt: skip
    ev_keep_p = keep[mc_event]
    stats.add(
        events_read=n_ev,
        events_skipped_empty=int((~keep).sum()),
        tracks=n_tracks,
        clusters=int(cluster_valid.sum()),
        clusters_skipped_zero_energy=int((~cluster_valid).sum()),
        unresolved_cluster_hits=int(len(_np(ak.flatten(ev.clusters.hits, axis=None))) - len(hit_global)),
        visible_particles=int(vis.sum()),
        matched_to_track=int((assoc.track_owner >= 0).sum()),
        matched_to_cluster=int((assoc.cluster_owner >= 0).sum()),
        merged_particles=int((assoc.merged_into >= 0).sum()),
        dropped_particles=int(assoc.dropped.sum()),
        visible_energy=float(energy[vis & ev_keep_p].sum()),
        kept_energy=float(energy[kept_particles & ev_keep_p].sum()),
        target_energy=float(ytarget[:, 6].sum()),
        owner_energy=float(owner_energy.sum()),
        pfos=len(pfo_pdg),
        pfo_energy=float(pfo_p4[:, 3][(pfo_pdg != 0) & keep[np.repeat(ev_idx, n_pfo)]].sum()),
        pfos_unplaced=unplaced,
        candidate_energy=float(ycand[:, 6].sum()),
    )
    return events[keep]


def candidate_p4(pfo: ak.Array) -> np.ndarray:
    """[n, 4] (px, py, pz, E) of flat PF particles, E = sqrt(|p|^2 + m^2) from the stored momentum and mass.

    As upstream builds the baseline candidates (jpata/particleflow v1.6.2 scripts/fcc/postprocessing.py and
    v2.5.0 mlpf/data/key4hep/postprocessing.py: the candidate four-vector from `mass` and `momentum`), not from
    the stored `energy`: Pandora stores neutral hadrons with E = |p| but m = 0.9396 GeV (a neutron), so the two
    differ by up to ~0.6 GeV per low-energy neutral hadron.
    """
    px, py, pz, mass = (_np(pfo[name]).astype(np.float64) for name in ("px", "py", "pz", "mass"))
    return np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mass**2)], axis=1)


def resolve_bfield(settings: dict[str, Any], detected: str | None) -> tuple[str, float, str]:
    """(detector, field in T, how it was chosen) from `dataset.detector`/`dataset.bfield_tesla` and the file."""
    detector = settings.get("detector", "auto")
    source = "config"
    if detector == "auto":
        detector, source = (detected, "file") if detected else ("clic", "default (CLIC dataset)")
    if detector not in features.DETECTOR_BFIELD_TESLA:
        raise ConfigError(f"dataset.detector: unknown detector '{detector}'")
    bfield = settings.get("bfield_tesla")
    if bfield is not None:
        return detector, float(bfield), "config (bfield_tesla)"
    return detector, features.DETECTOR_BFIELD_TESLA[detector], source


def event_source(layout: Layout, detector: str, workflow_source: dict[str, Any] | None) -> dict[str, Any]:
    """Where the events of a file come from, for every output downstream (figure labels, model card).

    The file tells fast from full simulation (fastsim files carry their generation metadata); the workflow
    adds what the file cannot know, such as the Zenodo record or Key4HEP release it was acquired from.
    """
    meta = layout.fastsim_metadata
    if meta is not None:
        record: dict[str, Any] = {
            "simulation": SIMULATION_FAST,
            "description": "Pythia8 + CLICdet-like parametric fast simulation and rule-based PF (mlpf.sim)",
            "sample": meta.get("sample"),
            "shard": meta.get("shard"),
            "master_seed": meta.get("seed"),
            "job_seed": meta.get("job_seed"),
            "fastsim_version": meta.get("mlpf_version"),
        }
    else:
        record = {
            "simulation": SIMULATION_FULL,
            "description": "Geant4 full simulation and Marlin/Pandora reconstruction (Key4HEP)",
            "layout": layout.kind,
        }
    record["detector"] = detector
    return {**record, **(workflow_source or {})}


def parse_file(
    input_path: str | Path,
    output_path: str | Path,
    settings: dict[str, Any],
    workflow_source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Parse one EDM4HEP file into one parquet shard; returns the provenance record stored in its metadata.

    `workflow_source` (e.g. {"source": "zenodo", "zenodo_record": 8260741}) is added to the record of where
    the events come from (`event_source`).
    """
    settings = validate_section("dataset", settings, source="dataset settings")
    definition_name = settings["target"]
    definition = targets.TARGET_DEFINITIONS[definition_name]
    options = {
        "energy_weighted_spread": features.ENERGY_WEIGHTED_SPREAD[definition_name],
        "truth_max_abs_eta": settings["truth_max_abs_eta"],
    }
    stats = ParseStats()
    collections = CollectionNames.from_settings(settings["collections"])
    with Edm4hepFile(input_path, collections) as source:
        source.check_collections()
        detector, bfield, bfield_source = resolve_bfield(
            settings, detect_detector(source._file, source.layout)
        )
        parts = []
        bar = progress_bar(f"parse {Path(input_path).name}", total=source.n_events, unit="ev")
        try:
            for start, stop, chunk in source.iterate(settings["chunk_events"]):
                ranges.check_input_events(chunk, input_path, start, bfield)  # damaged values stop here, named
                parts.append(process_chunk(chunk, definition, bfield, stats, **options))
                bar.update(stop - start)
        finally:
            bar.close()
        layout_kind = source.layout.kind
        pfo_collection = source.pfo_collection
        events_record = event_source(source.layout, detector, workflow_source)
    events = ak.concatenate(parts) if parts else process_chunk_empty()
    record = provenance(
        settings,
        input=str(input_path),
        event_source=events_record,
        layout=layout_kind,
        pfo_collection=pfo_collection,
        detector=detector,
        bfield_tesla=bfield,
        bfield_source=bfield_source,
        element_features=list(features.ELEMENT_FEATURES),
        particle_columns=list(targets.PARTICLE_COLUMNS),
        class_names=list(targets.CLASS_NAMES),
        stats=stats.counts,
    )
    write_parquet(events, output_path, record)
    c = stats.counts
    log.info(
        "%s: %d events written (%d skipped without elements), %d zero-energy clusters skipped, "
        "%d visible particles dropped",
        output_path, len(events), c.get("events_skipped_empty", 0), c.get("clusters_skipped_zero_energy", 0),
        c.get("dropped_particles", 0),
    )  # fmt: skip
    return record


def process_chunk_empty() -> ak.Array:
    """A zero-event array with the contract's types (a file with no events still yields a valid shard)."""
    empty = np.zeros(0, dtype=np.int64)
    x = ak.unflatten(ak.from_numpy(np.zeros((0, features.N_FEATURES), np.float32)), empty)
    y = ak.unflatten(ak.from_numpy(np.zeros((0, len(targets.PARTICLE_COLUMNS)), np.float32)), empty)
    truth = ak.zip(
        {k: np.zeros(0, np.float32) for k in ("pt", "eta", "phi", "energy")} | {"pdg": np.zeros(0, np.int32)}
    )
    return ak.zip(
        {
            "X": x,
            "ytarget": y,
            "ycand": y,
            "truth": ak.unflatten(truth, empty),
            "genmet": np.zeros(0, np.float32),
        },
        depth_limit=1,
    )


def write_parquet(events: ak.Array, path: str | Path, record: dict[str, Any]) -> None:
    """Write atomically with the provenance JSON as parquet key-value metadata `mlpf`.

    `ak.to_parquet` only stores array attributes under its own key, so the awkward -> arrow conversion it uses
    is done here and the table is written with the metadata key added.
    """
    table = ak.to_arrow_table(events, extensionarray=False)
    metadata = dict(table.schema.metadata or {})
    metadata[PARQUET_METADATA_KEY] = json.dumps(record, sort_keys=True).encode("utf-8")
    table = table.replace_schema_metadata(metadata)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The `mlpf` provenance JSON of a parsed shard."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[PARQUET_METADATA_KEY]) if PARQUET_METADATA_KEY in meta else {}
