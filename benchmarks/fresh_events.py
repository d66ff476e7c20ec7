"""A trained model on events no run has seen: fresh fastsim events from another master seed, evaluated.

The workflow's held-out test shards come from the configuration's master seed; everything chosen while
developing the model could have leaned on them. This script makes new events with another master seed (same
generator and detector settings), parses them, runs the model and the evaluation on them, and prints the
physics table (benchmarks/physics_table.py) - the check that nothing is tuned to the test shards.

Usage:
    python benchmarks/fresh_events.py --checkpoint results/models/mlpf/checkpoint.pt --seed 1042 \
        --events 1000 --workdir results/fresh/mlpf [--samples ttbar qq ...] [--threads 2] \
        [--config config/config.yaml config/benchmark.yaml]
    # the same events and model at another inference precision, and its change against fp32:
    python benchmarks/fresh_events.py --checkpoint ... --seed 1042 --workdir results/fresh/mlpf --precision int8

With --precision other than fp32 the predictions and metrics go to `predictions_<precision>/` and
`metrics_<precision>/` of the same workdir (the events are made once), and when the fp32 metrics are there the
script also prints the relative change of MLPF's jet and MET IQR/median against them.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from physics_table import QUANTITIES, read_metrics, summary_rows, summary_table

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
    parser.add_argument("--precision", default="fp32", help="inference precision (mlpf infer --precision)")
    args = parser.parse_args(argv)
    config = load_config(*args.config)
    fastsim = json.dumps({**config["fastsim"], "events_per_shard": args.events})
    dataset, evaluation = json.dumps(config["dataset"]), json.dumps(config["evaluation"])
    work = args.workdir
    tag = "" if args.precision == "fp32" else f"_{args.precision}"
    metrics, evaluated = work / f"metrics{tag}", work / f"evaluation{tag}"
    for sample in args.samples:
        for directory in ("edm4hep", "datasets", f"predictions{tag}", metrics.name, evaluated.name, "logs"):
            (work / directory).mkdir(parents=True, exist_ok=True)
        root, shard = work / "edm4hep" / f"{sample}.root", work / "datasets" / f"{sample}.parquet"
        predictions = work / f"predictions{tag}" / f"{sample}.parquet"
        logs = work / "logs"
        if not root.exists():
            _mlpf("fastsim", "--sample", sample, "--shard", "0", "--seed", str(args.seed), "--settings", fastsim,
                  "--output", str(root), "--no-progress", log=logs / f"fastsim_{sample}.log")  # fmt: skip
        if not shard.exists():
            _mlpf("parse", "--input", str(root), "--output", str(shard), "--settings", dataset,
                  log=logs / f"parse_{sample}.log")  # fmt: skip
        _mlpf("infer", "--checkpoint", str(args.checkpoint), "--input", str(shard), "--output", str(predictions),
              "--threads", str(args.threads), "--precision", args.precision,
              log=logs / f"infer{tag}_{sample}.log")  # fmt: skip
        _mlpf("evaluate", "--predictions", str(predictions), "--sample", sample, "--model", "fresh",
              "--settings", evaluation, "--metrics", str(metrics / f"{sample}.json"),
              "--responses", str(evaluated / f"{sample}.parquet"), log=logs / f"evaluate{tag}_{sample}.log")  # fmt: skip
    print(f"fresh events: master seed {args.seed}, {args.events} per sample, model {args.checkpoint}, "
          f"{args.precision}\n")  # fmt: skip
    rows = summary_rows(read_metrics(metrics))
    print(summary_table(rows))
    if tag and (work / "metrics").is_dir():
        print(f"\n{change_table(summary_rows(read_metrics(work / 'metrics')), rows, args.precision)}")
    return 0


def change_table(reference: list[dict], other: list[dict], precision: str) -> str:
    """Relative change of MLPF's IQR/median at `precision` against fp32, per sample and quantity."""
    by_sample = {row["sample"]: row for row in reference}
    lines = [f"| sample | {' | '.join(f'{q} fp32 -> {precision}' for q in QUANTITIES)} |",
             "|---|" + "---|" * len(QUANTITIES)]  # fmt: skip
    for row in other:
        base = by_sample.get(row["sample"])
        if base is None:
            continue
        cells = []
        for q in QUANTITIES:
            (a, _), (b, _) = base[f"{q}_mlpf"], row[f"{q}_mlpf"]
            cells.append(f"{a:.4f} -> {b:.4f} ({100 * (b - a) / a:+.1f} %)" if math.isfinite(a + b) else "")
        lines.append(f"| {row['sample']} | {' | '.join(cells)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
