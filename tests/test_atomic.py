from __future__ import annotations

import pytest

from mlpf.atomic import atomic_directory, atomic_output, write_text_atomic


def test_atomic_output_appears_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".json"  # writers that infer the format from the suffix still work
        tmp.write_text("{}")
        assert not target.exists()
    assert target.read_text() == "{}"


def test_failed_block_leaves_nothing(tmp_path):
    target = tmp_path / "out.root"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_replaces_old_content(tmp_path):
    target = tmp_path / "plots"
    target.mkdir()
    (target / "stale.png").write_bytes(b"old")
    with atomic_directory(target) as tmp:
        (tmp / "new.png").write_bytes(b"new")
    assert sorted(p.name for p in target.iterdir()) == ["new.png"]
    with pytest.raises(ValueError), atomic_directory(target) as tmp:
        (tmp / "half.png").write_bytes(b"x")
        raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["new.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["plots"]


def test_write_text_atomic(tmp_path):
    write_text_atomic(tmp_path / "a.md", "hello")
    assert (tmp_path / "a.md").read_text() == "hello"
