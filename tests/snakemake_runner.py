"""Run the workflow's Snakefile in a subprocess, as a user would, for the workflow-level tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"


def run_snakemake(*args: str, cwd: Path = REPO, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    """`python -m snakemake --snakefile workflow/Snakefile ARGS` in `cwd`; never raises on a failed run."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )


def workdir_with_default_config(directory: Path) -> Path:
    """A working directory holding a copy of the default config/config.yaml (for --directory runs)."""
    (directory / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", directory / "config" / "config.yaml")
    return directory
