"""`mlpf view-figures`: `results/plots`, the main target, as the view of the configured model's figures.

Every model's figures are kept under `results/figures/<model>/` (written by `mlpf plots`; docs/outputs.md), so
the runs of different configurations keep theirs side by side. `results/plots` shows the figures of the model
of the configuration that made it: the same files (hard links where the filesystem allows, copies otherwise)
and an `index.md` naming the model, the events and the dataset they are of. The view is built in a temporary
directory and renamed into place (mlpf.atomic), so a run of another configuration replaces it as a whole; the
figures themselves are never written here. A hard link shares the file and not the name: `mlpf plots`
replaces its directory by a new one, so rewriting a model's figures leaves an existing view as it was.

Hidden files are not part of the view. Snakemake keeps the time of a directory output in its
`.snakemake_timestamp` and touches it when the job ends: linked, the view's timestamp would be the figures' own,
and making the view would mark the figures as newer than everything made from them.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlpf.atomic import atomic_directory
from mlpf.errors import InputFileError

log = logging.getLogger(__name__)

INDEX = "index.md"
# Where every model's figures are kept, as the index names it (the workflow's layout, docs/outputs.md).
FIGURES_ROOT = "results/figures"


@dataclass(frozen=True)
class ViewOf:
    """What the figures of a view are of: the model, and the events and dataset it was trained on."""

    model: str
    events: str
    dataset: str


def link_or_copy(source: Path, target: Path) -> bool:
    """Hard-link `source` as `target`, or copy it where a link cannot be made; True when linked."""
    try:
        os.link(source, target)
    except OSError:  # another filesystem, no hard links there, or not permitted
        shutil.copy2(source, target)
        return False
    return True


def _shown(figures: Path) -> list[Path]:
    """What the view holds of `figures`: every file and folder below it, hidden ones (and what is in them) aside."""
    return [
        p
        for p in sorted(figures.rglob("*"))
        if not any(part.startswith(".") for part in p.relative_to(figures).parts)
    ]


def _groups(figures: Path) -> list[tuple[str, int]]:
    """Each folder of the figures (a sample, `training`, `summary`, `timing`) and its number of PNG figures."""
    folders = [d for d in sorted(figures.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    return [(d.name, len(list(d.glob("*.png")))) for d in folders]


def index_markdown(figures: str | Path, of: ViewOf, groups: list[tuple[str, int]]) -> str:
    """The view's `index.md`: which model, events and dataset the figures are of, and where all figures live."""
    about = (
        f"This directory shows the figures of the model `{of.model}`, trained on the dataset `{of.dataset}` of "
        f"the events `{of.events}` (`results/datasets/{of.events}/{of.dataset}/`) and evaluated on their held-out "
        f"shards. They are the files of `{Path(figures).as_posix()}/` (hard links, or copies where links cannot "
        "be made), put here by `snakemake --cores all results/plots` for the configuration that names this model."
    )
    kept = (
        f"Every model's figures are kept under `{FIGURES_ROOT}/{{model}}/`, side by side: running another "
        "configuration replaces this view with its own model's figures and leaves those of every model in "
        f"`{FIGURES_ROOT}/` as they are."
    )
    lines = [
        f"# Figures of the model `{of.model}`",
        "",
        about,
        "",
        kept,
        "",
        "| folder | figures (PNG, each with its PDF) |",
        "|---|---|",
        *(f"| `{name}/` | {count} |" for name, count in groups),
        "",
        "What each figure shows: docs/evaluation.md.",
    ]
    return "\n".join(lines) + "\n"


def make_view(figures: str | Path, output: str | Path, of: ViewOf) -> dict[str, int]:
    """Make `output` the view of the figures directory `figures`: its files and an index; atomic.

    Returns the number of files linked and copied.
    """
    figures = Path(figures)
    if not figures.is_dir():
        raise InputFileError("figures directory not found (run `mlpf plots` first)", path=figures)
    if (figures / INDEX).exists():
        raise InputFileError(f"holds a file named {INDEX}, the name of the view's index", path=figures)
    counts = {"linked": 0, "copied": 0}
    with atomic_directory(output) as tmp:
        for source in _shown(figures):
            target = tmp / source.relative_to(figures)
            if source.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            counts["linked" if link_or_copy(source, target) else "copied"] += 1
        (tmp / INDEX).write_text(index_markdown(figures, of, _groups(figures)), encoding="utf-8")
    log.info(
        "%s: the figures of model %s (%s), %d files linked, %d copied",
        output,
        of.model,
        figures,
        counts["linked"],
        counts["copied"],
    )
    return counts
