"""Response figures: jet pT, MET and total 3-momentum response of MLPF and PF against the truth, the
distributions themselves with ratio panels, and median / (IQR/median) versus the generator quantity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np

from ..stats import med_iqr
from .style import RECO_STYLE, decorate, new_figure, save

COMPARED: tuple[str, ...] = ("pf", "mlpf")


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def plot_response(
    responses: dict[str, np.ndarray],
    xlabel: str,
    directory: Path,
    name: str,
    sample: str,
    bins: np.ndarray,
    extra: str | None = None,
) -> list[Path]:
    """Normalised histograms of reco/gen for PF and MLPF; the legend quotes median and IQR of each; the
    dashed line at 1 is the truth."""
    fig, ax, _ = new_figure()
    peak = 0.0
    for reco in COMPARED:
        values = _finite(responses[reco])
        median, iqr = med_iqr(values)
        # Normalised to all entries; those outside the axis range are quoted in the legend rather than
        # folded into the edge bins, where a long tail would make a spike that dwarfs the peak.
        counts, _ = np.histogram(values, bins=bins)
        density = counts / max(len(values), 1) / np.diff(bins)
        peak = max(peak, float(density.max(initial=0.0)))
        outside = 1.0 - counts.sum() / len(values) if len(values) else 0.0
        label = f"{RECO_STYLE[reco]['label']}: median {median:.3f}, IQR {iqr:.3f}"
        if outside >= 0.005:
            label += f" ({100 * outside:.0f}% outside)"
        style = RECO_STYLE[reco]
        hep.histplot(density, bins, ax=ax, color=style["color"], lw=2, label=label)
    ax.axvline(1.0, color=RECO_STYLE["truth"]["color"], ls="--", lw=1.5, label="Truth (response = 1)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Normalised entries / bin width")
    ax.set_xlim(bins[0], bins[-1])
    # The sample text takes the top-left corner; the legend (long lines quoting median and IQR) goes below
    # it, with headroom above the peak so that neither covers the histograms.
    ax.set_ylim(0, peak * 1.8 if peak > 0 else 1)
    # An opaque frame keeps the truth line at 1 from running through the legend text.
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(0.0, 0.86),
        fontsize=15,
        frameon=True,
        framealpha=1.0,
        edgecolor="none",
    )
    decorate(ax, sample, extra)
    return save(fig, directory, name)


def plot_distribution(
    values: dict[str, np.ndarray],
    xlabel: str,
    directory: Path,
    name: str,
    sample: str,
    bins: np.ndarray,
    logy: bool = True,
    extra: str | None = None,
    ylabel: str = "Entries",
    truth_label: str | None = None,
) -> list[Path]:
    """Histograms of truth, PF and MLPF with a reco/truth ratio panel."""
    fig, ax, rax = new_figure(ratio=True)
    truth_counts, _ = np.histogram(_finite(values["truth"]), bins=bins)
    for reco in ("truth", *COMPARED):
        counts, _ = np.histogram(_finite(values[reco]), bins=bins)
        style = RECO_STYLE[reco]
        label = truth_label if reco == "truth" and truth_label else style["label"]
        hep.histplot(
            counts, bins, ax=ax, color=style["color"], lw=2, label=label, ls="-" if reco != "truth" else "--"
        )
        if reco != "truth":
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(truth_counts > 0, counts / truth_counts, np.nan)
                err = np.where(truth_counts > 0, np.sqrt(np.maximum(counts, 1)) / truth_counts, np.nan)
            centres = 0.5 * (bins[1:] + bins[:-1])
            rax.errorbar(centres, ratio, yerr=err, color=style["color"], marker="o", ms=4, ls="none")
    rax.axhline(1.0, color="black", ls="--", lw=1)
    rax.set_ylim(0.5, 1.5)
    rax.set_ylabel("Reco / truth")
    rax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("")
    if logy:
        ax.set_yscale("log")
        top = max(float(truth_counts.max(initial=1)), 1.0)
        ax.set_ylim(0.5, top * 50)
    else:
        ax.set_ylim(0, max(float(truth_counts.max(initial=1)), 1.0) * 1.5)
    ax.legend(loc="upper right", fontsize=16)
    decorate(ax, sample, extra)
    return save(fig, directory, name)


def plot_binned(
    section: dict[str, Any],
    xlabel: str,
    quantity: str,
    directory: Path,
    name: str,
    sample: str,
    extra: str | None = None,
) -> list[Path] | None:
    """Median response and IQR/median in bins of the generator quantity, from a metrics section with a
    `binned` block per reconstruction; bootstrap errors as error bars. None if no bin is populated."""
    if not all(reco in section and "binned" in section[reco] for reco in COMPARED):
        return None
    fig, ax, rax = new_figure(ratio=True)
    any_point = False
    for offset, reco in zip((-0.1, 0.1), COMPARED, strict=True):
        binned = section[reco]["binned"]
        edges = np.asarray(binned["edges"], dtype=np.float64)
        centres = 0.5 * (edges[1:] + edges[:-1])
        shift = offset * np.diff(edges) * 0.5  # side by side, so error bars do not hide each other
        as_array = {
            k: np.asarray([np.nan if v is None else v for v in binned[k]], dtype=np.float64)
            for k in ("iqr_over_median", "iqr_over_median_err", "median", "median_err")
        }
        style = RECO_STYLE[reco]
        any_point |= bool(np.isfinite(as_array["iqr_over_median"]).any())
        ax.errorbar(
            centres + shift,
            as_array["iqr_over_median"],
            yerr=as_array["iqr_over_median_err"],
            xerr=None,
            marker="o",
            ls="none",
            color=style["color"],
            label=style["label"],
        )
        rax.errorbar(
            centres + shift,
            as_array["median"],
            yerr=as_array["median_err"],
            marker="o",
            ls="none",
            color=style["color"],
        )
    if not any_point:
        plt.close(fig)
        return None
    ax.set_ylabel(f"{quantity} response IQR / median")
    ax.set_ylim(0, None)
    top = ax.get_ylim()[1]
    ax.set_ylim(0, top * 1.4)
    ax.legend(loc="upper right", fontsize=16)
    rax.axhline(1.0, color="black", ls="--", lw=1)
    rax.set_ylabel("Median")
    rax.set_xlabel(xlabel)
    rax.set_xlim(edges[0], edges[-1])
    decorate(ax, sample, extra)
    return save(fig, directory, name)
