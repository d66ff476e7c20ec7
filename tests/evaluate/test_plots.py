"""`mlpf plots`: figure files per sample and for training, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from evaluate_cli import run_evaluate

from mlpf.cli import main
from mlpf.evaluate.plots.training import plot_history

SETTINGS = {"jets": {"radius": 0.4, "min_pt": 5.0}, "bootstrap": 5}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, predictions_file: Path) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("plots_in")
    metrics, responses = out / "ttbar.json", out / "ttbar.parquet"
    rc = run_evaluate(predictions_file, metrics, responses, settings=SETTINGS)
    assert rc == 0
    return metrics, responses


def _history(path: Path, columns: dict[str, list[float]]) -> Path:
    pd.DataFrame({"epoch": [1, 2, 3], **columns}).to_csv(path, index=False)
    return path


def test_training_curves_follow_the_columns_present(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_loss": [2.0, 1.0],
            "val_loss": [2.2, 1.3],
            "train_loss_cls": [1.0, 0.5],
            "val_loss_cls": [1.1, 0.6],
            "val_jet_iqr": [0.2, 0.1],
        }
    )
    names = {p.name for p in plot_history(frame, tmp_path)}
    assert names == {f"{n}.{ext}" for n in ("loss", "loss_terms", "val_metrics") for ext in ("png", "pdf")}
    # Only the total loss: no term or metric figures.
    only_loss = {p.name for p in plot_history(frame[["epoch", "train_loss"]], tmp_path / "b")}
    assert only_loss == {"loss.png", "loss.pdf"}


@pytest.mark.slow
def test_plots_writes_every_figure_of_the_sample(tmp_path: Path, evaluated: tuple[Path, Path]) -> None:
    metrics, responses = evaluated
    history = _history(
        tmp_path / "history.csv",
        {"train_loss": [3, 2, 1], "val_loss": [3, 2.5, 2], "val_met_iqr": [0.5, 0.4, 0.3]},
    )
    output = tmp_path / "plots"
    rc = main(
        [
            "plots",
            "--responses",
            str(responses),
            "--metrics",
            str(metrics),
            "--history",
            str(history),
            "--output",
            str(output),
        ]
    )
    assert rc == 0
    sample = output / "ttbar"
    for name in (
        "jet_response",
        "jet_pt",
        "met_response",
        "momentum_response",
        "met",
        "jet_response_vs_pt",
        "eff_fake_charged_hadron",
        "energy_response_photon",
        "kinematics_photon_pt",
    ):
        png = sample / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, name
        assert (sample / f"{name}.pdf").read_bytes()[:4] == b"%PDF", name
    assert (output / "summary" / "resolution_summary.png").read_bytes()[:8] == PNG_MAGIC
    assert (output / "training" / "loss.png").exists()
    assert (output / "training" / "val_metrics.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".plots")]


def test_failed_plots_leave_no_output_directory(
    tmp_path: Path, evaluated: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics, _ = evaluated
    output = tmp_path / "plots"
    rc = main(
        [
            "plots",
            "--responses",
            str(tmp_path / "missing.parquet"),
            "--metrics",
            str(metrics),
            "--output",
            str(output),
        ]
    )
    assert rc == 2
    assert "missing.parquet" in capsys.readouterr().err
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []


def test_timing_figure_from_csv_and_json(tmp_path: Path) -> None:
    from mlpf.evaluate.plots.timing import plot_timing, read_timing

    csv = tmp_path / "bench.csv"
    csv.write_text("n_elements,time_s,backend\n100,0.001,torch\n200,0.002,torch\n")
    js = tmp_path / "bench.json"
    js.write_text(json.dumps({"results": [{"num_elements": 100, "time_ms": 0.5, "device": "onnx"}]}))
    frame = read_timing(csv)
    assert frame["time_ms"].tolist() == pytest.approx([1.0, 2.0])  # seconds converted to ms
    assert read_timing(js)["label"].tolist() == ["onnx"]
    names = {p.name for p in plot_timing([csv, js], tmp_path / "out")}
    assert names == {"timing_scaling.png", "timing_scaling.pdf"}


@pytest.mark.slow
def test_timing_figure_reads_the_model_benchmark_output(tmp_path: Path) -> None:
    """The workflow's model_timing rule runs benchmarks/bench_model.py; its JSON must feed the figure."""
    import subprocess
    import sys

    from mlpf.evaluate.plots.timing import read_timing

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_model.py"
    out = tmp_path / "timing.json"
    settings = json.dumps({"width": 16, "num_heads": 2, "num_layers": 1, "bin_size": 16, "distance_dim": 8})
    subprocess.run(
        [
            *(sys.executable, str(script), "--skip-throughput", "--threads", "1", "--repeats", "1"),
            *("--sizes", "32,64,600", "--model-settings", settings, "--json", str(out), "--baseline-pf"),
        ],
        check=True,
        capture_output=True,
    )
    frame = read_timing(out)
    assert sorted(set(frame["label"])) == ["baseline_pf", "gnn_lsh", "transformer"]
    networks = frame[frame["label"] != "baseline_pf"]
    assert sorted(set(networks["n_elements"])) == [32, 64, 600]
    assert (frame["time_ms"] > 0).all()
    # the baseline's events: a ttbar event, with pile-up overlaid to reach the larger size
    pf = frame[frame["label"] == "baseline_pf"].sort_values("n_elements")
    assert len(pf) == 3
    assert pf["n_elements"].iloc[-1] > 2 * pf["n_elements"].iloc[0]


