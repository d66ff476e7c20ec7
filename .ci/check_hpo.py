"""CI check of an HPO run's results/hpo: trials finished, one pruned, workers shared the study, the best
configuration is a valid overlay, the figures exist; with --killed, a trial failed by a killed worker was
retried with the same parameters.

    python .ci/check_hpo.py .test/results/hpo --workers 2 [--killed]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import yaml

FIGURES = ("optimization_history", "param_importances", "parallel_coordinate", "intermediate_values", "before_after")


def check(directory: Path, workers: int, killed: bool) -> list[str]:
    problems = []
    trials = list(csv.DictReader((directory / "trials.csv").read_text().splitlines()))
    states = [t["state"] for t in trials]
    if "PRUNED" not in states:
        problems.append(f"no pruned trial ({states})")
    if "COMPLETE" not in states:
        problems.append(f"no completed trial ({states})")
    if "RUNNING" in states or "WAITING" in states:
        problems.append(f"unfinished trials left ({states})")
    used = {t["worker"] for t in trials if t["worker"]}
    if len(used) < workers:
        problems.append(f"trials ran on {len(used)} worker(s), expected {workers} sharing the study")
    if killed:
        failed = {t["number"] for t in trials if t["state"] == "FAIL"}
        retried = {t["retry_of"].split(".")[0] for t in trials if t["retry_of"]}
        if not failed or not failed <= retried:
            problems.append(f"killed trial not retried (failed {sorted(failed)}, retries of {sorted(retried)})")
    overlay = yaml.safe_load((directory / "best.yaml").read_text())
    if set(overlay) - {"model", "training"} or "name" not in overlay.get("model", {}):
        problems.append(f"best.yaml is not a model/training overlay: {overlay}")
    problems += [f"missing {name}.png" for name in FIGURES if not (directory / f"{name}.png").is_file()]
    summary = json.loads((directory / "summary.json").read_text())
    print(f"hpo: trials {summary['trials']}, workers {summary['workers']}, best trial {summary['best']['number']}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--workers", type=int, default=1, help="workers expected to have run trials")
    parser.add_argument("--killed", action="store_true", help="a worker was killed mid-trial")
    args = parser.parse_args()
    problems = check(args.directory, args.workers, args.killed)
    for problem in problems:
        print(f"check_hpo: FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
