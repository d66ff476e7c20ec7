from __future__ import annotations

import json

import pytest

from mlpf.errors import InputFileError
from mlpf.evaluate.paper import FIGURES, build_manifest, write_manifest


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


@pytest.fixture
def plots(tmp_path):
    root = tmp_path / "plots"
    for sample in ("ttbar", "gun_pi"):
        for name in ("jet_response", "met_response", "jet_response_vs_pt"):
            _touch(root / sample / f"{name}.png")
            _touch(root / sample / f"{name}.pdf")
    _touch(root / "gun_pi" / "eff_fake_charged_hadron.png")
    _touch(root / "gun_pi" / "eff_fake_neutral_hadron.png")
    _touch(root / "training" / "loss.png")
    _touch(root / "summary" / "resolution_summary.png")
    return root


def test_manifest_maps_each_figure_kind_to_its_files(plots, tmp_path):
    metrics = tmp_path / "ttbar.json"
    metrics.write_text(json.dumps({"sample": "ttbar"}))
    manifest = build_manifest(plots, [metrics], {"seed": 3})
    by_key = {entry["figure"]: entry for entry in manifest["figures"]}
    assert set(by_key) == {figure.key for figure in FIGURES}
    jets = by_key["jet_response"]["files"]
    assert set(jets) == {"ttbar", "gun_pi"}
    assert str(plots / "ttbar" / "jet_response.pdf") in jets["ttbar"]
    efficiency = by_key["particle_efficiency"]["files"]
    assert list(efficiency) == ["gun_pi"]
    assert len(efficiency["gun_pi"]) == 2
    assert by_key["training_curves"]["files"] == {"training": [str(plots / "training" / "loss.png")]}
    # a figure kind this run did not make is listed as such, not silently dropped
    assert by_key["timing_scaling"]["produced"] is False
    assert manifest["metrics"] == {"ttbar": str(metrics)}
    assert manifest["provenance"]["settings"] == {"seed": 3}


def test_write_manifest_writes_json_and_markdown(plots, tmp_path):
    out = tmp_path / "paper"
    write_manifest(plots, [], {}, out, model_card="results/models/mlpf/model_card.md")
    assert (
        json.loads((out / "manifest.json").read_text())["model_card"] == "results/models/mlpf/model_card.md"
    )
    text = (out / "manifest.md").read_text()
    assert "| training_curves | Fig. 3 |" in text
    assert "not produced by this configuration" in text  # timing


def test_missing_plots_directory_is_a_clear_error(tmp_path):
    with pytest.raises(InputFileError, match="plots directory not found"):
        build_manifest(tmp_path / "nowhere", [], {})