def test_timing_file_without_known_columns_is_an_error(tmp_path: Path) -> None:
    from mlpf.errors import InputFileError
    from mlpf.evaluate.plots.timing import read_timing

    bad = tmp_path / "bench.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputFileError, match="size column"):
        read_timing(bad)


def test_figures_are_byte_reproducible(tmp_path: Path) -> None:
    frame = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.0], "val_loss": [2.2, 1.3]})
    first = plot_history(frame, tmp_path / "a")
    second = plot_history(frame, tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_pf_reference_columns_share_their_metric_panel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    from mlpf.evaluate.plots import training

    frame = pd.DataFrame(
        {
            "epoch": [1, 2],
            "val_jet_iqr_over_median": [0.3, 0.2],
            "val_jet_iqr_over_median_pf": [0.1, 0.1],
            "val_met_iqr": [0.5, 0.4],
        }
    )
    shapes: list[tuple[int, ...]] = []
    original = plt.subplots

    def spy(*args: object, **kwargs: object) -> object:
        fig, axes = original(*args, **kwargs)
        shapes.append(axes.shape)
        return fig, axes

    monkeypatch.setattr(plt, "subplots", spy)
    columns = ["val_jet_iqr_over_median", "val_jet_iqr_over_median_pf", "val_met_iqr"]
    training._grid(frame, frame["epoch"].to_numpy(), columns, "Validation", tmp_path, "v")
    assert shapes == [(1, 2)]  # two panels: jet (MLPF with its PF reference) and MET, not three
    assert training._pretty("jet_iqr_over_median") == "jet IQR / median"


@pytest.mark.slow
def test_parallel_drawing_gives_the_same_files(
    tmp_path: Path, evaluated: tuple[Path, Path], predictions_file: Path
) -> None:
    from mlpf.evaluate.plots.runner import make_plots

    metrics, responses = evaluated
    second = tmp_path / "qq.parquet"  # the same events under a second sample name
    rc = run_evaluate(predictions_file, tmp_path / "qq.json", second, sample="qq", settings=SETTINGS)
    assert rc == 0
    inputs = ([responses, second], [metrics, tmp_path / "qq.json"], [])
    serial = make_plots(*inputs, tmp_path / "serial", jobs=1)
    parallel = make_plots(*inputs, tmp_path / "parallel", jobs=2)
    relative = sorted(p.relative_to(tmp_path / "serial") for p in serial)
    assert relative == sorted(p.relative_to(tmp_path / "parallel") for p in parallel)
    assert {p.parts[0] for p in relative} == {"ttbar", "qq", "summary"}
    for name in relative:
        if name.suffix == ".png":
            assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "parallel" / name).read_bytes(), (
                name
            )


@pytest.mark.parametrize(
    ("event_source", "labels"),
    [
        ({"simulation": "fastsim"}, {"CLICdet-like", "Fast simulation"}),
        ({"simulation": "full"}, {"CLIC", "Full simulation"}),
        ({"simulation": ["fastsim", "full"]}, {"CLIC", "Simulation"}),  # mixed sources: the generic label
        (None, {"CLIC", "Simulation"}),
    ],
)
def test_figures_name_the_simulation_of_their_events(event_source, labels) -> None:
    from mlpf.evaluate.plots.style import decorate, labelled_with, new_figure

    with labelled_with(event_source):
        fig, ax, _ = new_figure()
        decorate(ax, "ttbar")
    texts = {t.get_text() for t in ax.texts}
    fig.clf()
    assert labels <= texts
    assert not ({"Fast simulation", "Full simulation", "CLICdet-like"} - labels) & texts
