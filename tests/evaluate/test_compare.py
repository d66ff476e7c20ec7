"""`mlpf compare`: two models' metrics of the same events and the baseline PF side by side."""

from __future__ import annotations

import json

import pytest

from mlpf.cli import main
from mlpf.data.targets import CLASS_NAMES
from mlpf.evaluate.compare import compare_sample, markdown


def _metrics(
    sample: str, mlpf_iqr: float, pf_iqr: float = 0.05, n_events: int = 40, eff: float = 0.9
) -> dict:
    def response(iqr: float) -> dict:
        return {"median": 1.0, "median_err": 0.01, "iqr_over_median": iqr, "iqr_over_median_err": 0.005,
                "matched_fraction": 0.95}  # fmt: skip

    classes = {name: {"efficiency": eff, "fake_rate": 0.1, "n_target": 10} for name in CLASS_NAMES[1:]}
    return {
        "sample": sample,
        "model": "m",
        "event_source": {"events": "fastsim_hits", "sample": sample, "master_seed": 42},
        "n_events": n_events,
        "jets": {"n_gen_jets": 4 * n_events},
        "jet_response": {"mlpf": response(mlpf_iqr), "pf": response(pf_iqr)},
        "met_response": {"mlpf": response(2 * mlpf_iqr), "pf": response(2 * pf_iqr)},
        "per_class": {"mlpf": classes, "pf": classes},
    }


def test_three_reconstructions_and_four_element_metrics():
    s = compare_sample(_metrics("ttbar", 0.08), _metrics("ttbar", 0.06), ("hits", "clusters"))
    assert list(s["jets"]) == ["MLPF (hits)", "MLPF (clusters)", "PF"]
    assert s["jets"]["MLPF (hits)"]["iqr_over_median"] == 0.08
    assert s["jets"]["MLPF (clusters)"]["iqr_over_median"] == 0.06
    assert s["MET"]["PF"]["iqr_over_median"] == 0.1
    assert list(s["per_class"]) == ["MLPF on hits", "PF on hits", "MLPF on clusters", "PF on clusters"]
    assert all(s["checks"].values())
    assert "| MLPF (hits) |" in markdown({"samples": {"ttbar": s}})


def test_other_events_fail_the_checks():
    other = _metrics("ttbar", 0.06, pf_iqr=0.07, n_events=39)
    s = compare_sample(_metrics("ttbar", 0.08), other, ("hits", "clusters"))
    assert not s["checks"]["same_events"]
    assert not s["checks"]["same_pf_jets"]
    assert "FAILED" in markdown({"samples": {"ttbar": s}})


def test_cli_writes_tables_and_figures(tmp_path):
    paths = {}
    for model, iqr in (("hits", 0.08), ("clusters", 0.06)):
        for sample in ("ttbar", "qq"):
            path = tmp_path / model / f"{sample}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(_metrics(sample, iqr)))
            paths.setdefault(model, []).append(str(path))
    out = tmp_path / "compare"
    rc = main(["compare", "--metrics", *paths["hits"], "--second-metrics", *paths["clusters"],
               "--models", "m_hits", "m_clusters", "--output", str(out)])  # fmt: skip
    assert rc == 0
    data = json.loads((out / "comparison.json").read_text())
    assert data["models"] == {"hits": "m_hits", "clusters": "m_clusters"}
    assert set(data["samples"]) == {"ttbar", "qq"}
    for sample in ("ttbar", "qq"):
        assert (out / sample / "resolution.png").stat().st_size > 0
        assert (out / sample / "per_class.png").stat().st_size > 0
    assert "## ttbar (40 events)" in (out / "comparison.md").read_text()


def test_not_a_metrics_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    rc = main(["compare", "--metrics", str(bad), "--second-metrics", str(bad), "--models", "a", "b",
               "--output", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert "x.json" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("missing", ["ttbar"])
def test_no_common_sample_is_an_error(tmp_path, missing):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_metrics(missing, 0.1)))
    b.write_text(json.dumps(_metrics("qq", 0.1)))
    assert main(["compare", "--metrics", str(a), "--second-metrics", str(b), "--models", "a", "b",
                 "--output", str(tmp_path / "out")]) == 2  # fmt: skip
