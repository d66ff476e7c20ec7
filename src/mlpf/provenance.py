"""What made an output: the package version, the settings and the inputs, recorded in every file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mlpf import __version__


def provenance(settings: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A JSON-serialisable record of the producing version and settings.

    Deliberately free of timestamps and host names so that the same config gives the same bytes.
    """
    record: dict[str, Any] = {"mlpf_version": __version__}
    if settings is not None:
        record["settings"] = settings
    record.update(extra)
    return record


def merge_records(records: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """One record standing for several (e.g. the events of several shards): a key whose values all agree keeps
    its value, a key whose values differ lists the distinct values (sorted by their JSON text)."""
    present = [r for r in records if r]
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for r in present for k in r):
        values = [r.get(key) for r in present]
        distinct = {json.dumps(v, sort_keys=True, default=str): v for v in values}
        merged[key] = values[0] if len(distinct) == 1 else [distinct[k] for k in sorted(distinct)]
    return merged
