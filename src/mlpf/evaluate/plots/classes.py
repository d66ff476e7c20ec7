"""Per-class figures: efficiency and fake rate versus track pT / cluster energy (binomial Wilson errors), energy
response versus target energy, and pT / eta distributions per class (target truth vs PF vs MLPF)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from mlpf.data.targets import CLASS_NAMES

from ..columns import CLASS_LABELS
from .response import plot_distribution
from .style import RECO_STYLE, decorate, new_figure, save

COMPARED: tuple[str, ...] = ("pf", "mlpf")
# Fewest target particles of a class for its figures to be drawn (below this the points are noise).
MIN_CLASS_ENTRIES = 20
# Fewest elements in a bin for its efficiency or fake rate to be drawn.
MIN_BIN_ENTRIES = 5


def _log_centres(edges: np.ndarray) -> np.ndarray:
    """Bin centres for a log axis: geometric mean, or half the upper edge for a bin starting at zero."""
    low, high = edges[:-1], edges[1:]
    return np.where(low > 0, np.sqrt(np.abs(low * high)), 0.5 * high)


def _arr(values: list[Any]) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


def _drawable_classes(per_class: dict[str, Any]) -> list[str]:
    """Particle classes with metrics for both PF and MLPF and enough target particles to be more than noise."""
    return [
        name
        for name in CLASS_NAMES[1:]
        if all(name in per_class.get(reco, {}) for reco in COMPARED)
        and per_class["mlpf"][name]["n_target"] >= MIN_CLASS_ENTRIES
    ]


def plot_efficiency(per_class: dict[str, Any], directory: Path, sample: str) -> list[Path]:
    """eff_fake_<class>.png: efficiency (top) and fake rate (bottom) vs track pT / cluster energy, PF and MLPF."""
    written: list[Path] = []
    for name in _drawable_classes(per_class):
        fig, ax, rax = new_figure(ratio=True, figsize=(10, 10))
        top_fake = 0.0
        for offset, reco in zip((0.97, 1.03), COMPARED, strict=True):
            binned = per_class[reco][name]["binned"]
            edges = np.asarray(binned["edges"], dtype=np.float64)
            centres = _log_centres(edges) * offset
            # Horizontal bars span the bin (clipped at the axis start for a bin beginning at zero).
            xerr = [centres - np.maximum(edges[:-1], centres * 0.6), edges[1:] - centres]
            style = RECO_STYLE[reco]
            fake = _arr(binned["fake_rate"]["value"]) + _arr(binned["fake_rate"]["err_high"])
            fake[np.asarray(binned["fake_rate"]["n"]) < MIN_BIN_ENTRIES] = np.nan
            top_fake = max(top_fake, float(np.nanmax(fake, initial=0.0)))
            for axis, key in ((ax, "efficiency"), (rax, "fake_rate")):
                b = binned[key]
                # Bins with a handful of entries only add full-height error bars: leave them out.
                value = np.where(np.asarray(b["n"]) >= MIN_BIN_ENTRIES, _arr(b["value"]), np.nan)
                axis.errorbar(
                    centres,
                    value,
                    xerr=xerr,
                    yerr=[_arr(b["err_low"]), _arr(b["err_high"])],
                    marker="o",
                    ls="none",
                    color=style["color"],
                    label=style["label"],
                )
        ax.set_ylabel("Efficiency")
        ax.set_ylim(0, 1.4)
        ax.legend(loc="upper right", fontsize=16)
        rax.set_ylabel("Fake rate")
        rax.set_ylim(0, min(1.05, max(0.1, 1.25 * top_fake)))
        rax.set_xscale("log")
        rax.set_xlim(_log_centres(edges)[0] * 0.6, edges[-1])
        rax.set_xlabel(r"Element track $p_T$ / cluster $E$ [GeV]")
        decorate(ax, sample, CLASS_LABELS[name])
        written += save(fig, directory, f"eff_fake_{name}")
    return written


def plot_class_response(per_class: dict[str, Any], directory: Path, sample: str) -> list[Path]:
    """energy_response_<class>.png: median energy response (top) and IQR/median (bottom) vs target energy."""
    written: list[Path] = []
    for name in _drawable_classes(per_class):
        fig, ax, rax = new_figure(ratio=True, figsize=(10, 10))
        drawn = False
        for offset, reco in zip((0.97, 1.03), COMPARED, strict=True):
            b = per_class[reco][name]["binned"]["energy_response"]
            edges = np.asarray(b["edges"], dtype=np.float64)
            centres = _log_centres(edges) * offset
            style = RECO_STYLE[reco]
            median = _arr(b["median"])
            drawn |= bool(np.isfinite(median).any())
            ax.errorbar(
                centres,
                median,
                yerr=_arr(b["median_err"]),
                marker="o",
                ls="none",
                color=style["color"],
                label=style["label"],
            )
            rax.errorbar(
                centres,
                _arr(b["iqr_over_median"]),
                yerr=_arr(b["iqr_over_median_err"]),
                marker="o",
                ls="none",
                color=style["color"],
            )
        if not drawn:
            plt.close(fig)
            continue
        ax.axhline(1.0, color="black", ls="--", lw=1, label="Truth (response = 1)")
        ax.set_ylabel(r"Median $E_{reco}/E_{target}$")
        ax.set_ylim(0.5, 1.5)
        ax.legend(loc="upper right", fontsize=16)
        rax.set_ylabel("IQR / median")
        rax.set_ylim(0, None)
        rax.set_xscale("log")
        rax.set_xlim(_log_centres(edges)[0] * 0.6, edges[-1])
        rax.set_xlabel("Target particle energy [GeV]")
        decorate(ax, sample, CLASS_LABELS[name])
        written += save(fig, directory, f"energy_response_{name}")
    return written


def plot_kinematics(elements: dict[str, np.ndarray], directory: Path, sample: str) -> list[Path]:
    """kinematics_<class>_{pt,eta}.png: per-class particle pT and eta of target, PF and MLPF."""
    written: list[Path] = []
    for code, name in enumerate(CLASS_NAMES):
        if code == 0 or int(np.sum(elements["target_class"] == code)) < MIN_CLASS_ENTRIES:
            continue
        pt = {
            reco: elements[f"{src}_pt"][elements[f"{src}_class"] == code]
            for reco, src in (("truth", "target"), ("pf", "pf"), ("mlpf", "mlpf"))
        }
        eta = {
            reco: elements[f"{src}_eta"][elements[f"{src}_class"] == code]
            for reco, src in (("truth", "target"), ("pf", "pf"), ("mlpf", "mlpf"))
        }
        top = max(float(np.percentile(pt["truth"], 99.5)), 1.0)
        written += plot_distribution(
            pt,
            r"Particle $p_T$ [GeV]",
            directory,
            f"kinematics_{name}_pt",
            sample,
            np.linspace(0, top, 41),
            extra=CLASS_LABELS[name],
            ylabel="Particles",
            truth_label="Truth (target)",
        )
        written += plot_distribution(
            eta,
            r"Particle $\eta$",
            directory,
            f"kinematics_{name}_eta",
            sample,
            np.linspace(-4, 4, 41),
            logy=False,
            extra=CLASS_LABELS[name],
            ylabel="Particles",
            truth_label="Truth (target)",
        )
    return written
