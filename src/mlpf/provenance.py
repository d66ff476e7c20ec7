"""What made an output: the package version, the settings and the inputs, recorded in every file."""

from __future__ import annotations

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
