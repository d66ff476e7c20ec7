"""Cross-sample summary: jet and MET resolution (IQR/median) of PF and MLPF for every evaluated sample, so
in-distribution and out-of-distribution samples can be compared at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np

from .style import RECO_STYLE, sample_label, save, use_style

COMPARED: tuple[str, ...] = ("pf", "mlpf")
PANELS: tuple[tuple[str, str], ...] = (("jet_response", "Jet $p_T$"), ("met_response", "MET"))


def _value(metrics: dict[str, Any], key: str, reco: str, stat: str) -> float:
    value = metrics.get(key, {}).get(reco, {}).get(stat)
    return float("nan") if value is None else float(value)


def plot_summary(metrics_by_sample: dict[str, dict[str, Any]], directory: Path) -> list[Path]:
    """resolution_summary.{png,pdf}: IQR/median per sample, one panel per quantity, bootstrap error bars."""
    if not metrics_by_sample:
        return []
    use_style()
    samples = sorted(metrics_by_sample)
    x = np.arange(len(samples))
    fig, axes = plt.subplots(
        len(PANELS), 1, figsize=(max(8, 2.2 * len(samples) + 4), 5 * len(PANELS)), sharex=True
    )
    for ax, (key, title) in zip(np.atleast_1d(axes), PANELS, strict=True):
        for offset, reco in zip((-0.1, 0.1), COMPARED, strict=True):
            y = [_value(metrics_by_sample[s], key, reco, "iqr_over_median") for s in samples]
            err = [_value(metrics_by_sample[s], key, reco, "iqr_over_median_err") for s in samples]
            style = RECO_STYLE[reco]
            ax.errorbar(
                x + offset, y, yerr=err, marker="o", ls="none", color=style["color"], label=style["label"]
            )
        ax.set_ylabel(f"{title} IQR / median")
        ax.set_ylim(0, None)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)
        ax.legend(loc="upper right", fontsize=16)
        ax.tick_params(axis="x", which="minor", bottom=False, top=False)  # categories, not a scale
    last = np.atleast_1d(axes)[-1]
    last.set_xticks(x, [sample_label(s) for s in samples], rotation=20, ha="right", fontsize=16)
    last.set_xlim(-0.5, len(samples) - 0.5)
    hep.label.exp_label(exp="CLIC", data=False, rlabel="380 GeV", ax=np.atleast_1d(axes)[0])
    fig.tight_layout()
    return save(fig, directory, "resolution_summary")
