"""Common figure style: mplhep CMS-like style, a label naming the simulation the events come from, fixed colours
per reconstruction."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
# matplotlib reports font substitutions at INFO; they would flood the stage log at the CLI's INFO level.
logging.getLogger("matplotlib").setLevel(logging.WARNING)

import matplotlib.pyplot as plt
import mplhep as hep

# One colour and name per reconstruction, the same in every figure.
RECO_STYLE: dict[str, dict[str, Any]] = {
    "truth": {"label": "Truth", "color": "black"},
    "target": {"label": "Target", "color": "tab:gray"},
    "pf": {"label": "PF", "color": "tab:blue"},
    "mlpf": {"label": "MLPF", "color": "tab:orange"},
}

SAMPLE_LABELS: dict[str, str] = {
    "ttbar": r"$e^+e^- \to t\bar{t}$",
    "ttbar_pu10": r"$e^+e^- \to t\bar{t}$ + PU10",
    "qq": r"$e^+e^- \to q\bar{q}$",
    "zh_tautau": r"$e^+e^- \to ZH,\ H \to \tau\tau$",
    "ww_fullhad": r"$e^+e^- \to WW \to$ hadrons",
    "z_tautau": r"$e^+e^- \to Z \to \tau\tau$",
    "gun_e": r"single $e^\pm$",
    "gun_mu": r"single $\mu^\pm$",
    "gun_pi": r"single $\pi^\pm$",
    "gun_pi0": r"single $\pi^0$",
    "gun_kl": r"single $K^0_L$",
    "gun_n": r"single neutron",
    "gun_gamma": r"single $\gamma$",
}
DPI = 110

# Experiment label per kind of simulation (`simulation` of the events' source record, mlpf.data.parse): the
# fast simulation is a CLICdet-like parametric detector, not CLIC's Geant4 model, and says so on every figure.
SOURCE_LABELS: dict[str, tuple[str, str]] = {
    "fastsim": ("CLICdet-like", "Fast simulation"),
    "full": ("CLIC", "Full simulation"),
}
UNKNOWN_SOURCE_LABEL = ("CLIC", "Simulation")
_figure_source: ContextVar[tuple[str, str]] = ContextVar("figure_source", default=UNKNOWN_SOURCE_LABEL)


def source_label(event_source: dict[str, Any] | None) -> tuple[str, str]:
    """(experiment, sub-label) for events from `event_source`; the generic label when mixed or unknown."""
    kind = (event_source or {}).get("simulation")
    return SOURCE_LABELS.get(kind, UNKNOWN_SOURCE_LABEL) if isinstance(kind, str) else UNKNOWN_SOURCE_LABEL


@contextlib.contextmanager
def labelled_with(event_source: dict[str, Any] | None) -> Iterator[None]:
    """Figures drawn inside this block carry the label of `event_source`."""
    token = _figure_source.set(source_label(event_source))
    try:
        yield
    finally:
        _figure_source.reset(token)


@cache
def use_style() -> None:
    """Activate the mplhep style once per process."""
    hep.style.use("CMS")


def sample_label(sample: str) -> str:
    return SAMPLE_LABELS.get(sample, sample)


def decorate(ax: Any, sample: str | None = None, extra: str | None = None) -> None:
    """Experiment label (the events' simulation, `labelled_with`; 380 GeV) and the sample/process text."""
    experiment, sublabel = _figure_source.get()
    hep.label.exp_label(exp=experiment, llabel=sublabel, rlabel="380 GeV", ax=ax)
    lines = [text for text in (sample_label(sample) if sample else None, extra) if text]
    if lines:
        ax.text(0.03, 0.96, "\n".join(lines), transform=ax.transAxes, va="top", ha="left", fontsize=16)


def new_figure(ratio: bool = False, figsize: tuple[float, float] = (10, 9)) -> tuple[Any, Any, Any]:
    """A figure with one main axis, and optionally a ratio panel below sharing x. Returns (fig, ax, rax)."""
    use_style()
    if ratio:
        fig, (ax, rax) = plt.subplots(
            2, 1, figsize=figsize, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
        )
        return fig, ax, rax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax, None


def save(fig: Any, directory: Path, name: str) -> list[Path]:
    """Write `name`.png and `name`.pdf into `directory` and close the figure."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.png", directory / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(
        paths[1], bbox_inches="tight", metadata={"Creator": None, "Producer": None, "CreationDate": None}
    )
    plt.close(fig)
    return paths
