"""A trained model on events no run has seen: fresh fastsim events from another master seed, evaluated.

The workflow's held-out test shards come from the configuration's master seed; everything chosen while
developing the model could have leaned on them. This script makes new events with another master seed (same
generator and detector settings), parses them, runs the model and the evaluation on them, and prints the
physics table (benchmarks/physics_table.py) - the check that nothing is tuned to the test shards.

Usage:
    python benchmarks/fresh_events.py --checkpoint results/models/mlpf/checkpoint.pt --seed 1042 \
        --events 1000 --workdir results/fresh/mlpf [--samples ttbar qq ...] [--threads 2] \
        [--config config/config.yaml config/benchmark.yaml]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from physics_table import read_metrics, summary_rows, summary_table

from mlpf.config import load_config

SAMPLES = ("ttbar", "qq", "zh_tautau", "ww_fullhad", "ttbar_pu10", "gun_kl", "gun_n", "gun_gamma", "gun_pi0")


def _mlpf(*args: str, log: Path) -> None:
    with log.open("w") as out:
        result = subprocess.run(["mlpf", *args], stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        sys.exit(f"mlpf {args[0]} failed, see {log}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--seed", required=True, type=int, help="master seed of the fresh events")
    parser.add_argument("--events", type=int, default=1000, help="events per sample")
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--config", nargs="+", type=Path, default=[Path("config/config.yaml")],
                        help="the run's config files, layered in order as with --configfile (fastsim, dataset "
                        "and evaluation settings)")  # fmt: skip
    parser.add_argument("--samples", nargs="+", default=list(SAMPLES))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    config = load_config(*args.config)
    fastsim = json.dumps({**config["fastsim"], "events_per_shard": args.events})
    dataset, evaluation = json.dumps(config["dataset"]), json.dumps(config["evaluation"])
    work = args.workdir
    for sample in args.samples:
        for directory in ("edm4hep", "datasets", "predictions", "metrics", "evaluation", "logs"):
            (work / directory).mkdir(parents=True, exist_ok=True)
        root, shard = work / "edm4hep" / f"{sample}.root", work / "datasets" / f"{sample}.parquet"
        predictions = work / "predictions" / f"{sample}.parquet"
        logs = work / "logs"
        if not root.exists():
            _mlpf("fastsim", "--sample", sample, "--shard", "0", "--seed", str(args.seed), "--settings", fastsim,
                  "--output", str(root), "--no-progress", log=logs / f"fastsim_{sample}.log")  # fmt: skip
        if not shard.exists():
            _mlpf("parse", "--input", str(root), "--output", str(shard), "--settings", dataset,
                  log=logs / f"parse_{sample}.log")  # fmt: skip
        _mlpf("infer", "--checkpoint", str(args.checkpoint), "--input", str(shard), "--output", str(predictions),
              "--threads", str(args.threads), log=logs / f"infer_{sample}.log")  # fmt: skip
        _mlpf("evaluate", "--predictions", str(predictions), "--sample", sample, "--model", "fresh",
              "--settings", evaluation, "--metrics", str(work / "metrics" / f"{sample}.json"),
              "--responses", str(work / "evaluation" / f"{sample}.parquet"), log=logs / f"evaluate_{sample}.log")  # fmt: skip
    print(f"fresh events: master seed {args.seed}, {args.events} per sample, model {args.checkpoint}\n")
    print(summary_table(summary_rows(read_metrics(work / "metrics"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
