"""The workflow as a user runs it: lint, dry runs, config errors, and the whole chain on a tiny config."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mlpf.data.parquet import read_metadata
from mlpf.training.loop import RESUME_CHECKPOINT
from snakemake_runner import SNAKEFILE, run_snakemake, workdir_with_default_config

REPO = Path(__file__).resolve().parents[2]


def snakemake(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return run_snakemake(*args, timeout=timeout)


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def planned_jobs(output: str) -> dict[str, int]:
    """The job counts of a dry run's "Job stats" table, by rule."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE)}


def test_dry_run_resolves_main_target():
    # the main job as the README, CI and every issue type it: the directory results/plots
    result = snakemake("-n", "-p", "--cores", "2", "results/plots")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for rule in ("fastsim", "parse", "train", "infer", "evaluate", "figures", "plots"):
        assert f"rule {rule}:" in result.stdout, f"{rule} missing from the plan"
    # every output under the names of what made it (docs/outputs.md)
    assert "resources/edm4hep/fastsim/ttbar/0.root" in result.stdout
    assert "results/datasets/fastsim/clusters/ttbar/0.parquet" in result.stdout
    assert "--output results/figures/mlpf" in result.stdout  # the figures, keyed by the model
    # results/plots is the view of the configured model's figures, and its index names them
    view = next(line for line in result.stdout.splitlines() if "mlpf view-figures" in line)
    assert view.removeprefix("Shell command: ").startswith(
        "mlpf view-figures --figures results/figures/mlpf --model mlpf --events fastsim --dataset clusters"
        " --output results/plots"
    ), view
    # `plots` names the same target, and `all` holds it: one DAG with results/plots and results/figures/{model}
    alias = snakemake("-n", "--cores", "2", "plots", "all", "paper")
    assert alias.returncode == 0, alias.stdout[-2000:] + alias.stderr[-2000:]
    assert planned_jobs(alias.stdout)["plots"] == 1
    assert planned_jobs(alias.stdout)["figures"] == 1


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
        ("training={'epoch': 3}", "--config: training: unknown key 'epoch' (did you mean 'epochs'?)"),
        ("seed=-4", "--config: seed: -4 is less than the minimum of 0"),
        ("source=cvmfs", "--config: source: 'cvmfs' is not one of"),
        ("fastsim={gun_energy_min: 500}", "--config: fastsim.gun_energy_min: must be below gun_energy_max"),
        ("model={name: ..}", "--config: model.name: '..' does not match"),
    ],
)
def test_bad_config_is_one_line(override, expected):
    # checked before any job: the override names --config, not config/config.yaml, which is fine
    result = snakemake("-n", "--cores", "1", "--config", override)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "Invalid configuration" in line]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "config/config.yaml" not in lines[0]
    assert "Traceback" not in result.stderr


