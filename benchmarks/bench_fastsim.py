"""Throughput of the fastsim on one core: events/s for generation, detector + PF, and writing.

Usage: python benchmarks/bench_fastsim.py [--sample ttbar] [--events 1000] [--repeat 3] [--hit-detail coarse|full]
       [--json out.json]
Runs in this process (one core) and reports the best of `repeat` runs per stage, in wall time and in CPU time
of the process (the per-core cost even when the machine is shared with other jobs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from mlpf import __version__
from mlpf.config import validate_section
from mlpf.sim.generate import generate
from mlpf.sim.pipeline import simulate
from mlpf.sim.writer import build_branches, metadata, write_root


class _Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return out


def bench_once(sample: str, n_events: int, seed: int, hit_detail: str = "coarse") -> dict[str, float]:
    settings = validate_section("fastsim", {"events_per_shard": n_events, "hit_detail": hit_detail})
    gun = (settings["gun_energy_min"], settings["gun_energy_max"])
    clock = _Clock()
    generate(sample, n_events, seed, settings["sqrt_s"], gun)
    gen_wall, gen_cpu = clock.lap()
    result = simulate(sample, n_events, seed, settings, show_progress=False)
    sim_wall, sim_cpu = clock.lap()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.root"
        branches = build_branches(result.truth, result.tracks, result.hits, result.clusters, result.pfos)
        write_root(path, branches, metadata(sample, "bench", seed, seed, n_events, settings, __version__))
        write_wall, write_cpu = clock.lap()
        size = path.stat().st_size
    return {
        "calorimeter_hits_per_event": len(result.hits.energy) / n_events,
        "generation_wall": gen_wall,
        "generation_cpu": gen_cpu,
        "detector_and_pf_wall": sim_wall - gen_wall,  # simulate() = generation + truth + detector + PF
        "detector_and_pf_cpu": sim_cpu - gen_cpu,
        "write_wall": write_wall,
        "write_cpu": write_cpu,
        "total_wall": sim_wall + write_wall,
        "total_cpu": sim_cpu + write_cpu,
        "file_mb_per_1000_events": size / 1e6 * 1000 / n_events,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default="ttbar")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--hit-detail", default="coarse", choices=("coarse", "full"), help="fastsim.hit_detail"
    )
    parser.add_argument("--json", default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    runs = [bench_once(args.sample, args.events, 1000 + i, args.hit_detail) for i in range(args.repeat)]
    best = {k: min(r[k] for r in runs) for k in runs[0]}
    result = {
        "sample": args.sample,
        "hit_detail": args.hit_detail,
        "events": args.events,
        "repeat": args.repeat,
        "seconds_best": best,
        "events_per_second_per_core_cpu": args.events / best["total_cpu"],
        "events_per_second_wall": args.events / best["total_wall"],
        "detector_and_pf_events_per_second_cpu": args.events / best["detector_and_pf_cpu"],
        "generation_events_per_second_cpu": args.events / best["generation_cpu"],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
