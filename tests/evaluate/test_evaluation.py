"""`mlpf evaluate` end to end on synthetic predictions, checked against an independent computation."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from evaluate_cli import run_evaluate

from mlpf.config import validate_section
from mlpf.errors import ConfigError
from mlpf.evaluate.evaluation import check_settings, evaluate_events, read_responses

SETTINGS = {"jets": {"radius": 0.4, "min_pt": 5.0, "match_dr": 0.1}, "bootstrap": 20}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, predictions_file: Path) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("evaluated")
    metrics_path, responses_path = out / "metrics" / "ttbar.json", out / "eval" / "ttbar.parquet"
    rc = run_evaluate(predictions_file, metrics_path, responses_path, model="m1", settings=SETTINGS)
    assert rc == 0
    return json.loads(metrics_path.read_text(), parse_constant=_reject), responses_path


def _reject(name: str) -> None:
    raise AssertionError(f"metrics JSON contains {name}")


def test_metrics_have_the_contract_keys(evaluated: tuple[dict, Path], synthetic_events: ak.Array) -> None:
    metrics, _ = evaluated
    assert metrics["n_events"] == len(synthetic_events)
    assert (metrics["sample"], metrics["model"]) == ("ttbar", "m1")
    for reco in ("mlpf", "pf"):
        jet = metrics["jet_response"][reco]
        for key in (
            "median",
            "iqr",
            "iqr_over_median",
            "n_matched",
            "matched_fraction",
            "median_err",
            "iqr_err",
        ):
            assert isinstance(jet[key], int | float), key
        assert 0.9 < jet["matched_fraction"] <= 1.0
        for key in ("median", "iqr", "iqr_over_median"):
            assert isinstance(metrics["met_response"][reco][key], float)
        assert len(jet["binned"]["median"]) == len(jet["binned"]["edges"]) - 1
    assert metrics["provenance"]["settings"]["jets"]["radius"] == 0.4


def test_mlpf_beats_pf_where_the_synthetic_smearing_says_so(evaluated: tuple[dict, Path]) -> None:
    metrics, _ = evaluated
    # Synthetic MLPF smears particle pT by 5%, PF by 10%: every width must be narrower for MLPF.
    for key in ("jet_response", "met_response", "momentum_response"):
        assert metrics[key]["mlpf"]["iqr"] < metrics[key]["pf"]["iqr"], key
    # Target particles are the truth particles themselves: response exactly 1.
    assert metrics["jet_response"]["target"]["median"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["jet_response"]["target"]["iqr"] == pytest.approx(0.0, abs=1e-5)
    # Class efficiencies: a mislabelled element gets a random class (1/6 of them the right one).
    assert metrics["per_class"]["mlpf"]["charged_hadron"]["efficiency"] == pytest.approx(
        1 - 0.05 * 5 / 6, abs=0.02
    )
    assert metrics["per_class"]["pf"]["charged_hadron"]["efficiency"] == pytest.approx(
        1 - 0.10 * 5 / 6, abs=0.02
    )


def _independent_jets(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray
) -> list[tuple[float, float, float]]:
    """Classic (per-event) fastjet clustering: list of (pt, eta, phi) above 5 GeV."""
    import fastjet

    jet_def = fastjet.JetDefinition(fastjet.ee_genkt_algorithm, 0.4, -1.0)
    inputs = [fastjet.PseudoJet(*map(float, v)) for v in zip(px, py, pz, e, strict=True)]
    out = []
    for jet in fastjet.ClusterSequence(inputs, jet_def).inclusive_jets(5.0):
        pt = math.hypot(jet.px(), jet.py())
        out.append((pt, math.asinh(jet.pz() / pt), math.atan2(jet.py(), jet.px())))
    return out


def test_jet_and_met_metrics_agree_with_an_independent_computation(
    evaluated: tuple[dict, Path], synthetic_events: ak.Array
) -> None:
    """Per-event classic fastjet, a plain-Python nearest-jet match and numpy percentiles on the matched pairs."""
    metrics, _ = evaluated
    responses: dict[str, list[float]] = {"mlpf": [], "pf": []}
    met_responses: dict[str, list[float]] = {"mlpf": [], "pf": []}
    n_gen = 0
    for event in ak.to_list(synthetic_events):
        truth = np.array(
            [[p["pt"], p["eta"], p["phi"], p["energy"]] for p in event["truth"]], dtype=np.float64
        )
        gen = (
            _independent_jets(
                truth[:, 0] * np.cos(truth[:, 2]),
                truth[:, 0] * np.sin(truth[:, 2]),
                truth[:, 0] * np.sinh(truth[:, 1]),
                truth[:, 3],
            )
            if len(truth)
            else []
        )
        n_gen += len(gen)
        for reco, field in (("mlpf", "ypred"), ("pf", "ycand")):
            rows = np.array([r for r in event[field] if r[0] != 0], dtype=np.float64).reshape(-1, 7)
            phi = np.arctan2(rows[:, 4], rows[:, 5])
            px, py = rows[:, 2] * np.cos(phi), rows[:, 2] * np.sin(phi)
            jets = (
                _independent_jets(px, py, rows[:, 2] * np.sinh(rows[:, 3]), rows[:, 6]) if len(rows) else []
            )
            for g_pt, g_eta, g_phi in gen:
                best = min(
                    (
                        (math.hypot(g_eta - eta, (g_phi - phi_j + math.pi) % (2 * math.pi) - math.pi), pt)
                        for pt, eta, phi_j in jets
                    ),
                    default=None,
                )
                if best is not None and best[0] < 0.1:
                    responses[reco].append(best[1] / g_pt)
            met_responses[reco].append(math.hypot(px.sum(), py.sum()) / event["genmet"])
    assert metrics["jets"]["n_gen_jets"] == n_gen
    for reco in ("mlpf", "pf"):
        p25, p50, p75 = np.percentile(responses[reco], [25, 50, 75])
        jet = metrics["jet_response"][reco]
        assert jet["n_matched"] == len(responses[reco])
        assert jet["matched_fraction"] == pytest.approx(len(responses[reco]) / n_gen)
        assert jet["median"] == pytest.approx(p50, rel=1e-5)
        assert jet["iqr"] == pytest.approx(p75 - p25, rel=1e-4)
        m25, m50, m75 = np.percentile(met_responses[reco], [25, 50, 75])
        assert metrics["met_response"][reco]["median"] == pytest.approx(m50, rel=1e-4)
        assert metrics["met_response"][reco]["iqr"] == pytest.approx(m75 - m25, rel=1e-3)


def test_response_table_holds_the_matched_pairs(evaluated: tuple[dict, Path]) -> None:
    metrics, path = evaluated
    responses, metadata = read_responses(path)
    assert metadata["sample"] == "ttbar"
    gen = ak.flatten(responses["gen_jets"], axis=1)
    ratio = ak.to_numpy(gen.mlpf_pt / gen.pt)
    ratio = ratio[np.isfinite(ratio)]
    p25, p50, p75 = np.percentile(ratio, [25, 50, 75])
    assert metrics["jet_response"]["mlpf"]["median"] == pytest.approx(p50, rel=1e-5)
    assert metrics["jet_response"]["mlpf"]["iqr"] == pytest.approx(p75 - p25, rel=1e-3)
    assert len(responses) == metrics["n_events"]
    assert set(responses["elements"].fields) >= {"target_class", "pf_class", "mlpf_class", "element_energy"}


def test_same_inputs_give_same_bytes(tmp_path: Path, predictions_file: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        metrics = tmp_path / name / "m.json"
        rc = run_evaluate(
            predictions_file, metrics, tmp_path / name / "r.parquet", model="m1", settings=SETTINGS
        )
        assert rc == 0
        outputs.append((metrics.read_bytes(), (tmp_path / name / "r.parquet").read_bytes()))
    assert outputs[0] == outputs[1]


def test_missing_field_is_a_one_line_error(
    tmp_path: Path, synthetic_events: ak.Array, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.parquet"
    ak.to_parquet(synthetic_events[["X", "ytarget", "ycand", "truth", "genmet"]], bad)
    metrics = tmp_path / "m.json"
    rc = run_evaluate(bad, metrics, tmp_path / "r.parquet", sample="s")
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "ypred" in err
    assert str(bad) in err
    assert len(err.splitlines()) == 1
    assert not metrics.exists()


def test_unsorted_bins_are_rejected() -> None:
    # a cross-field rule of the configuration (mlpf.config), so the workflow refuses it before any job runs
    with pytest.raises(ConfigError, match="jet_pt_bins: bin edges must be strictly increasing"):
        validate_section("evaluation", {"jet_pt_bins": [10, 5, 20]})
    settings = validate_section("evaluation", {})
    settings["jet_pt_bins"] = [10, 5, 20]  # settings that bypassed validation are still refused
    with pytest.raises(ConfigError, match="jet_pt_bins"):
        check_settings(settings)


def test_events_without_particles_or_jets_are_handled(synthetic_events: ak.Array) -> None:
    settings = validate_section("evaluation", {"jets": {"radius": 0.4, "min_pt": 500.0}, "bootstrap": 0})
    metrics, responses = evaluate_events(synthetic_events[:5], settings)
    assert metrics["jets"]["n_gen_jets"] == 0
    assert math.isnan(metrics["jet_response"]["mlpf"]["median"])
    assert ak.num(responses["gen_jets"], axis=1).tolist() == [0] * 5


def test_corrupt_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"not parquet at all")
    rc = run_evaluate(bad, tmp_path / "m.json", tmp_path / "r.parquet", sample="s")
    assert rc == 2
    assert "not a readable parquet file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.parquet"]


def test_binned_jet_response_matches_numpy_in_each_bin(evaluated: tuple[dict, Path]) -> None:
    metrics, path = evaluated
    responses, _ = read_responses(path)
    gen = ak.flatten(responses["gen_jets"], axis=1)
    gen_pt = ak.to_numpy(gen.pt).astype(np.float64)
    ratio = ak.to_numpy(gen.pf_pt).astype(np.float64) / gen_pt
    binned = metrics["jet_response"]["pf"]["binned"]
    assert binned["variable"] == "gen_jet_pt"
    edges = binned["edges"]
    checked = 0
    for i, (low, high) in enumerate(itertools.pairwise(edges)):
        sel = ratio[(gen_pt >= low) & (gen_pt < high) & np.isfinite(ratio)]
        assert binned["n"][i] == len(sel)
        if len(sel) >= 10:  # min_bin_entries default
            p25, p50, p75 = np.percentile(sel, [25, 50, 75])
            # float32 storage of the table vs float64 in the stage: agreement to 1e-4 relative.
            assert binned["median"][i] == pytest.approx(p50, rel=1e-4)
            assert binned["iqr"][i] == pytest.approx(p75 - p25, rel=1e-2, abs=1e-5)
            checked += 1
        else:
            assert binned["median"][i] is None
    assert checked >= 3


def test_model_predicting_no_particles_gives_defined_metrics(synthetic_events: ak.Array) -> None:
    """An untrained model may predict class 0 everywhere: no MLPF jets, zero MET, nothing matched."""
    flat = ak.to_numpy(ak.flatten(synthetic_events["ypred"], axis=1)).copy()
    flat[:, 0] = 0
    counts = ak.num(synthetic_events["ypred"], axis=1)
    events = ak.with_field(
        synthetic_events, ak.unflatten(ak.to_regular(ak.Array(flat), axis=1), counts), "ypred"
    )
    metrics, _ = evaluate_events(events[:40], validate_section("evaluation", {"bootstrap": 5}))
    assert metrics["jets"]["n_reco_jets"]["mlpf"] == 0
    assert metrics["jet_response"]["mlpf"]["matched_fraction"] == 0.0
    assert metrics["met_response"]["mlpf"]["median"] == 0.0
    assert metrics["per_class"]["mlpf"]["photon"]["efficiency"] == 0.0
    assert metrics["jet_response"]["pf"]["matched_fraction"] > 0.9
