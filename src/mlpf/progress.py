"""Progress bars for long stages.

On a terminal the bar redraws often; in a log file (Snakemake redirects stderr) it prints a line at most every
30 seconds so logs stay readable but still show that a long job is alive.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap an iterable in a progress bar written to stderr."""
    interactive = sys.stderr.isatty()
    yield from tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        mininterval=0.2 if interactive else 30.0,
        dynamic_ncols=interactive,
        ascii=not interactive,
    )


def progress_bar(desc: str, total: int | None = None, unit: str = "it") -> tqdm:
    """A manually updated bar (`bar.update(n)`), e.g. for training steps or downloaded bytes."""
    interactive = sys.stderr.isatty()
    return tqdm(
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        mininterval=0.2 if interactive else 30.0,
        dynamic_ncols=interactive,
        ascii=not interactive,
    )
