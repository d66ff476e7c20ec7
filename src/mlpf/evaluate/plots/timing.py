"""Inference-time scaling with the number of elements per event (paper Fig. 10), from benchmark files.

Accepted inputs: CSV, or JSON holding a list of records (or an object with a `results` or `scaling` list, the
latter as written by benchmarks/bench_model.py --json). Each record needs a
size column and a time column (first name found below); records may carry a label column (backend, device,
model) and are drawn as one line per label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpf.errors import InputFileError

from .style import decorate, new_figure, save

SIZE_COLUMNS: tuple[str, ...] = ("n_elements", "num_elements", "elements", "N", "n")
TIME_COLUMNS: tuple[tuple[str, float], ...] = (  # (column, factor to milliseconds)
    ("time_ms", 1.0),
    ("infer_ms", 1.0),
    ("ms_per_event", 1.0),
    ("time_per_event_ms", 1.0),
    ("latency_ms", 1.0),
    ("time_s", 1000.0),
    ("seconds", 1000.0),
)
LABEL_COLUMNS: tuple[str, ...] = ("label", "backend", "device", "model")
# Legend text of the labels benchmarks/bench_model.py writes; other labels are shown as they are.
DISPLAY_LABELS: dict[str, str] = {
    "gnn_lsh": "MLPF GNN-LSH",
    "transformer": "MLPF transformer",
    "reference": "nn.TransformerEncoder (yardstick)",
    "baseline_pf": "Baseline PF (fast simulation, 1 thread)",
}


def read_timing(path: str | Path) -> pd.DataFrame:
    """Read one benchmark file into columns n_elements, time_ms, label."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data = data.get("results") or data.get("scaling") or [data]
            frame = pd.DataFrame(data)
        else:
            frame = pd.read_csv(path, sep=None, engine="python")
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read timing file ({type(exc).__name__})", path=path) from None
    size = next((c for c in SIZE_COLUMNS if c in frame.columns), None)
    timing = next(((c, f) for c, f in TIME_COLUMNS if c in frame.columns), None)
    if size is None or timing is None:
        raise InputFileError(
            f"timing file needs a size column ({', '.join(SIZE_COLUMNS)}) and a time column "
            f"({', '.join(c for c, _ in TIME_COLUMNS)})",
            path=path,
        )
    label = next((c for c in LABEL_COLUMNS if c in frame.columns), None)
    return pd.DataFrame(
        {
            "n_elements": pd.to_numeric(frame[size], errors="coerce"),
            "time_ms": pd.to_numeric(frame[timing[0]], errors="coerce") * timing[1],
            "label": frame[label].astype(str) if label else path.stem,
        }
    ).dropna()


def plot_timing(paths: Sequence[str | Path], directory: Path) -> list[Path]:
    """timing_scaling.{png,pdf}: inference time per event vs elements per event, log-log, one line per label
    (the MLPF backbones and, when timed, the baseline PF: paper Fig. 10)."""
    frame = pd.concat([read_timing(p) for p in paths], ignore_index=True)
    frame = frame.sort_values(["label", "n_elements"])  # measured sizes differ per label (the PF's events)
    fig, ax, _ = new_figure()
    for label, group in frame.groupby("label", sort=True):
        mean = group.groupby("n_elements")["time_ms"].mean().sort_index()
        ax.plot(
            mean.index.to_numpy(), mean.to_numpy(), marker="o", label=DISPLAY_LABELS.get(label, str(label))
        )
    if len(frame):
        n = np.sort(frame["n_elements"].unique())
        ref = frame.loc[frame["n_elements"] == n[0], "time_ms"].mean()
        ax.plot(n, ref * n / n[0], ls="--", color="gray", label="linear scaling")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Elements per event")
    ax.set_ylabel("Inference time per event [ms]")
    ax.legend(loc="upper left", fontsize=16, bbox_to_anchor=(0.0, 0.92))
    decorate(ax, extra=None)
    return save(fig, directory, "timing_scaling")
