from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import tempfile

import pytest

from mlpf.atomic import atomic_directory, atomic_output, check_writable, write_text_atomic
from mlpf.errors import OutputError


def test_atomic_output_appears_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".json"  # writers that infer the format from the suffix still work
        tmp.write_text("{}")
        assert not target.exists()
    assert target.read_text() == "{}"


class _Killed(Exception):
    """Stands for whatever stops a writer midway (an exception, a signal turned into one)."""


def _write_then_fail(context, name: str) -> None:
    with context as tmp:
        (tmp / name if tmp.is_dir() else tmp).write_bytes(b"partial")
        raise _Killed


def test_failed_block_leaves_nothing(tmp_path):
    target = tmp_path / "out.root"
    with pytest.raises(_Killed):
        _write_then_fail(atomic_output(target), "out.root")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_replaces_old_content(tmp_path):
    target = tmp_path / "plots"
    target.mkdir()
    (target / "stale.png").write_bytes(b"old")
    with atomic_directory(target) as tmp:
        (tmp / "new.png").write_bytes(b"new")
    assert sorted(p.name for p in target.iterdir()) == ["new.png"]
    with pytest.raises(_Killed):
        _write_then_fail(atomic_directory(target), "half.png")
    assert sorted(p.name for p in target.iterdir()) == ["new.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["plots"]


def test_write_text_atomic(tmp_path):
    write_text_atomic(tmp_path / "a.md", "hello")
    assert (tmp_path / "a.md").read_text() == "hello"


def test_outputs_get_umask_permissions_not_private_ones(tmp_path):
    # mkstemp/mkdtemp create 0600/0700; results on a shared filesystem must stay readable by the group.
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
        with atomic_directory(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_a_killed_writers_temporary_is_removed_by_the_next_writer_of_that_output(tmp_path):
    # SIGKILL (out of memory, a wall-time kill) gives the writer no chance to clean up after itself.
    target = tmp_path / "last.pt"
    code = (
        "import os, signal\n"
        "from mlpf.atomic import atomic_output\n"
        f"with atomic_output({str(target)!r}) as tmp:\n"
        "    tmp.write_bytes(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code], check=False)
    assert killed.returncode == -signal.SIGKILL
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".last.pt.")
    other = tmp_path / ".last.pt.bak.tmp.pt"  # not a temporary of this output's naming: never touched
    other.write_text("keep")
    write_text_atomic(target, "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".last.pt.bak.tmp.pt", "last.pt"]


def test_a_live_writers_temporary_is_kept(tmp_path):
    target = tmp_path / "out.parquet"
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".out.parquet.{writer.pid}-abc12345.tmp.parquet"
        dead = tmp_path / ".out.parquet.x1y2z3ab.tmp.parquet"  # the older name scheme, without a pid
        live.write_bytes(b"being written")
        dead.write_bytes(b"left over")
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"done")
        assert live.exists()
        assert not dead.exists()
    finally:
        writer.kill()
        writer.wait()


def test_a_killed_directory_writers_temporary_is_removed(tmp_path):
    stale = tmp_path / ".plots.999999999-abcdefgh.tmp"  # no such pid
    (stale / "ttbar").mkdir(parents=True)
    with atomic_directory(tmp_path / "plots") as tmp:
        (tmp / "a.png").write_bytes(b"png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"]


def _fill_disk(target):
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"partial")
        # as pyarrow reports it: the errno and a message that names no file
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")


def test_a_write_failure_is_an_output_error_naming_the_output_and_leaves_nothing(tmp_path):
    with pytest.raises(OutputError, match=r"out\.parquet: cannot write \(No space left on device\)"):
        _fill_disk(tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == []


def _read_while_writing(target, source):
    with atomic_output(target):
        source.read_text()


def test_an_oserror_about_another_file_is_not_blamed_on_the_output(tmp_path):
    with pytest.raises(FileNotFoundError):
        _read_while_writing(tmp_path / "out.json", tmp_path / "missing-input.json")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_no_file_output(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        write_text_atomic(tmp_path / "out.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.parametrize(
    ("make", "kind", "message"),
    [
        (lambda p: p.mkdir(), "file", "is a directory"),
        (lambda p: p.write_text("x"), "directory", "exists and is not a directory"),
        (lambda p: p.write_text("x"), "files-inside", "exists and is not a directory"),
        (lambda p: p.parent.rmdir() or p.parent.write_text("x"), "file", "is not a directory"),
    ],
)
def test_check_writable_refuses_before_any_work(tmp_path, make, kind, message):
    path = tmp_path / "sub" / "out"
    path.parent.mkdir()
    make(path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(OutputError, match=message):
        check_writable(path, kind)
    assert sorted(tmp_path.rglob("*")) == before


def test_check_writable_accepts_new_paths_and_creates_nothing(tmp_path):
    for kind in ("file", "directory", "files-inside"):
        check_writable(tmp_path / "a" / "b" / "out", kind)
    assert list(tmp_path.iterdir()) == []


def test_check_writable_probes_the_filesystem(tmp_path, monkeypatch):
    # mode bits do not show a read-only filesystem (and root ignores them): the probe must create a file
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(OutputError, match=r"cannot write in .* \(Read-only file system\)"):
        check_writable(tmp_path / "out.parquet")
