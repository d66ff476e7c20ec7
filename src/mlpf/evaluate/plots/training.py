"""Training curves from `history.csv` (columns epoch, train_loss, val_loss, train_loss_<term>,
val_loss_<term>, and optional val_<metric> columns such as val_jet_iqr, val_met_iqr; paper Fig. 3)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from mlpf.errors import InputFileError

from .style import RECO_STYLE, decorate, new_figure, save, use_style


def read_history(path: str | Path) -> pd.DataFrame:
    """Read a training history; it must have an `epoch` column."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(f"cannot read training history ({type(exc).__name__})", path=path) from None
    if "epoch" not in frame.columns:
        raise InputFileError("training history has no 'epoch' column", path=path)
    return frame


def _pretty(term: str) -> str:
    """Column name to panel title: `jet_iqr_over_median` -> `jet IQR / median`."""
    words = term.replace("iqr_over_median", "IQR / median").replace("_", " ").split(" ")
    return " ".join({"met": "MET", "iqr": "IQR", "pt": "pT", "sumpt": "sum pT"}.get(w, w) for w in words)


def _grid(
    frame: pd.DataFrame, epoch: np.ndarray, columns: list[str], label: str, directory: Path, name: str
) -> list[Path]:
    """A grid with one panel per metric against epoch. A column `<metric>_pf` (the baseline PF on the same
    validation events) is drawn in its metric's panel as the PF reference, as in the paper's Fig. 3."""
    use_style()
    panels = [c for c in columns if not (c.endswith("_pf") and c.removesuffix("_pf") in columns)]
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 6 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, panels, strict=False):
        ax.plot(epoch, frame[col].to_numpy(), marker="o", color=RECO_STYLE["mlpf"]["color"], label="MLPF")
        if f"{col}_pf" in columns:
            ax.plot(
                epoch, frame[f"{col}_pf"].to_numpy(), ls="--", color=RECO_STYLE["pf"]["color"], label="PF"
            )
        ax.set_title(_pretty(col.removeprefix("val_")), fontsize=18)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(f"{label} value")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=14)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return save(fig, directory, name)


def plot_history(frame: pd.DataFrame, directory: Path) -> list[Path]:
    """loss (total), loss_terms (one panel per term), val_metrics (other numeric val_ columns) and
    learning_rate (column lr), each as PNG and PDF, for the columns that exist."""
    epoch = frame["epoch"].to_numpy()
    columns = set(frame.columns)
    written = _plot_total_loss(frame, epoch, columns, directory)
    written += _plot_loss_terms(frame, epoch, columns, directory)
    metrics = sorted(c for c in columns if c.startswith("val_") and not c.startswith("val_loss"))
    metrics = [c for c in metrics if np.issubdtype(frame[c].dtype, np.number)]
    if metrics:
        # One panel per metric: they have different scales (IQR/median, efficiencies, ...).
        written += _grid(frame, epoch, metrics, "Validation", directory, "val_metrics")
    if "lr" in columns and np.issubdtype(frame["lr"].dtype, np.number):
        written += _plot_learning_rate(frame, epoch, directory)
    return written


# Training and validation curves of one quantity: column prefix, label, colour.
_SPLITS = (("train_", "Training", "tab:blue"), ("val_", "Validation", "tab:red"))


def _plot_total_loss(
    frame: pd.DataFrame, epoch: np.ndarray, columns: set[str], directory: Path
) -> list[Path]:
    """Total training and validation loss against epoch (nothing if neither column exists)."""
    if not {"train_loss", "val_loss"} & columns:
        return []
    fig, ax, _ = new_figure()
    for prefix, label, color in _SPLITS:
        if prefix + "loss" in columns:
            ax.plot(epoch, frame[prefix + "loss"].to_numpy(), marker="o", color=color, label=label)
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Total loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper right")
    decorate(ax, extra="MLPF training")
    return save(fig, directory, "loss")


