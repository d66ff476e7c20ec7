"""One EDM4HEP file -> one parquet shard of elements, targets, baseline candidates and truth (contracts §2).

Per chunk of events the reader's awkward arrays are flattened once; every element, particle and link then
gets a chunk-global index, so features, visibility, association and candidate placement run as numpy
operations over all events of the chunk at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from mlpf.config import validate_section
from mlpf.data import chunk, features, hits, ranges, targets
from mlpf.data.parquet import streaming, write_table
from mlpf.errors import ConfigError
from mlpf.io.edm4hep.collections import CollectionNames
from mlpf.io.edm4hep.layout import Layout, detect_detector
from mlpf.io.edm4hep.reader import Edm4hepFile, EventCollections
from mlpf.progress import progress_bar
from mlpf.provenance import provenance

log = logging.getLogger(__name__)

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
    pos = np.repeat(lo - chunk.offsets(n_match)[:-1], n_match) + np.arange(int(n_match.sum()))
    return link_p[link_rep], sorted_clusters[pos], link_w[link_rep]


def process_chunk(
    ev: EventCollections,
    definition: targets.Visibility,
    bfield: float,
    stats: ParseStats,
    *,
    energy_weighted_spread: bool = False,
    truth_max_abs_eta: float | None = targets.TRUTH_MAX_ABS_ETA,
) -> ak.Array:
    """Elements (tracks, clusters), targets, candidates and truth for a chunk of events (one record per event
    with elements); the hit level is mlpf.data.hits.process_chunk_hits.

    `energy_weighted_spread` selects the cluster sigma_x/y/z definition (features.ENERGY_WEIGHTED_SPREAD),
    `truth_max_abs_eta` the acceptance of the jet/MET truth (targets.jet_truth).
    """
    n_ev = ev.n_events
    ev_idx = np.arange(n_ev)
    n_trk, n_cl, n_hit = (chunk.counts_of(a) for a in (ev.tracks, ev.clusters, ev.hits))
    trk_off, cl_off, hit_off = chunk.offsets(n_trk), chunk.offsets(n_cl), chunk.offsets(n_hit)
    n_tracks, n_clusters = int(trk_off[-1]), int(cl_off[-1])
    mc = chunk.particles(ev, definition)
    x_track = chunk.track_elements(ev, bfield)

    # --- elements: clusters (zero-energy clusters are skipped and counted) --------------------------------
    cl = ak.flatten(ev.clusters, axis=1)
    hit = ak.flatten(ev.hits, axis=1)
    hit_cluster, hit_global = chunk.flat_relation(ev.clusters.hits, cl_off, hit_off)
    hit_pos = np.stack([chunk.to_numpy(hit.x), chunk.to_numpy(hit.y), chunk.to_numpy(hit.z)], axis=1)
    cl_energy = chunk.to_numpy(cl.energy)
    x_cluster = features.cluster_features(
        energy=cl_energy, x=chunk.to_numpy(cl.x), y=chunk.to_numpy(cl.y), z=chunk.to_numpy(cl.z),
        itheta=chunk.to_numpy(cl.itheta), phi=chunk.to_numpy(cl.phi), hit_cluster=hit_cluster,
        hit_energy=chunk.to_numpy(hit.energy)[hit_global],
        hit_subdetector=chunk.to_numpy(hit.subdetector)[hit_global].astype(np.int64),
        hit_position=hit_pos[hit_global], energy_weighted_spread=energy_weighted_spread,
    )  # fmt: skip
    cluster_valid = np.isfinite(cl_energy) & (cl_energy > 0)

    # --- truth links -> particle/element weights ----------------------------------------------------------
    track_pairs = chunk.track_pairs(ev, mc, trk_off)
    link_hit, link_p, link_w = chunk.calo_links(ev, mc, hit_off)
    # Join calo links with cluster membership: particle->cluster weights.
    cluster_pairs = targets.aggregate_pairs(*_join_hits(link_hit, link_p, link_w, hit_global, hit_cluster,
                                                        cluster_valid, int(hit_off[-1])), n_clusters)  # fmt: skip

    calo_energy = np.bincount(cluster_pairs[0], weights=cluster_pairs[2], minlength=len(mc))
    vis = targets.visible(
        definition, mc.status, mc.pdg, mc.energy, chunk.max_track_weight(track_pairs, len(mc)), calo_energy
    )
    assoc = targets.associate(
        visible_mask=vis, energy=mc.energy, p4=mc.p4, track_pairs=track_pairs, cluster_pairs=cluster_pairs,
        n_tracks=n_tracks, n_clusters=n_clusters,
    )  # fmt: skip
    y_track = chunk.target_rows(assoc.track_owner, features.ELEM_TYPE_TRACK, mc, assoc.p4)
    y_cluster = chunk.target_rows(assoc.cluster_owner, features.ELEM_TYPE_CLUSTER, mc, assoc.p4)

    # --- baseline candidates --------------------------------------------------------------------------------
    pf = chunk.candidates(ev, trk_off, cl_off)
    on_valid = pf.first_cluster >= 0
    if n_clusters:
        on_valid &= cluster_valid[np.clip(pf.first_cluster, 0, None)]
    track_pfo, cluster_pfo, unplaced = targets.candidate_placement(
        pf.pdg, pf.first_track, np.where(on_valid, pf.first_cluster, -1), n_tracks, n_clusters
    )
    c_track = pf.rows(track_pfo, features.ELEM_TYPE_TRACK)
    c_cluster = pf.rows(cluster_pfo, features.ELEM_TYPE_CLUSTER)

    # --- assemble per event: tracks first, then (valid) clusters ------------------------------------------
    n_valid_cl = np.bincount(np.repeat(ev_idx, n_cl)[cluster_valid], minlength=n_ev)
    n_elem, pos = chunk.element_positions(n_trk, n_valid_cl)
    X = chunk.place(pos, x_track, x_cluster[cluster_valid])
    ytarget = chunk.place(pos, y_track, y_cluster[cluster_valid])
    ycand = chunk.place(pos, c_track, c_cluster[cluster_valid])
    events = chunk.event_record(X, ytarget, ycand, n_elem, mc, truth_max_abs_eta)
    keep = n_elem > 0

    # --- bookkeeping (conservation inputs for dataset-validate) -------------------------------------------
    stats.add(
        events_read=n_ev,
        events_skipped_empty=int((~keep).sum()),
        tracks=n_tracks,
        clusters=int(cluster_valid.sum()),
        clusters_skipped_zero_energy=int((~cluster_valid).sum()),
        unresolved_cluster_hits=len(chunk.to_numpy(ak.flatten(ev.clusters.hits, axis=None))) - len(hit_global),
        matched_to_cluster=int((assoc.cluster_owner >= 0).sum()),
        **chunk.association_stats(assoc, vis, mc, keep),
        target_energy=float(ytarget[:, targets.Y_ENERGY].sum()),
        pfos=len(pf.pdg),
        pfo_energy=pf.energy_in(keep),
        pfos_unplaced=unplaced,
        candidate_energy=float(ycand[:, targets.Y_ENERGY].sum()),
    )  # fmt: skip
    return events[keep]


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
    elements = settings["elements"]
    step = settings["chunk_events"]
    if elements == "hits":
        process, options = hits.process_chunk_hits, {}
        step = min(step, hits.HITS_MAX_CHUNK_EVENTS)
    else:
        process = process_chunk
        options = {"energy_weighted_spread": features.ENERGY_WEIGHTED_SPREAD[definition_name]}
    options["truth_max_abs_eta"] = settings["truth_max_abs_eta"]
    stats = ParseStats()
    collections = CollectionNames.from_settings(settings["collections"])
    n_written = 0
    # Each chunk's events are written as a row group as soon as they are made: memory stays that of one chunk
    # (a 2000-event hit-level shard is ~2 GB of elements), and nothing is concatenated.
    with (
        Edm4hepFile(input_path, collections, read_hit_type=elements == "hits") as source,
        streaming(output_path) as out,
    ):
        source.check_collections()
        detector, bfield, bfield_source = resolve_bfield(
            settings, detect_detector(source._file, source.layout)
        )
        bar = progress_bar(f"parse {Path(input_path).name}", total=source.n_events, unit="ev")
        try:
            for start, stop, ev in source.iterate(step):
                ranges.check_input_events(ev, input_path, start, bfield)  # damaged values stop here, named
                events = process(ev, definition, bfield, stats, **options)
                if len(events):
                    out.append(ak.to_arrow_table(events, extensionarray=False))
                    n_written += len(events)
                bar.update(stop - start)
        finally:
            bar.close()
        record = provenance(
            settings,
            input=str(input_path),
            event_source=event_source(source.layout, detector, workflow_source),
            layout=source.layout.kind,
            pfo_collection=source.pfo_collection,
            detector=detector,
            bfield_tesla=bfield,
            bfield_source=bfield_source,
            elements=elements,
            element_features=list(features.element_features(elements)),
            particle_columns=list(targets.PARTICLE_COLUMNS),
            class_names=list(targets.CLASS_NAMES),
            stats=stats.counts,
        )
        out.finish(record, ak.to_arrow_table(process_chunk_empty(), extensionarray=False))
    c = stats.counts
    log.info(
        "%s: %d events written (%d skipped without elements), %d zero-energy %s skipped, "
        "%d visible particles dropped",
        output_path, n_written, c.get("events_skipped_empty", 0), c.get(f"{elements}_skipped_zero_energy", 0),
        elements, c.get("dropped_particles", 0),
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
    write_table(ak.to_arrow_table(events, extensionarray=False), path, record)
