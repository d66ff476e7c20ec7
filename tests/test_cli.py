from __future__ import annotations

import subprocess
import sys

import pytest

from mlpf import __version__
from mlpf.cli import build_parser, main

STAGES = {
    "fastsim",
    "parse",
    "train",
    "infer",
    "export",
    "evaluate",
    "plots",
    "view-figures",
    "model-card",
    "download",
    "paper-manifest",
}


def test_every_stage_has_a_subcommand():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    missing = STAGES - set(subparsers.choices)
    assert not missing, f"stages without an mlpf subcommand: {sorted(missing)}"


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_user_error_is_one_line_and_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "mlpf", "parse", "--input", "/nonexistent/file.root", "--output", "x.parquet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "/nonexistent/file.root" in lines[0]