def _plot_loss_terms(
    frame: pd.DataFrame, epoch: np.ndarray, columns: set[str], directory: Path
) -> list[Path]:
    """One panel per loss term (training and validation) against epoch (nothing if there are no terms)."""
    terms = sorted(
        {c.removeprefix("train_loss_") for c in columns if c.startswith("train_loss_")}
        | {c.removeprefix("val_loss_") for c in columns if c.startswith("val_loss_")}
    )
    if not terms:
        return []
    use_style()
    ncols = min(len(terms), 3)
    nrows = math.ceil(len(terms) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 6 * nrows), squeeze=False)
    for ax, term in zip(axes.flat, terms, strict=False):
        for prefix, label, color in _SPLITS:
            if f"{prefix}loss_{term}" in columns:
                ax.plot(epoch, frame[f"{prefix}loss_{term}"].to_numpy(), marker="o", color=color, label=label)
        ax.set_title(f"Loss term: {_pretty(term)}", fontsize=18)
        ax.set_xlabel("Epoch")
        ax.set_ylabel("Loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=14)
    for ax in list(axes.flat)[len(terms) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return save(fig, directory, "loss_terms")


def _plot_learning_rate(frame: pd.DataFrame, epoch: np.ndarray, directory: Path) -> list[Path]:
    """The learning rate at the end of each epoch."""
    fig, ax, _ = new_figure()
    ax.plot(epoch, frame["lr"].to_numpy(), marker="o", color="tab:green")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Learning rate (end of epoch)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    decorate(ax, extra="MLPF training")
    return save(fig, directory, "learning_rate")


# Validation curves of the seed-band figures (paper Fig. 3): column, y-axis label.
BAND_PANELS = (
    ("val_loss", "Validation loss"),
    ("val_jet_iqr_over_median", "Jet pT response IQR / median"),
    ("val_met_iqr_over_median", "MET response IQR / median"),
)
BAND_COLORS = ("tab:orange", "tab:purple", "tab:green", "tab:brown")


def epoch_mean_std(frames: list[pd.DataFrame], column: str) -> pd.DataFrame:
    """Per epoch: mean and standard deviation (ddof 1; 0 for one training) of `column` over the trainings
    that have it, with their count `n`."""
    values = pd.concat(
        [f[["epoch", column]] for f in frames if column in f.columns], ignore_index=True
    ).dropna()
    grouped = values.groupby("epoch")[column]
    stats = pd.DataFrame(
        {"mean": grouped.mean(), "std": grouped.std(ddof=1).fillna(0.0), "n": grouped.size()}
    )
    return stats.reset_index()


def plot_seed_bands(groups: dict[str, list[pd.DataFrame]], directory: Path, name: str) -> list[Path]:
    """Validation loss, jet and MET IQR/median per epoch: for each group of trainings (e.g. seeds of the
    default and of the tuned hyperparameters) the mean with a +- 1 standard deviation band, and the baseline
    PF on the same validation events as a dashed line."""
    use_style()
    fig, axes = plt.subplots(1, len(BAND_PANELS), figsize=(7 * len(BAND_PANELS), 6), squeeze=False)
    all_frames = [f for frames in groups.values() for f in frames]
    for ax, (column, label) in zip(axes.flat, BAND_PANELS, strict=True):
        for (group, frames), color in zip(groups.items(), BAND_COLORS, strict=False):
            if not any(column in f.columns for f in frames):
                continue
            stats = epoch_mean_std(frames, column)
            epoch, mean, std = stats["epoch"].to_numpy(), stats["mean"].to_numpy(), stats["std"].to_numpy()
            # error bars as well as the band: a band of a single epoch would not show
            ax.errorbar(
                epoch,
                mean,
                yerr=std,
                marker="o",
                capsize=3,
                color=color,
                label=f"{group} ({len(frames)} seeds)",
            )
            ax.fill_between(epoch, mean - std, mean + std, color=color, alpha=0.25, linewidth=0)
        if any(f"{column}_pf" in f.columns for f in all_frames):
            pf = epoch_mean_std(all_frames, f"{column}_pf")
            ax.plot(pf["epoch"], pf["mean"], ls="--", marker="x", color="tab:blue", label="PF")
        epochs = pd.concat([f["epoch"] for f in all_frames])
        ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        # every epoch as a tick while there are few (the integer locator falls back to fractions below 2)
        ticks = sorted(set(epochs.tolist()))
        if len(ticks) <= 12:
            ax.set_xticks(ticks)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=13)
    fig.tight_layout()
    return save(fig, directory, name)
