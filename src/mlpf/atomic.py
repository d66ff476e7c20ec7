"""Outputs that appear only when complete, and output failures as one-line errors.

Every stage writes to a temporary name in the destination directory and renames it into place at the end;
`os.replace` is atomic on one filesystem, so a killed job never leaves a file that looks finished. A temporary
is named `.<name>.<pid>-<random>.tmp<suffix>`: a job killed outright (SIGKILL, out of memory, a wall-time kill)
cannot remove its own, so the next writer of the same output removes the ones whose process is gone.

A failure to write (a full or read-only filesystem, a directory where a file should go, no permission) raises
`OutputError`, whose message names the output and the cause; `check_writable` finds most of them before a stage
starts its work, so that a long job does not fail only at its last step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from mlpf.errors import OutputError

log = logging.getLogger(__name__)

# What an output argument names: a file, a directory replaced as a whole, or a directory that receives files.
OutputKind = Literal["file", "directory", "files-inside"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(exc: OSError) -> str:
    """The cause of an OSError in a few words ("No space left on device"), whatever library raised it."""
    if exc.errno:
        return os.strerror(exc.errno)
    return " ".join(str(exc).split()) or type(exc).__name__


def output_error(path: str | Path, exc: OSError) -> OutputError:
    """The one-line error for a failure to write `path`."""
    return OutputError(f"cannot write ({_reason(exc)})", path=path)


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | Path, kind: OutputKind = "file") -> None:
    """Raise OutputError now if `path` could not be written later; creates nothing.

    A file must not be an existing directory, a directory must not be an existing file, and the nearest
    existing directory on the way must accept a new file (probed with a nameless temporary file, which catches
    read-only filesystems and missing permissions that mode bits do not show, e.g. for root).
    """
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise OutputError("is a directory, not a file name", path=path)
    if kind != "file" and path.exists() and not path.is_dir():
        raise OutputError("exists and is not a directory", path=path)
    where = _nearest_existing(path if kind == "files-inside" else path.parent)
    if not where.is_dir():
        raise OutputError(f"cannot be created: {where} is not a directory", path=path)
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write in {where} ({_reason(exc)})", path=path) from None


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}-"


def _writer_is_gone(pid_text: str | None) -> bool:
    """Whether the process that made a temporary has ended (no pid: an older name scheme, so long gone)."""
    if pid_text is None:
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def remove_stale_temporaries(path: Path, suffix: str) -> list[Path]:
    """Remove temporaries of `path` whose writer has ended; returns what was removed.

    Only one job writes a given output at a time (Snakemake locks its outputs), so a temporary of the same
    output whose process no longer exists on this host is a leftover of a killed job. A writer alive on
    another host of a shared filesystem cannot be seen; two jobs writing one output at once is not supported.
    """
    # mkstemp/mkdtemp add 8 random characters from [a-z0-9_]; older temporaries have no pid before them
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)-)?[a-z0-9_]{{8}}{re.escape(suffix)}")
    removed = []
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            if match is None or not _writer_is_gone(match.group(1)):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            log.info("removed %s, left by an interrupted writer of %s", entry, path)
            removed.append(entry)
    return removed


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from None


def _is_about(exc: OSError, *paths: Path) -> bool:
    """Whether an OSError raised while writing concerns the output (its temporary, or no file named at all)."""
    named = [Path(f).absolute() for f in (exc.filename, exc.filename2) if f is not None]
    if not named:
        return True
    ours = [p.absolute() for p in paths]
    return any(n == p or p in n.parents for n in named for p in ours)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it onto `path` only if the block succeeds.

    The temporary keeps the suffix of `path` so that writers which infer the format from the file name
    (uproot, pyarrow, matplotlib) behave as they would for the final name. An OSError of the writer becomes
    OutputError naming `path`; nothing is left behind.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError("is a directory, not a file name", path=path)
    _make_parent(path)
    suffix = f".tmp{path.suffix}"
    remove_stale_temporaries(path, suffix)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the output the permissions a plain open() would (0666 minus the umask),
    # so results stay readable by collaborators on a shared cluster filesystem.
    tmp.chmod(0o666 & ~_current_umask())
    try:
        yield tmp
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if _is_about(exc, path, tmp):
            raise output_error(path, exc) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError("exists and is not a directory", path=path)
    _make_parent(path)
    remove_stale_temporaries(path, ".tmp")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise output_error(path, exc) from None
    tmp.chmod(0o777 & ~_current_umask())  # mkdtemp creates 0700
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.replace(path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_about(exc, path, tmp):
            raise output_error(path, exc) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a small text file (JSON, Markdown) atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