def test_a_sample_trains_on_its_own_number_of_shards():
    # shards.train_per_sample: two files of the neutral-hadron gun beside three of ttbar, the held-out shard of
    # each sample still the one after shards.train
    result = snakemake(
        "-n", "-p", "--cores", "1", "results/models/mlpf/checkpoint.pt", "--config",
        "samples={train: [ttbar, gun_kl]}", "shards={train: 3, train_per_sample: {gun_kl: 2}}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    command = next(line for line in result.stdout.splitlines() if "mlpf train" in line)
    files = re.findall(
        r"results/datasets/fastsim/clusters/(\w+)/(\d+)\.parquet", command.split("--model-settings")[0]
    )
    assert sorted(files) == [("gun_kl", "0"), ("gun_kl", "1"), ("ttbar", "0"), ("ttbar", "1"), ("ttbar", "2")]
    wrong = snakemake(
        "-n", "--cores", "1", "--config", "samples={train: [ttbar]}", "shards={train_per_sample: {gun_kl: 1}}"
    )
    assert wrong.returncode != 0
    assert "shards.train_per_sample: ['gun_kl'] not in samples.train" in wrong.stderr


def test_a_nested_override_reaches_the_stage_with_the_schemas_types():
    # Snakemake hands nested values over as strings; the workflow reads them as the schema's numbers
    result = snakemake("-n", "-p", "--cores", "1", "--config", 'training={"epochs": 2, "batch_size": 4}')
    assert result.returncode == 0, result.stderr
    command = next(line for line in result.stdout.splitlines() if "mlpf train" in line)
    settings = json.loads(command.split("--settings ", 1)[1].split(" --dataset-settings", 1)[0].strip("'"))
    assert (settings["epochs"], settings["batch_size"]) == (2, 4)


def test_the_model_wildcard_matches_the_configured_name_literally():
    # a '.' in model.name must not match any character: results/models/v2X5 is not the model v2.5
    # (targets go before --config, which takes every word after it)
    ok = snakemake("-n", "--cores", "1", "results/models/v2.5/model.onnx", "--config", "model={name: v2.5}")
    assert ok.returncode == 0, ok.stderr
    result = snakemake(
        "-n", "--cores", "1", "results/models/v2X5/model.onnx", "--config", "model={name: v2.5}"
    )
    assert result.returncode != 0
    assert "MissingRuleException" in result.stdout + result.stderr


@pytest.mark.workflow
@pytest.mark.slow
def test_whole_chain_on_tiny_config(tmp_path):
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    config["fastsim"]["events_per_shard"] = 40  # smaller still than CI's own run of .test
    config.setdefault("evaluation", {})["timing_sizes"] = [32, 64]  # exercise the timing rule, cheaply
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake("--directory", str(tmp_path), "--cores", "2", "all", "paper", timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    plots_dir = tmp_path / "results" / "figures" / "ci"
    plots = sorted(p.relative_to(plots_dir) for p in plots_dir.rglob("*.png"))
    assert any("jet" in p.name and "response" in p.name for p in plots), plots
    assert any(p.parts[0] == "gun_pi" and p.name.startswith("eff_fake_") for p in plots), plots
    metrics = json.loads((tmp_path / "results" / "metrics" / "ci" / "ttbar.json").read_text())
    assert metrics["n_events"] == 40
    for algo in ("mlpf", "pf"):
        assert metrics["jet_response"][algo]["iqr"] >= 0
        assert 0.2 < metrics["jet_response"][algo]["median"] < 2.0
    assert (tmp_path / "results" / "models" / "ci" / "model.onnx").stat().st_size > 0
    card = (tmp_path / "results" / "models" / "ci" / "model_card.md").read_text()
    assert "MLPF" in card
    assert "](../../figures/ci/ttbar/jet_response.png)" in card  # links reach the figures from the card
    # the events' origin travels from the parsed shards to every output
    assert metrics["event_source"]["simulation"] == "fastsim"
    assert metrics["event_source"]["source"] == "fastsim"
    assert metrics["event_source"]["master_seed"] == config["seed"]
    assert metrics["event_source"]["events"] == "fastsim"  # the name of the events (docs/outputs.md)
    info = json.loads((tmp_path / "results" / "models" / "ci" / "model.json").read_text())
    assert info["train_event_source"]["sample"] == ["qq", "ttbar"]
    assert "fast simulation: Pythia8" in card
    assert (plots_dir / "timing" / "timing_scaling.png").exists()
    manifest = json.loads((tmp_path / "results" / "paper" / "ci" / "manifest.json").read_text())
    produced = {entry["figure"] for entry in manifest["figures"] if entry["produced"]}
    assert {"training_curves", "jet_response", "timing_scaling"} <= produced
    assert manifest["provenance"]["settings"]["evaluation"]["timing_sizes"] == [32, 64]
    assert manifest["figures"][0]["files"]["training"][0].startswith("results/figures/ci/training/")
    # the main target: the view of the figures, the same files, with an index naming the model, events, dataset
    view = tmp_path / "results" / "plots"
    assert sorted(p.relative_to(view) for p in view.rglob("*.png")) == plots
    assert (view / "ttbar" / "jet_response.png").samefile(plots_dir / "ttbar" / "jet_response.png")
    index = (view / "index.md").read_text()
    assert "# Figures of the model `ci`" in index
    assert "the dataset `clusters` of the events `fastsim`" in index
    assert "results/figures/{model}/" in index
    # nothing half-written is left behind by any stage
    assert not list(tmp_path.rglob("*.tmp*"))


def _files(root: Path) -> dict[str, str]:
    """Every file of the run's outputs (resources/ and results/) with the SHA-256 of its contents."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for top in ("resources", "results")
        for p in sorted((root / top).rglob("*"))
        if p.is_file()
    }


@pytest.mark.workflow
@pytest.mark.slow
def test_two_configurations_one_after_the_other_keep_both_outputs(tmp_path):
    """The CI configuration (cluster level), then a hit-level one on the same events in the same directory: the
    second reuses the events, adds its own dataset, model, predictions and figures, and leaves every output of
    the first untouched; the first then has nothing to redo (docs/outputs.md)."""
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    config["fastsim"]["events_per_shard"] = 40
    config["samples"]["evaluate"] = ["ttbar"]  # one evaluated sample is enough here
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    hits = tmp_path / "config" / "hits.yaml"
    small = {"name": "ci_hits", "width": 32, "num_layers": 1, "num_heads": 4}  # ~1,400 elements per event
    hits.write_text(yaml.safe_dump({"dataset": {"elements": "hits"}, "model": small}))
    run = ("--directory", str(tmp_path), "--cores", "2", "all")
    first = snakemake(*run, timeout=1200)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    # the view is the one output a configuration replaces: everything else of the first run must stay
    before = {
        path: digest for path, digest in _files(tmp_path).items() if not path.startswith("results/plots/")
    }
    assert "`ci`" in (tmp_path / "results" / "plots" / "index.md").read_text()

    second = snakemake(
        *run, "--configfile", str(tmp_path / "config" / "config.yaml"), str(hits), timeout=1200
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "rule fastsim:" not in second.stdout  # the same events, acquired once
    after = _files(tmp_path)
    assert {path: after.get(path) for path in before} == before  # the first run's outputs, byte for byte
    results = tmp_path / "results"
    assert (results / "datasets" / "fastsim" / "hits" / "ttbar" / "1.parquet").is_file()
    assert (results / "models" / "ci_hits" / "model_card.md").is_file()
    # every model's figures side by side; results/plots now shows the second's
    assert any((results / "figures" / "ci").rglob("*.png"))
    assert any((results / "figures" / "ci_hits").rglob("*.png"))
    assert "# Figures of the model `ci_hits`" in (results / "plots" / "index.md").read_text()
    assert "the dataset `hits` of the events `fastsim`" in (results / "plots" / "index.md").read_text()
    # both models' predictions of the same held-out events stay, each naming its events and dataset
    for model, level in (("ci", "clusters"), ("ci_hits", "hits")):
        record = read_metadata(results / "predictions" / model / "ttbar.parquet")
        assert record["event_source"]["events"] == "fastsim"
        assert record["inputs"] == [f"results/datasets/fastsim/{level}/ttbar/1.parquet"]

    # the first configuration again: only its view is made again, from the figures it kept
    again = snakemake("-n", *run)
    assert again.returncode == 0, again.stderr[-3000:]
    assert set(planned_jobs(again.stdout)) == {"plots", "all"}, again.stdout[-3000:]
    third = snakemake(*run, timeout=300)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "# Figures of the model `ci`" in (results / "plots" / "index.md").read_text()
    assert {path: _files(tmp_path).get(path) for path in before} == before
    assert any((results / "figures" / "ci_hits").rglob("*.png"))
    done = snakemake("-n", *run)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Nothing to be done" in done.stdout + done.stderr


def test_a_model_name_is_not_retrained_on_another_dataset(tmp_path):
    # a model.json of `mlpf` trained on the Zenodo events: the default configuration (fastsim) stops at once
    workdir_with_default_config(tmp_path)
    model = tmp_path / "results" / "models" / "mlpf"
    model.mkdir(parents=True)
    (model / "model.json").write_text(
        json.dumps({"train_files": ["results/datasets/zenodo/clusters/ttbar/0.parquet"]})
    )
    result = snakemake("-n", "--directory", str(tmp_path), "--cores", "1")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "Invalid configuration" in line]
    assert len(lines) == 1, result.stderr
    assert "model.name 'mlpf' is the model trained on results/datasets/zenodo/clusters" in lines[0]
    assert "this configuration trains on results/datasets/fastsim/clusters" in lines[0]
    assert "Traceback" not in result.stderr
    # under its own name the same configuration plans
    assert (
        snakemake(
            "-n", "--directory", str(tmp_path), "--cores", "1", "--config", "model={name: other}"
        ).returncode
        == 0
    )


@pytest.mark.workflow
@pytest.mark.slow
def test_a_pre_empted_training_job_is_retried_from_where_it_stopped(tmp_path):
    """SIGTERM to the training process (what SLURM sends on pre-emption or at the time limit) ends the first
    attempt with a resumable state; the retry resumes from it. A first attempt removes a state an earlier run
    left, so a retry can only ever resume its own job's."""
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    config["fastsim"]["events_per_shard"] = 40
    config["training"].update(epochs=30, checkpoint_every=1)  # ~120 steps: time to interrupt mid-run
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    model_dir = tmp_path / "results" / "models" / "ci"
    model_dir.mkdir(parents=True)
    (model_dir / RESUME_CHECKPOINT).write_text("left by an earlier run")  # must be removed, not resumed from
    console = tmp_path / "snakemake.out"
    with console.open("w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(tmp_path),
             "--cores", "2", "-p", "--retries", "1", "results/models/ci/checkpoint.pt"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            trainer = _wait_for_training(model_dir / RESUME_CHECKPOINT, tmp_path, deadline_s=300)
            os.kill(trainer, signal.SIGTERM)
            run.wait(timeout=600)
        finally:
            run.kill()
    output = console.read_text()
    assert run.returncode == 0, output[-3000:]
    assert output.count("attempt=2") == 1, output[-3000:]  # the job's resources, printed per attempt
    assert f"else rm -f results/models/ci/{RESUME_CHECKPOINT}; resume=; fi" in output
    log = (tmp_path / "logs" / "train" / "ci.log").read_text()  # the retry's log
    assert "resuming from" in log
    assert "at epoch 0, step 0" not in log  # it continued, it did not start over
    history = (model_dir / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 30  # one row per epoch: none lost, none repeated


def _wait_for_training(state: Path, workdir: Path, deadline_s: float) -> int:
    """The pid of the `mlpf train` process running in `workdir` once it has written a fresh resumable state."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        if state.exists() and state.stat().st_size > 1000:  # a real checkpoint, not the stale text
            for proc in Path("/proc").iterdir():
                try:
                    cmdline = (proc / "cmdline").read_bytes().split(b"\0")
                    in_workdir = (proc / "cwd").resolve() == workdir.resolve()
                except OSError:  # not a process, or one that ended meanwhile
                    continue
                if in_workdir and any(arg.endswith(b"mlpf") for arg in cmdline[:2]) and b"train" in cmdline:
                    return int(proc.name)
        time.sleep(0.05)
    raise AssertionError(f"no training process wrote {state} within {deadline_s} s")
