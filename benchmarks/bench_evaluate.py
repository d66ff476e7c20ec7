"""Time and peak memory of the evaluation stage on 10,000 synthetic events, one core.

The events come from tests/evaluate/synthetic_predictions.py (~80 truth particles and ~96 elements per event,
about a CLIC ttbar event). Jets R = 0.4 (the later MLPF definition, more jets than R = 0.7), default bootstrap.
The target is under a minute of CPU time for 10,000 events.

Usage:
    python benchmarks/bench_evaluate.py [--events 10000] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

# One core: keep BLAS and pyarrow single-threaded (set before numpy is imported).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import awkward as ak
import pyarrow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluate"))
from synthetic_predictions import make_events

from mlpf.config import validate_section
from mlpf.evaluate.evaluation import evaluate_events
from mlpf.evaluate.reader import read_predictions


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    pyarrow.set_cpu_count(1)
    settings = validate_section("evaluation", {"jets": {"radius": 0.4, "min_pt": 5.0}})
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pred.parquet"
        ak.to_parquet(make_events(args.events, seed=3, sprays=(4, 8), per_spray=(5, 25)), path)
        for _ in range(args.repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            metrics, _ = evaluate_events(read_predictions(path), settings)
            runs.append({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu})
    result = {
        "events": args.events,
        "gen_jets": metrics["jets"]["n_gen_jets"],
        "wall_s_best": min(r["wall_s"] for r in runs),
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "cpu_s_best": min(r["cpu_s"] for r in runs),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "runs": runs,
    }
    print(
        f"evaluate {args.events} events ({result['gen_jets']} generator jets): {result['wall_s_best']:.1f} s wall "
        f"best (median {result['wall_s_median']:.1f}), {result['cpu_s_best']:.1f} s CPU, "
        f"peak RSS {result['peak_rss_mb']:.0f} MB"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
