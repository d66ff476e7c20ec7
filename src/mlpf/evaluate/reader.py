"""Reading the prediction files written by `mlpf infer` (docs/contracts.md, section 4)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

from mlpf.data.parquet import reading
from mlpf.data.targets import N_PARTICLE_COLUMNS
from mlpf.errors import InputFileError

# Fields the evaluation reads; `ypred_proba` is not needed for the physics metrics.
REQUIRED_FIELDS: tuple[str, ...] = ("X", "ytarget", "ycand", "ypred", "truth", "genmet")
TRUTH_FIELDS: tuple[str, ...] = ("pt", "eta", "phi", "energy")


def read_predictions(path: str | Path) -> ak.Array:
    """Read one predictions parquet file with the fields the evaluation needs.

    Raises InputFileError (one line, naming the file) if the file is missing, unreadable or lacks a field.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError("predictions file does not exist", path=path)
    with reading(path):
        form = ak.metadata_from_parquet(path)["form"]
    fields = set(getattr(form, "fields", []) or [])
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise InputFileError(
            f"missing field(s) {', '.join(missing)} (see docs/contracts.md section 4)", path=path
        )
    events = ak.from_parquet(path, columns=list(REQUIRED_FIELDS))
    for name in ("ytarget", "ycand", "ypred"):
        _check_width(events[name], N_PARTICLE_COLUMNS, name, path)
    truth_fields = set(events["truth"].fields)
    if not set(TRUTH_FIELDS) <= truth_fields:
        lacking = ", ".join(sorted(set(TRUTH_FIELDS) - truth_fields))
        raise InputFileError(f"field truth lacks {lacking}", path=path)
    return events


def _check_width(array: ak.Array, width: int, name: str, path: Path) -> None:
    """Each particle row must have `width` columns (regular or jagged inner lists)."""
    flat = ak.flatten(array, axis=1)
    if len(flat) == 0:
        return
    counts = ak.num(flat, axis=1)
    if not np.all(ak.to_numpy(counts) == width):
        raise InputFileError(f"field {name} must have {width} columns per row", path=path)
