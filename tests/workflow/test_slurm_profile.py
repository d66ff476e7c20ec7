"""The execution profiles (profiles/slurm, profiles/local, profiles/ci-slurm) without a cluster: they parse,
every key is a snakemake option, per-rule overrides name real rules, the sbatch lines the SLURM executor
plugin builds from them ask for what the docs promise, and a dry run through the SLURM profile resolves.

One test needs the live test cluster (.ci/slurm/cluster.sh start): it runs only with MLPF_SLURM_LIVE=1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "profiles"
PROFILE_NAMES = ("slurm", "local", "ci-slurm")
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))

# sbatch options the plugin sets itself from resources and rejects inside slurm_extra
# (workflow-conventions.md, section 7).
FORBIDDEN_IN_SLURM_EXTRA = (
    "--gres",
    "--gpus",
    "--account",
    "-A ",
    "--partition",
    "-p ",
    "--mem",
    "--time",
    "-t ",
    "--cpus-per",
    "--ntasks",
    "--constraint",
    "--qos",
    "--nodes",
    "--job-name",
    "--output",
)
# Cores of the CI test cluster node (.ci/slurm/cluster.sh configures CPUs=$(nproc) on the 2-core runner).
CI_NODE_CPUS = 2


def load_profile(name: str) -> dict:
    with (PROFILES / name / "config.yaml").open() as f:
        return yaml.safe_load(f)


def rule_definitions() -> dict[str, str]:
    """Rule name -> its body text, from workflow/rules/*.smk (indented `rule` blocks included)."""
    rules: dict[str, str] = {}
    for path in RULE_FILES:
        text = path.read_text()
        starts = list(re.finditer(r"^\s*rule (\w+):", text, flags=re.MULTILINE))
        for i, m in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
            rules[m.group(1)] = text[m.end() : end]
    return rules


def rule_resource(body: str, key: str) -> int | None:
    m = re.search(rf"^\s*{key}\s*=\s*(\d+)\s*,", body, flags=re.MULTILINE)
    return int(m.group(1)) if m else None


def rule_threads(body: str) -> int:
    m = re.search(r"^\s*threads:\s*(\d+)", body, flags=re.MULTILINE)
    return int(m.group(1)) if m else 1


@pytest.fixture(scope="module")
def snakemake_options() -> set[str]:
    """Every long option of this snakemake, executor plugins included (the profile keys mirror them)."""
    code = (
        "import json; from snakemake.cli import get_argument_parser; "
        "print(json.dumps(sorted(s for s in get_argument_parser()._option_string_actions if s[:2] == '--')))"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return {opt[2:] for opt in json.loads(out.stdout.splitlines()[-1])}


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profile_keys_are_snakemake_options(name, snakemake_options):
    profile = load_profile(name)
    assert isinstance(profile, dict)
    assert profile, f"profiles/{name}/config.yaml is empty"
    unknown = sorted(set(profile) - snakemake_options)
    assert not unknown, f"profiles/{name}: not snakemake options: {unknown}"


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_overrides_name_existing_rules(name):
    profile = load_profile(name)
    rules = rule_definitions()
    for section in ("set-resources", "set-threads"):
        missing = sorted(set(profile.get(section) or {}) - set(rules))
        assert not missing, f"profiles/{name} {section} names rules that do not exist: {missing}"


def test_slurm_profile_is_a_template_with_gpu_rules():
    profile = load_profile("slurm")
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1
    assert profile["latency-wait"] >= 30, "shared filesystems need time to show a compute node's outputs"
    defaults = profile["default-resources"]
    assert {"slurm_account", "slurm_partition", "runtime", "mem_mb"} <= set(defaults)
    rules = rule_definitions()
    gpu_rules = {name for name, body in rules.items() if rule_resource(body, "gpu")}
    assert {"train", "infer"} <= gpu_rules
    for rule in gpu_rules:
        res = profile["set-resources"][rule]
        assert res["gpu"] >= 1, rule
        assert res["cpus_per_gpu"] >= 1, rule
        assert "gres" not in res or "gpu" not in res, f"{rule}: gres and gpu both request GPUs"


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_slurm_extra_carries_no_option_the_plugin_sets(name):
    profile = load_profile(name)
    sections = [profile.get("default-resources") or {}, *(profile.get("set-resources") or {}).values()]
    for res in sections:
        extra = f"{res.get('slurm_extra', '')} "
        assert not [opt for opt in FORBIDDEN_IN_SLURM_EXTRA if opt in extra], extra


def test_ci_profile_fits_the_test_node():
    """Every GPU request is switched off and no job asks for more cores than the 2-core node has
    (sbatch rejects such a job outright)."""
    profile = load_profile("ci-slurm")
    overrides = profile.get("set-resources") or {}
    threads = profile.get("set-threads") or {}
    for rule, body in rule_definitions().items():
        if rule_resource(body, "gpu"):
            assert overrides.get(rule, {}).get("gpu") == 0, f"{rule} would request a GPU on the test cluster"
        assert threads.get(rule, rule_threads(body)) <= CI_NODE_CPUS, f"{rule} asks for too many cores"
    assert profile["default-resources"]["slurm_account"] == "root"
    assert profile["slurm-status-command"] == "sacct"


class _Resources(dict):
    """Attribute and .get access, as the plugin uses job.resources."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError as exc:
            raise AttributeError(key) from exc


def sbatch_line(profile_name: str, rule: str) -> str:
    """The sbatch call the SLURM executor plugin builds for `rule` under a profile (rule resources, then the
    profile's default-resources for unset keys, then its set-resources and set-threads)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    body = rule_definitions()[rule]
    profile = load_profile(profile_name)
    resources = _Resources(profile.get("default-resources") or {})
    for key in ("mem_mb", "runtime", "gpu"):
        value = rule_resource(body, key)
        if value is not None:
            resources[key] = value
    resources.update((profile.get("set-resources") or {}).get(rule, {}))
    threads = (profile.get("set-threads") or {}).get(rule, rule_threads(body))

    class Job:
        pass

    job = Job()
    job.resources, job.threads = resources, threads
    params = {
        "run_uuid": "uuid",
        "slurm_logfile": "log",
        "comment_str": f"rule_{rule}",
        "account": f"-A {resources['slurm_account']}",
        "partition": f"-p {resources['slurm_partition']}",
        "workdir": "",
    }
    return get_submit_command(job, params) + set_gres_string(job)


def test_sbatch_for_training_on_a_gpu_cluster():
    line = sbatch_line("slurm", "train")
    assert "--gpus=1" in line
    assert "--cpus-per-gpu=8" in line
    assert "--cpus-per-task" not in line
    assert "-p gpu" in line
    assert "-t 720" in line


def test_sbatch_for_training_on_the_ci_cluster_requests_no_gpu():
    line = sbatch_line("ci-slurm", "train")
    assert "--gpu" not in line
    assert "--gres" not in line
    assert f"--cpus-per-task={CI_NODE_CPUS}" in line
    assert "--ntasks=1" in line
    assert "-A root" in line


def test_sbatch_for_cpu_rules_uses_rule_threads_and_memory():
    line = sbatch_line("slurm", "parse")
    assert "--cpus-per-task=1" in line
    assert "--mem 4000" in line
    assert "-p cpu" in line
    assert "--gpus" not in line


def test_dry_run_through_the_slurm_profile_resolves(tmp_path):
    """The SLURM profile with its placeholder account still plans the whole tiny workflow (no sbatch runs)."""
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--profile",
            str(PROFILES / "slurm"),
            "--dry-run",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Using profile" in out
    assert "profiles/slurm" in out
    # the GPU override reached the jobs: train and infer are planned with the profile's runtime
    assert re.search(r"rule train:.*?runtime=720", out, flags=re.DOTALL), out
    assert "rule figures" in out


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("MLPF_SLURM_LIVE") != "1", reason="needs the live test cluster: MLPF_SLURM_LIVE=1"
)
def test_failing_job_is_retried_on_the_live_cluster(tmp_path):
    """Through real sbatch/sacct: rule flaky fails with 200 MB, is retried with 400 MB and completes."""
    result = subprocess.run(
        [
            "timeout",
            "-s",
            "INT",
            "-k",
            "10",
            "300",
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / ".ci" / "slurm" / "retry" / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--profile",
            str(PROFILES / "ci-slurm"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Error in rule flaky" in out
    assert "Trying to restart job" in out
    assert (tmp_path / "out" / "flaky.txt").read_text().strip() == "flaky succeeded with 400 MB"
    assert "gpu=0" in (tmp_path / "out" / "train.txt").read_text()
