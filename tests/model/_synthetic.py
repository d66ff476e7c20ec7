"""Small synthetic parsed-dataset files that follow docs/contracts.md section 2 exactly.

Events hold tracks then clusters. Each element's target is a simple, learnable function of its features:
tracks carry charged particles (pion, sometimes electron or muon) with pt close to the track pt, clusters carry
photons, neutral hadrons or nothing depending on their ECAL fraction, so a model can visibly learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq


def make_events(n_events: int, seed: int, n_min: int = 10, n_max: int = 60) -> ak.Array:
    rng = np.random.default_rng(seed)
    n_tracks = rng.integers(n_min // 2, n_max // 2 + 1, n_events)
    n_clusters = rng.integers(n_min - n_min // 2, n_max - n_max // 2 + 1, n_events)
    counts = n_tracks + n_clusters
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    local = np.arange(total) - starts
    is_track = local < np.repeat(n_tracks, counts)

    pt = rng.exponential(5.0, total).astype(np.float32) + 0.5
    eta = rng.uniform(-2.5, 2.5, total).astype(np.float32)
    phi = rng.uniform(-np.pi, np.pi, total).astype(np.float32)
    p = pt * np.cosh(eta)
    ecal_frac = rng.uniform(0, 1, total).astype(np.float32)

    X = np.zeros((total, 17), dtype=np.float32)
    X[:, 0] = np.where(is_track, 1, 2)
    X[:, 1], X[:, 2], X[:, 3], X[:, 4], X[:, 5] = pt, eta, np.sin(phi), np.cos(phi), p
    X[:, 6] = np.where(is_track, rng.uniform(0, 20, total), 1500 * np.cos(phi))
    X[:, 7] = np.where(is_track, rng.integers(5, 15, total), 1500 * np.sin(phi))
    X[:, 10] = np.where(is_track, rng.uniform(10, 100, total), ecal_frac * p)
    X[:, 11] = np.where(is_track, np.sinh(eta), (1 - ecal_frac) * p)
    X[:, 13] = np.where(is_track, 3e-4 * 4.0 / pt, rng.integers(1, 100, total))

    cls = np.where(is_track, 1, np.where(ecal_frac > 0.7, 3, np.where(ecal_frac > 0.3, 2, 0)))
    lepton = rng.uniform(0, 1, total)
    cls = np.where(is_track & (lepton < 0.1), 4, np.where(is_track & (lepton > 0.95), 5, cls))
    charge = np.where(is_track, np.where(rng.uniform(0, 1, total) < 0.5, -1, 1), 0)
    scale = np.where(is_track, 1.0, 1.0 + 0.5 * (1 - ecal_frac)).astype(np.float32)
    tpt = pt * scale
    mass = np.where(is_track, 0.1396, 0.0).astype(np.float32)
    tE = np.sqrt((tpt * np.cosh(eta)) ** 2 + mass**2)
    ytarget = np.stack([cls, charge, tpt, eta, np.sin(phi), np.cos(phi), tE], axis=1).astype(np.float32)
    ytarget[cls == 0] = 0.0
    ycand = ytarget.copy()
    ycand[:, 2] *= 0.9
    ycand[:, 6] *= 0.9

    def jag(a: np.ndarray) -> ak.Array:
        return ak.unflatten(ak.to_regular(ak.from_numpy(a), axis=1), counts)

    keep = cls > 0
    tcounts = np.add.reduceat(keep.astype(np.int64), np.cumsum(counts) - counts)
    truth = ak.unflatten(
        ak.zip(
            {
                "pt": tpt[keep],
                "eta": eta[keep],
                "phi": phi[keep],
                "energy": tE[keep].astype(np.float32),
                "pdg": np.where(cls[keep] == 1, 211, 22).astype(np.int32),
            }
        ),
        tcounts,
    )
    px = ak.sum(truth.pt * np.cos(truth.phi), axis=1)
    py = ak.sum(truth.pt * np.sin(truth.phi), axis=1)
    genmet = ak.values_astype(np.hypot(px, py), np.float32)
    return ak.zip(
        {"X": jag(X), "ytarget": jag(ytarget), "ycand": jag(ycand), "truth": truth, "genmet": genmet},
        depth_limit=1,
    )


def write_parquet(path: str | Path, n_events: int, seed: int, **kwargs: int) -> Path:
    """Write a synthetic shard with the `mlpf` key-value metadata the parser writes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = ak.to_arrow_table(make_events(n_events, seed, **kwargs), extensionarray=True)
    meta = dict(table.schema.metadata or {})
    meta[b"mlpf"] = json.dumps({"format": "synthetic-test", "seed": seed}).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path
