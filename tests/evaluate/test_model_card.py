"""`mlpf model-card`: the card reports the run's own numbers and tolerates missing model information."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpf.cli import main

METRICS = {
    "sample": "ttbar",
    "model": "m1",
    "n_events": 1234,
    "jets": {"algorithm": "ee_genkt", "radius": 0.7, "p": -1.0, "min_pt": 15.0, "match_dr": 0.1},
    "jet_response": {
        "pf": {
            "median": 0.9811,
            "median_err": 0.0004,
            "iqr": 0.1523,
            "iqr_err": 0.002,
            "matched_fraction": 0.93,
        },
        "mlpf": {
            "median": 0.9954,
            "median_err": 0.0003,
            "iqr": 0.0871,
            "iqr_err": 0.001,
            "matched_fraction": 0.95,
        },
    },
    "met_response": {"pf": {"median": 0.8, "iqr": 0.5}, "mlpf": {"median": 0.9, "iqr": 0.3}},
    "per_class": {
        "pf": {"photon": {"n_target": 10, "efficiency": 0.8, "fake_rate": 0.1}},
        "mlpf": {"photon": {"n_target": 10, "efficiency": 0.9, "fake_rate": 0.05}},
    },
}


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_card_holds_the_metrics_and_training_details(tmp_path: Path) -> None:
    metrics = _write(tmp_path / "ttbar.json", METRICS)
    info = _write(
        tmp_path / "model.json",
        {
            "model": {"name": "m1", "type": "transformer", "calorimeter_features": True},
            "n_params": 123456,
            "n_derived_inputs": 41,
            "epochs": 7,
            "training_time_s": 7260.0,
            "hardware": {"gpu": "NVIDIA H100", "world_size": 2},
            "train_files": [
                "results/datasets/fastsim/clusters/qq/0.parquet",
                "results/datasets/fastsim/clusters/ttbar/1.parquet",
            ],
        },
    )
    history = tmp_path / "history.csv"
    history.write_text("epoch,train_loss,val_loss\n1,2.0,2.5\n2,1.0,1.5\n3,0.9,1.7\n")
    out = tmp_path / "card.md"
    assert (
        main(
            [
                "model-card",
                "--metrics",
                str(metrics),
                "--model-info",
                str(info),
                "--history",
                str(history),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    card = out.read_text()
    assert card.startswith("# Model card: m1")
    assert "| ttbar | 1234 | MLPF | 0.99540 ± 0.00030 | 0.0871 ± 0.0010 |" in card
    assert "| ttbar | 1234 | PF | 0.98110 ± 0.00040 |" in card
    assert "| ttbar | photon | 0.800 | 0.900 | 0.100 | 0.050 |" in card
    assert "Trainable parameters: 123,456" in card
    assert "Epochs: 7" in card
    assert "Training time: 2 h 1.0 min" in card
    assert "2 x NVIDIA H100" in card
    assert "Training samples: qq, ttbar" in card
    assert "best 1.500" in card
    assert "R = 0.7" in card
    assert "simulation only" in card.lower()
    assert "17 features and 41 derived from its calorimeter point" in card


def test_card_links_the_figures_where_they_are(tmp_path: Path) -> None:
    # the workflow's layout: the card beside the model, the figures under results/figures/<model>/
    metrics = _write(tmp_path / "ttbar.json", METRICS)
    out = tmp_path / "results" / "models" / "m1" / "model_card.md"
    out.parent.mkdir(parents=True)
    figures = tmp_path / "results" / "figures" / "m1"
    args = ["model-card", "--metrics", str(metrics), "--figures", str(figures), "--output", str(out)]
    assert main(args) == 0
    card = out.read_text()
    assert "](../../figures/m1/ttbar/jet_response.png)" in card
    assert "](../../figures/m1/training/loss.png)" in card
    assert "](plots/" not in card


def test_card_tolerates_missing_model_info(tmp_path: Path) -> None:
    metrics = _write(tmp_path / "ttbar.json", METRICS)
    info = _write(tmp_path / "model.json", {})
    out = tmp_path / "card.md"
    assert (
        main(["model-card", "--metrics", str(metrics), "--model-info", str(info), "--output", str(out)]) == 0
    )
    card = out.read_text()
    assert "Hardware: not recorded" in card
    assert "Trainable parameters: not recorded" in card
    assert "17 features; outputs" in card  # no derived inputs recorded, none claimed


def test_unreadable_metrics_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = tmp_path / "card.md"
    assert main(["model-card", "--metrics", str(bad), "--output", str(out)]) == 2
    assert "bad.json" in capsys.readouterr().err
    assert not out.exists()


FASTSIM_SOURCE = {
    "simulation": "fastsim",
    "description": "Pythia8 + CLICdet-like parametric fast simulation and rule-based PF (mlpf.sim)",
    "sample": "ttbar",
    "master_seed": 42,
    "job_seed": 1234567,
    "fastsim_version": "1.2.3",
    "detector": "clic",
    "source": "fastsim",
}
FULL_SOURCE = {
    "simulation": "full",
    "description": "Geant4 full simulation and Marlin/Pandora reconstruction (Key4HEP)",
    "layout": "legacy",
    "detector": "clic",
    "source": "zenodo",
    "zenodo_record": 8260741,
}


@pytest.mark.parametrize(
    ("event_source", "expected", "fast"),
    [
        (
            FASTSIM_SOURCE,
            ["fast simulation: Pythia8", "master seed 42", "job seeds 1234567", "version"],
            True,
        ),
        (FULL_SOURCE, ["full simulation: Geant4", "Zenodo record 8260741", "EDM4HEP layout legacy"], False),
    ],
)
def test_card_states_which_simulation_made_the_events(
    tmp_path: Path, event_source: dict, expected: list[str], fast: bool
) -> None:
    metrics = _write(tmp_path / "ttbar.json", {**METRICS, "event_source": event_source})
    info = _write(tmp_path / "model.json", {"model": {"name": "m1"}, "train_event_source": event_source})
    out = tmp_path / "card.md"
    assert (
        main(["model-card", "--metrics", str(metrics), "--model-info", str(info), "--output", str(out)]) == 0
    )
    card = out.read_text()
    training = next(line for line in card.splitlines() if line.startswith("- Events: "))
    evaluation = next(line for line in card.splitlines() if line.startswith("Held-out events of"))
    for text in expected:
        assert text in training
        assert text in evaluation
    assert ("must not be quoted as CLIC performance" in card) is fast
    assert "depending on the workflow" not in card
