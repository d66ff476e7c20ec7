from __future__ import annotations

import os
import stat

import pytest

from mlpf.atomic import atomic_directory, atomic_output, write_text_atomic


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
