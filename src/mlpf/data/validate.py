"""Summary and sanity checks of parsed shards, per sample (the shard's parent directory name).

Reports event and element counts, target and candidate class fractions, target coverage (target energy over
visible truth energy, from the counts `mlpf parse` stores in each shard's metadata), candidate energy against
the PFO collection, and NaN/inf checks. Every check has a boolean under `checks`; `ok` is their conjunction.
A shard that cannot be read, is of another schema or holds a value outside the physical ranges of
mlpf.data.ranges is an error naming the shard (and the event), as a damaged file is not a sample to summarise.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq

from mlpf.data import ranges
from mlpf.data.features import ELEM_TYPE_CLUSTER, ELEM_TYPE_HIT, ELEM_TYPE_TRACK, N_FEATURES, X_TYPE
from mlpf.data.parquet import read_metadata
from mlpf.data.parse import ENERGY_TOLERANCE_GEV
from mlpf.data.targets import CLASS_NAMES, PARTICLE_COLUMNS
from mlpf.errors import InputFileError

FIELDS = ("X", "ytarget", "ycand", "truth", "genmet")
# float32 sums over many elements: allow this relative rounding on top of the per-event tolerance.
RELATIVE_TOLERANCE = 1e-5


def _read(path: Path) -> ak.Array:
    try:
        names = set(pq.read_schema(path).names)
        missing = [f for f in FIELDS if f not in names]
        events = None if missing else ak.from_parquet(path, columns=list(FIELDS))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for damaged files
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InputFileError(f"not a readable parsed shard ({reason})", path=path) from None
    if events is None:  # a parquet file of another schema (e.g. predictions or responses)
        raise InputFileError(
            f"not a parsed shard: missing field(s) {', '.join(missing)} (docs/contracts.md section 2)",
            path=path,
        )
    return events


def _finite(array: ak.Array) -> bool:
    flat = ak.flatten(array, axis=None)
    return bool(np.all(np.isfinite(ak.to_numpy(flat)))) if len(flat) else True


def _fractions(classes: np.ndarray) -> dict[str, float]:
    counts = np.bincount(classes.astype(np.int64), minlength=len(CLASS_NAMES))
    total = max(int(counts.sum()), 1)
    return {name: float(c) / total for name, c in zip(CLASS_NAMES, counts, strict=True)}


def summarise_sample(paths: list[Path]) -> dict[str, Any]:
    """Summary and checks of the shards of one sample."""
    n_events = 0
    n_elements, n_tracks, n_clusters, n_hits = 0, 0, 0, 0
    max_elements = 0
    target_classes, cand_classes = [], []
    finite = True
    shape_ok = True
    stats: dict[str, float] = defaultdict(float)
    for path in paths:
        events = _read(path)
        ranges.check_shard(events, path)
        n_events += len(events)
        X = ak.to_numpy(ak.flatten(events.X, axis=1)) if len(events) else np.zeros((0, N_FEATURES))
        yt = ak.to_numpy(ak.flatten(events.ytarget, axis=1)) if len(events) else np.zeros((0, 7))
        yc = ak.to_numpy(ak.flatten(events.ycand, axis=1)) if len(events) else np.zeros((0, 7))
        shape_ok &= X.shape[1:] == (N_FEATURES,) and yt.shape[1:] == yc.shape[1:] == (len(PARTICLE_COLUMNS),)
        n_elements += len(X)
        n_tracks += int((X[:, X_TYPE] == ELEM_TYPE_TRACK).sum())
        n_clusters += int((X[:, X_TYPE] == ELEM_TYPE_CLUSTER).sum())
        n_hits += int((X[:, X_TYPE] == ELEM_TYPE_HIT).sum())
        if len(events):
            max_elements = max(max_elements, int(ak.max(ak.num(events.X, axis=1))))
        target_classes.append(yt[:, 0])
        cand_classes.append(yc[:, 0])
        finite &= all(_finite(events[f]) for f in FIELDS)
        for key, value in read_metadata(path).get("stats", {}).items():
            stats[key] += value
    yt_cls = np.concatenate(target_classes) if target_classes else np.zeros(0)
    yc_cls = np.concatenate(cand_classes) if cand_classes else np.zeros(0)
    events_read = stats.get("events_read", 0)
    tol = ENERGY_TOLERANCE_GEV * max(events_read, 1)

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= tol + RELATIVE_TOLERANCE * max(abs(a), abs(b))

    checks = {
        "finite": finite,
        "shapes": bool(shape_ok),
        "classes_in_range": bool(np.all((yt_cls >= 0) & (yt_cls < len(CLASS_NAMES)))),
        "target_energy_equals_kept_truth": close(
            stats.get("target_energy", 0.0), stats.get("kept_energy", 0.0)
        ),
        "candidate_energy_equals_pfos": stats.get("pfos_unplaced", 0) > 0
        or close(stats.get("candidate_energy", 0.0), stats.get("pfo_energy", 0.0)),
    }
    visible_energy = stats.get("visible_energy", 0.0)
    return {
        "shards": len(paths),
        "events": n_events,
        "events_skipped_empty": int(stats.get("events_skipped_empty", 0)),
        "elements": n_elements,
        "tracks": n_tracks,
        "clusters": n_clusters,
        "hits": n_hits,
        "elements_per_event_mean": n_elements / max(n_events, 1),
        "elements_per_event_max": max_elements,
        "target_class_fractions": _fractions(yt_cls),
        "candidate_class_fractions": _fractions(yc_cls),
        "elements_with_target": float((yt_cls > 0).mean()) if len(yt_cls) else 0.0,
        "target_coverage": stats.get("target_energy", 0.0) / visible_energy if visible_energy > 0 else None,
        "visible_particles_dropped": int(stats.get("dropped_particles", 0)),
        "visible_particles_merged": int(stats.get("merged_particles", 0)),
        "clusters_skipped_zero_energy": int(stats.get("clusters_skipped_zero_energy", 0)),
        "hits_skipped_zero_energy": int(stats.get("hits_skipped_zero_energy", 0)),
        "pfos_unplaced": int(stats.get("pfos_unplaced", 0)),
        "checks": checks,
        "ok": all(checks.values()),
    }


def validate_shards(paths: list[str | Path]) -> dict[str, Any]:
    """Summaries per sample plus an overall `ok`."""
    by_sample: dict[str, list[Path]] = defaultdict(list)
    for p in map(Path, paths):
        if not p.is_file():
            raise InputFileError("no such file", path=p)
        by_sample[p.parent.name].append(p)
    samples = {name: summarise_sample(sorted(ps)) for name, ps in sorted(by_sample.items())}
    return {"samples": samples, "ok": all(s["ok"] for s in samples.values())}


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable table of the summary."""
    lines = []
    for name, s in summary["samples"].items():
        coverage = "n/a" if s["target_coverage"] is None else f"{s['target_coverage']:.3f}"
        failed = [k for k, v in s["checks"].items() if not v]
        lines.append(
            f"{name}: {s['events']} events, {s['elements_per_event_mean']:.1f} elements/event "
            f"(max {s['elements_per_event_max']}), {s['tracks']} tracks, {s['clusters']} clusters, "
            + (f"{s['hits']} calorimeter hits, " if s["hits"] else "")
            + f"target coverage {coverage}, {s['visible_particles_dropped']} visible particles dropped; "
            + ("all checks pass" if not failed else f"FAILED: {', '.join(failed)}")
        )
        fractions = ", ".join(f"{k} {v:.3f}" for k, v in s["target_class_fractions"].items())
        lines.append(f"  target classes: {fractions}")
    return "\n".join(lines)
