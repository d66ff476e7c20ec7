"""Throughput and peak memory of the parse stage (EDM4HEP -> parquet) on one core.

Runs `mlpf.data.parse` in a fresh subprocess per measurement (so the peak resident set size belongs to that
parse alone) and reports events/s for the whole file (open, read, features, targets, write) plus the split
between reading (uproot) and processing (features, association, assembly). The project's target is at least 500
events/s on one core for fastsim ttbar.

At the hit level (`--elements hits`, elements = tracks and calorimeter hits) the target is at least 100
events/s on one core for fastsim ttbar at full hit detail (~9,000 hits per event).

Usage:
    python benchmarks/bench_parse.py --input ttbar.root [--repeat 3] [--chunk-events 1000] [--json out.json]
    python benchmarks/bench_parse.py --generate 10000 --workdir /tmp/bench   # makes the fastsim file first
    python benchmarks/bench_parse.py --generate 2000 --hit-detail full --elements hits --workdir /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# One core: keep numpy/BLAS and pyarrow single-threaded in the measured process.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

_CHILD = r"""
import json, resource, sys, time
import pyarrow
pyarrow.set_cpu_count(1)
pyarrow.set_io_thread_count(1)
from mlpf.data import parse as P
from mlpf.data import targets
from mlpf.io.edm4hep.reader import Edm4hepFile
from mlpf.io.edm4hep.layout import detect_detector

from mlpf.data import hits as H

inp, out, chunk, elements = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0, c0 = time.perf_counter(), time.process_time()
P.parse_file(inp, out, {"target": "paper", "chunk_events": chunk, "elements": elements})
total, cpu = time.perf_counter() - t0, time.process_time() - c0
# Split read / process with the same calls parse_file makes.
stats = P.ParseStats()
t_read = t_proc = 0.0
process = H.process_chunk_hits if elements == "hits" else P.process_chunk
step = min(chunk, H.HITS_MAX_CHUNK_EVENTS) if elements == "hits" else chunk
with Edm4hepFile(inp, read_hit_type=elements == "hits") as f:
    n = f.n_events
    _, bfield, _ = P.resolve_bfield({}, detect_detector(f._file, f.layout))
    for start, stop in f.chunk_ranges(step):
        t = time.perf_counter(); ev = f.read(start, stop); t_read += time.perf_counter() - t
        t = time.perf_counter(); process(ev, targets.TARGET_DEFINITIONS["paper"], bfield, stats)
        t_proc += time.perf_counter() - t
print(json.dumps({"events": n, "total_s": total, "cpu_s": cpu, "read_s": t_read, "process_s": t_proc,
                  "rss_after_imports_mb": rss0 / 1024,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(path: Path, chunk: int, elements: str = "clusters") -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **SINGLE_THREAD_ENV}
        cmd = ["taskset", "-c", "0"] if _has_taskset() else []
        cmd += [sys.executable, "-c", _CHILD, str(path), str(Path(tmp) / "out.parquet"), str(chunk), elements]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        return json.loads(result.stdout.strip().splitlines()[-1])


def _has_taskset() -> bool:
    return (
        subprocess.run(["sh", "-c", "command -v taskset"], check=False, capture_output=True).returncode == 0
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", type=Path, help="EDM4HEP file to parse")
    parser.add_argument("--generate", type=int, metavar="N", help="first write an N-event fastsim ttbar file")
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/.work"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-events", type=int, default=1000)
    parser.add_argument(
        "--elements", choices=("clusters", "hits"), default="clusters", help="dataset.elements"
    )
    parser.add_argument("--hit-detail", choices=("coarse", "full"), default="coarse",
                        help="fastsim.hit_detail of the --generate file")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    path = args.input
    if args.generate:
        suffix = "" if args.hit_detail == "coarse" else f"_{args.hit_detail}"
        path = args.workdir / f"ttbar_{args.generate}{suffix}.root"
        if not path.exists():
            settings = json.dumps({"events_per_shard": args.generate, "hit_detail": args.hit_detail})
            subprocess.run(
                ["mlpf", "fastsim", "--sample", "ttbar", "--shard", "0", "--seed", "1", "--output", str(path),
                 "--no-progress", "--settings", settings],
                check=True,
            )  # fmt: skip
    if path is None:
        parser.error("give --input or --generate")
    runs = [measure(path, args.chunk_events, args.elements) for _ in range(args.repeat)]
    best = min(runs, key=lambda r: r["total_s"])
    n = best["events"]
    summary = {
        "input": str(path),
        "events": n,
        "chunk_events": args.chunk_events,
        "elements": args.elements,
        "repeat": args.repeat,
        "events_per_s_best": n / best["total_s"],
        "events_per_s_median": n / statistics.median(r["total_s"] for r in runs),
        "events_per_cpu_s_best": n / min(r["cpu_s"] for r in runs),
        "read_events_per_s": n / best["read_s"],
        "process_events_per_s": n / best["process_s"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "rss_after_imports_mb": best["rss_after_imports_mb"],
        "runs": runs,
    }
    print(
        f"parse {path.name} ({args.elements}): {n} events, {summary['events_per_s_best']:.0f} events/s best "
        f"({summary['events_per_s_median']:.0f} median of {args.repeat}; {summary['events_per_cpu_s_best']:.0f} per "
        f"CPU second); read {summary['read_events_per_s']:.0f} "
        f"ev/s, process {summary['process_events_per_s']:.0f} ev/s; peak RSS {summary['peak_rss_mb']:.0f} MB "
        f"({summary['rss_after_imports_mb']:.0f} MB after imports)"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
