"""results/plots as the view of one model's figures (mlpf.evaluate.view, `mlpf view-figures`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpf.cli import main
from mlpf.errors import InputFileError, OutputError
from mlpf.evaluate import view
from mlpf.evaluate.view import INDEX, ViewOf, make_view


def _figures(root: Path, model: str) -> Path:
    figures = root / "results" / "figures" / model
    for group, names in {"ttbar": ("jet_response", "met_response"), "training": ("loss",)}.items():
        (figures / group).mkdir(parents=True)
        for name in names:
            for suffix in (".png", ".pdf"):
                (figures / group / f"{name}{suffix}").write_bytes(f"{model} {group} {name}".encode())
    return figures


def test_the_view_is_the_figures_with_an_index_naming_the_model(tmp_path: Path) -> None:
    figures = _figures(tmp_path, "mlpf")
    out = tmp_path / "results" / "plots"
    counts = make_view(figures, out, ViewOf("mlpf", "fastsim", "clusters"))
    shown = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    kept = sorted(str(p.relative_to(figures)) for p in figures.rglob("*") if p.is_file())
    assert shown == sorted([*kept, INDEX])
    assert counts == {"linked": len(kept), "copied": 0}
    for name in kept:  # the same files, not new ones
        assert (out / name).samefile(figures / name)
    index = (out / INDEX).read_text()
    assert "# Figures of the model `mlpf`" in index
    assert "the dataset `clusters` of the events `fastsim`" in index
    assert "results/figures/{model}/" in index
    assert f"`{figures.as_posix()}/`" in index
    assert "| `ttbar/` | 2 |" in index
    assert not list(tmp_path.rglob("*.tmp"))


def test_another_configuration_replaces_the_view_and_keeps_the_figures(tmp_path: Path) -> None:
    first, second = _figures(tmp_path, "mlpf"), _figures(tmp_path, "mlpf_hits")
    out = tmp_path / "results" / "plots"
    make_view(first, out, ViewOf("mlpf", "fastsim", "clusters"))
    (out / "stale.png").write_bytes(b"left in the view")
    make_view(second, out, ViewOf("mlpf_hits", "fastsim_hits", "hits"))
    assert (out / "ttbar" / "jet_response.png").read_bytes() == b"mlpf_hits ttbar jet_response"
    assert not (out / "stale.png").exists()  # the view is replaced as a whole
    assert "`mlpf_hits`" in (out / INDEX).read_text()
    # both models' figures stay where they are kept, unchanged
    assert (first / "ttbar" / "jet_response.png").read_bytes() == b"mlpf ttbar jet_response"
    assert (second / "ttbar" / "jet_response.png").read_bytes() == b"mlpf_hits ttbar jet_response"
    assert not (first / INDEX).exists()
    assert not (second / INDEX).exists()


def test_hidden_files_such_as_snakemakes_timestamp_stay_out_of_the_view(tmp_path: Path) -> None:
    # Snakemake touches <directory output>/.snakemake_timestamp when a job ends: a linked one would make the
    # figures look newer than the model card and the paper manifest made from them
    figures = _figures(tmp_path, "mlpf")
    (figures / ".snakemake_timestamp").write_text("")
    (figures / ".stale.tmp").mkdir()
    (figures / ".stale.tmp" / "x.png").write_bytes(b"")
    out = tmp_path / "results" / "plots"
    counts = make_view(figures, out, ViewOf("mlpf", "fastsim", "clusters"))
    assert counts == {"linked": 6, "copied": 0}
    assert not (out / ".snakemake_timestamp").exists()
    assert not (out / ".stale.tmp").exists()
    assert ".stale.tmp" not in (out / INDEX).read_text()


def test_files_are_copied_where_they_cannot_be_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(view.os, "link", no_links)
    figures = _figures(tmp_path, "mlpf")
    out = tmp_path / "plots"
    counts = make_view(figures, out, ViewOf("mlpf", "fastsim", "clusters"))
    assert counts == {"linked": 0, "copied": 6}
    copy = out / "ttbar" / "jet_response.png"
    assert copy.read_bytes() == (figures / "ttbar" / "jet_response.png").read_bytes()
    assert not copy.samefile(figures / "ttbar" / "jet_response.png")


def test_a_failed_view_leaves_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures = _figures(tmp_path, "mlpf")
    out = tmp_path / "plots"
    make_view(figures, out, ViewOf("mlpf", "fastsim", "clusters"))
    before = sorted(p.name for p in out.iterdir())

    def fail(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(view.os, "link", fail)
    monkeypatch.setattr(view.shutil, "copy2", fail)
    with pytest.raises(OutputError, match="No space left on device"):
        make_view(figures, out, ViewOf("other", "fastsim", "clusters"))
    assert sorted(p.name for p in out.iterdir()) == before
    assert "`mlpf`" in (out / INDEX).read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_missing_figures_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="figures directory not found"):
        make_view(tmp_path / "nothing", tmp_path / "plots", ViewOf("mlpf", "fastsim", "clusters"))
    assert not (tmp_path / "plots").exists()


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    figures = _figures(tmp_path, "ci")
    out = tmp_path / "plots"
    argv = ["view-figures", "--figures", str(figures), "--model", "ci", "--events", "fastsim"]
    assert main([*argv, "--dataset", "clusters", "--output", str(out)]) == 0
    assert "`ci`" in (out / INDEX).read_text()
    # no figures: one line naming them, exit 2, the view as it was
    missing = tmp_path / "results" / "figures" / "other"
    argv = ["view-figures", "--figures", str(missing), "--model", "other", "--events", "fastsim"]
    capsys.readouterr()
    assert main([*argv, "--dataset", "clusters", "--output", str(out)]) == 2
    assert (
        capsys.readouterr().err
        == f"mlpf view-figures: error: {missing}: figures directory not found (run `mlpf plots` first)\n"
    )
    assert "`ci`" in (out / INDEX).read_text()
