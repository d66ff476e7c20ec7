"""The workflow as a user runs it: lint, dry runs, config errors, and the whole chain on a tiny config."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from snakemake_runner import run_snakemake

REPO = Path(__file__).resolve().parents[2]


def snakemake(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return run_snakemake(*args, timeout=timeout)


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_dry_run_resolves_main_target():
    result = snakemake("-n", "--cores", "2", "results/plots")
    assert result.returncode == 0, result.stderr
    for rule in ("fastsim", "parse", "train", "infer", "evaluate", "plots"):
        assert f"rule {rule}:" in result.stdout, f"{rule} missing from the plan"


@pytest.mark.parametrize(
    ("gpus", "launcher"), [(1, None), (4, "torchrun --standalone --nnodes=1 --nproc_per_node=4")]
)
def test_training_launches_torchrun_only_with_several_gpus(gpus, launcher):
    target = "results/models/mlpf/checkpoint.pt"
    result = snakemake(target, "-n", "-p", "--cores", "2", "--set-resources", f"train:gpu={gpus}")
    assert result.returncode == 0, result.stderr
    command = next(line for line in result.stdout.splitlines() if "mlpf train" in line)
    if launcher is None:
        assert "torchrun" not in command
    else:
        assert f"{launcher} --no-python mlpf train" in command


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("training={'epoch': 3}", "training: unknown key 'epoch' (did you mean 'epochs'?)"),
        ("seed=-4", "seed: -4 is less than the minimum of 0"),
        ("source=cvmfs", "source: 'cvmfs' is not one of"),
    ],
)
def test_bad_config_is_one_line(override, expected):
    result = snakemake("-n", "--cores", "1", "--config", override)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "Invalid configuration" in line]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.workflow
@pytest.mark.slow
def test_whole_chain_on_tiny_config(tmp_path):
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    config["fastsim"]["events_per_shard"] = 40  # smaller still than CI's own run of .test
    config.setdefault("evaluation", {})["timing_sizes"] = [32, 64]  # exercise the timing rule, cheaply
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake("--directory", str(tmp_path), "--cores", "2", "all", "results/paper", timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    plots = sorted(
        p.relative_to(tmp_path / "results" / "plots") for p in (tmp_path / "results" / "plots").rglob("*.png")
    )
    assert any("jet" in p.name and "response" in p.name for p in plots), plots
    assert any(p.parts[0] == "gun_pi" and p.name.startswith("eff_fake_") for p in plots), plots
    metrics = json.loads((tmp_path / "results" / "metrics" / "ci" / "ttbar.json").read_text())
    assert metrics["n_events"] == 40
    for algo in ("mlpf", "pf"):
        assert metrics["jet_response"][algo]["iqr"] >= 0
        assert 0.2 < metrics["jet_response"][algo]["median"] < 2.0
    assert (tmp_path / "results" / "models" / "ci" / "model.onnx").stat().st_size > 0
    assert "MLPF" in (tmp_path / "results" / "model_card.md").read_text()
    assert (tmp_path / "results" / "plots" / "timing" / "timing_scaling.png").exists()
    manifest = json.loads((tmp_path / "results" / "paper" / "manifest.json").read_text())
    produced = {entry["figure"] for entry in manifest["figures"] if entry["produced"]}
    assert {"training_curves", "jet_response", "timing_scaling"} <= produced
    assert manifest["provenance"]["settings"]["evaluation"]["timing_sizes"] == [32, 64]
    # nothing half-written is left behind by any stage
    assert not list(tmp_path.rglob("*.tmp*"))
