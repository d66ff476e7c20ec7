"""User-facing errors.

Anything a user can cause (a bad file, a missing collection, a wrong config key) raises `MlpfError` with a
one-line message that names the file and the problem. The CLI prints that line and exits with status 2
instead of showing a traceback; programming errors still raise normally so they stay debuggable.
"""

from __future__ import annotations

from pathlib import Path


class MlpfError(Exception):
    """An error caused by input the user controls; its message is shown as one line."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class ConfigError(MlpfError):
    """The configuration does not match the schema."""


class InputFileError(MlpfError):
    """An input file is unreadable, corrupt, or lacks something the stage needs."""


class OutputError(MlpfError):
    """An output cannot be written: a read-only or full filesystem, a directory in the way, no permission."""
