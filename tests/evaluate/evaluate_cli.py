"""`mlpf evaluate` as the workflow calls it, for the evaluation tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpf.cli import main


def run_evaluate(
    predictions: Path,
    metrics: Path,
    responses: Path,
    sample: str = "ttbar",
    model: str = "m",
    settings: dict[str, Any] | None = None,
) -> int:
    """Run `mlpf evaluate` in process; returns its exit status. settings=None: the schema defaults."""
    argv = ["evaluate", "--predictions", str(predictions), "--sample", sample, "--model", model]
    if settings is not None:
        argv += ["--settings", json.dumps(settings)]
    return main([*argv, "--metrics", str(metrics), "--responses", str(responses)])
