"""Spread of trainings that differ only in their seed (paper Fig. 3): numbers per epoch and at the last epoch.

Each replica is a normal training (history.csv, model.json) with its own seed and the main run's
training/validation split, so the spread measures the training's randomness (initial weights, batch order,
dropout), not a change of validation events.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpf.atomic import write_text_atomic
from mlpf.errors import InputFileError
from mlpf.evaluate.plots.training import epoch_mean_std, plot_seed_bands, read_history
from mlpf.provenance import provenance

# Validation columns summarised across seeds.
COLUMNS = (
    "val_loss",
    "val_jet_iqr_over_median",
    "val_jet_iqr_over_median_pf",
    "val_met_iqr_over_median",
    "val_met_iqr_over_median_pf",
)
FIGURE = "validation_seeds"


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value) and the values themselves (NaN kept as null)."""
    finite = _finite(values)
    out: dict[str, Any] = {"values": [float(v) if math.isfinite(float(v)) else None for v in values]}
    out["mean"] = float(np.mean(finite)) if finite else None
    out["std"] = float(np.std(finite, ddof=1)) if len(finite) > 1 else (0.0 if finite else None)
    return out


def summarise(frames: Sequence[pd.DataFrame], seeds: Sequence[int]) -> dict[str, Any]:
    """Last-epoch spread, best validation loss and per-epoch mean/std of each validation column."""
    last = {c: spread([float(f[c].iloc[-1]) if c in f else math.nan for f in frames]) for c in COLUMNS}
    best = spread([float(f["val_loss"].min()) if "val_loss" in f else math.nan for f in frames])
    per_epoch = {}
    for column in COLUMNS:
        if any(column in f.columns for f in frames):
            stats = epoch_mean_std(list(frames), column)
            per_epoch[column] = {k: stats[k].tolist() for k in ("epoch", "mean", "std")}
    return {
        "n": len(frames),
        "seeds": list(seeds),
        "epochs": [int(f["epoch"].iloc[-1]) for f in frames],
        "last_epoch": last,
        "best_val_loss": best,
        "per_epoch": per_epoch,
    }


def _read_json(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputFileError(f"cannot read model info ({type(exc).__name__})", path=path) from None


def write_figures(draw: Callable[[Path], list[Path]], directory: str | Path) -> list[Path]:
    """Draw into a temporary directory beside `directory`, then move each file in: a figure appears only
    complete, and files already in `directory` that `draw` does not make stay."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        moved = []
        for path in draw(tmp):
            target = directory / path.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)
            moved.append(target)
        return moved
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_replica_summary(
    histories: Sequence[str | Path],
    infos: Sequence[str | Path],
    seeds: Sequence[int],
    metrics: str | Path,
    figures: str | Path,
) -> dict[str, Any]:
    """The replicas' numbers (JSON) and their seed-band figure (FIGURES/validation_seeds.{png,pdf})."""
    if not (len(histories) == len(infos) == len(seeds)):
        raise InputFileError("give one history, one model info and one seed per replica")
    frames = [read_history(p) for p in histories]
    summary = summarise(frames, seeds)
    first = _read_json(infos[0]) if infos else {}
    summary["model"] = (first.get("model") or {}).get("name")
    summary["provenance"] = provenance(
        {k: first.get(k) for k in ("model", "training", "dataset")}, seeds=list(seeds)
    )
    write_text_atomic(metrics, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    write_figures(lambda d: plot_seed_bands({"MLPF": frames}, d, FIGURE), figures)
    return summary
