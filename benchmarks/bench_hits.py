"""Speed and memory of the MLPF backbones on real hit-level events (tracks + calorimeter hits, O(10^4) elements).

The events are fastsim ttbar and qq at full hit detail (`fastsim.hit_detail: full`) parsed at the hit level
(`dataset.elements: hits`), not synthetic inputs:

1. Training and inference per event at the sizes that occur: batches from the training's size-bucketed sampler
   (mlpf.data.dataset.BucketBatchSampler, padded by `collate`), a training step (forward, loss, backward, AdamW
   step) or an inference pass per batch.
2. Inference at B = 1 for N = 1,000 ... 20,000 elements cut from the real events: a seeded random subset of one
   event's elements (tracks and hits in their order) below its size, the elements of consecutive events overlaid
   above it (as pile-up adds them); the log-log slope of time against N says how the cost grows (1 = linear).

Every measurement runs in a fresh process, so that its peak extra resident memory (the peak reset through
/proc/self/clear_refs) is its own. Times are CPU seconds of the process (`time.process_time`) next to wall
seconds: with `--threads 1` (the default) the CPU time is the per-core cost, which a machine shared with other
jobs inflates far less than the wall time.

With `--shards` the events are those hit-level shards (the workflow's timing stage passes its held-out shards);
the JSON's `results` list (model, N, time_s) is what `mlpf plots --timing` draws (the timing figure).

Usage:
    python benchmarks/bench_hits.py --workdir /tmp/bench_hits [--events 60] [--json out.json]
    python benchmarks/bench_hits.py --workdir /tmp/bench_hits --skip-training --sizes 1000 5000 20000
    python benchmarks/bench_hits.py --shards results/datasets/fastsim_hits/hits/ttbar/2.parquet --skip-training
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
from bench_model import _peak_rss_kib, _reset_peak_rss  # the peak-RSS probes of the model benchmark

from mlpf.config import validate_section
from mlpf.data.dataset import BucketBatchSampler, ParquetEventDataset, collate
from mlpf.data.parse import parse_file
from mlpf.model.factory import build_model
from mlpf.model.losses import mlpf_loss
from mlpf.sim.pipeline import run_shard

SIZES = (1000, 2000, 5000, 10000, 20000)
BACKBONES = ("gnn_lsh", "transformer")


def make_events(workdir: Path, n_events: int, seed: int) -> list[Path]:
    """Hit-level shards of fastsim ttbar and qq at full hit detail (made once, reused)."""
    shards = []
    for sample in ("ttbar", "qq"):
        root = workdir / f"{sample}_{n_events}_full.root"
        shard = workdir / "hits" / sample / f"{n_events}.parquet"
        if not root.exists():
            settings = validate_section("fastsim", {"events_per_shard": n_events, "hit_detail": "full"})
            run_shard(sample, "0", seed, settings, root, show_progress=False)
        if not shard.exists():
            parse_file(root, shard, {"elements": "hits"})
        shards.append(shard)
    return shards


def _model(kind: str, settings: dict[str, Any]) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({**settings, "type": kind})


def _timed(fn) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of fn()."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def batch_point(shards: list[Path], settings: dict[str, Any], kind: str, what: str, batch_size: int,
                batches: int) -> dict[str, Any]:  # fmt: skip
    """Training steps (`what` = train) or inference passes (infer) on bucketed batches of the real events; the
    first batch is a warm-up. Meant for a fresh process (`--batch-point`)."""
    dataset = ParquetEventDataset(shards)
    plan = BucketBatchSampler(dataset.sizes(), batch_size, seed=1).batches()[: batches + 1]
    training = validate_section("training", {})
    model = _model(kind, settings)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train(what == "train")
    losses: list[bool] = []

    def step(batch: dict[str, torch.Tensor]) -> None:
        if what == "train":
            optimiser.zero_grad(set_to_none=True)
            loss = mlpf_loss(model(batch["X"], batch["mask"]), batch, training)[0]
            loss.backward()
            optimiser.step()
            losses.append(bool(torch.isfinite(loss)))
        else:
            with torch.no_grad():
                outputs = model(batch["X"], batch["mask"])
            losses.append(all(bool(torch.isfinite(o).all()) for o in outputs))

    rows = []
    rss0 = None
    for i, indices in enumerate(plan):
        batch = collate([dataset[j] for j in indices])
        if i == 1:  # after the warm-up batch: lazy initialisations are not the batches' cost
            rss0 = _reset_peak_rss()
        cpu, wall = _timed(lambda b=batch: step(b))
        if i:
            n_events = len(indices)
            rows.append({"events": n_events, "elements_max": int(batch["mask"].shape[1]),
                         "elements_mean": float(batch["mask"].sum()) / n_events,
                         "cpu_s_per_event": cpu / n_events, "wall_s_per_event": wall / n_events})  # fmt: skip
    return {
        "model": kind,
        "what": what,
        "n_params": sum(p.numel() for p in model.parameters()),
        "batch_size": batch_size,
        "batches": rows,
        "elements_per_event_mean": statistics.mean(r["elements_mean"] for r in rows),
        "cpu_s_per_event": statistics.median(r["cpu_s_per_event"] for r in rows),
        "wall_s_per_event": statistics.median(r["wall_s_per_event"] for r in rows),
        "peak_extra_mb_per_batch": (_peak_rss_kib() - (rss0 or 0)) / 1024,
        "finite": all(losses),
    }


def real_elements(shards: list[Path], n: int, seed: int = 0) -> np.ndarray:
    """[n, 17] elements cut from the real events (module docstring): a subset of one event, or overlaid events."""
    events = ak.from_parquet(shards[0], columns=["X"])["X"]
    rows, k = [], 0
    while sum(len(r) for r in rows) < n:
        rows.append(ak.to_numpy(events[k % len(events)]))
        k += 1
    X = np.concatenate(rows)
    keep = np.sort(np.random.default_rng(seed).choice(len(X), size=n, replace=False))
    return X[keep]


def scaling_point(shards: list[Path], settings: dict[str, Any], kind: str, n: int, repeats: int) -> dict:
    """Inference at B = 1 on N real elements; meant for a fresh process (`--point`)."""
    model = _model(kind, settings).eval()
    X = torch.from_numpy(real_elements(shards, n))[None]
    mask = torch.ones(1, n, dtype=torch.bool)
    with torch.no_grad():
        model(X[:, :256], mask[:, :256])  # lazy initialisation outside the measurement
    rss0 = _reset_peak_rss()
    cpu, wall = [], []
    with torch.no_grad():
        for _ in range(repeats):
            c, w = _timed(lambda: model(X, mask))
            cpu.append(c)
            wall.append(w)
    return {
        "model": kind,
        "N": n,
        "time_s": statistics.median(cpu),  # the timing figure's column (CPU seconds, the per-core cost)
        "infer_cpu_s": statistics.median(cpu),
        "infer_wall_s": statistics.median(wall),
        "peak_extra_mb": (_peak_rss_kib() - rss0) / 1024,
    }


def _slope(points: list[dict[str, Any]]) -> float:
    """Log-log slope of inference time against N (1 = linear, 2 = quadratic)."""
    n = np.log([p["N"] for p in points])
    t = np.log([p["infer_cpu_s"] for p in points])
    return float(np.polyfit(n, t, 1)[0])


def _in_subprocess(args: argparse.Namespace, *point: str) -> dict[str, Any]:
    events = ["--shards", *map(str, args.shards)] if args.shards else ["--workdir", str(args.workdir)]
    cmd = [sys.executable, __file__, *events, "--events", str(args.events),
           "--seed", str(args.seed), "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--batch-size", str(args.batch_size), "--batches", str(args.batches),
           "--model-settings", args.model_settings, *point]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
    return json.loads(result.stdout.strip().splitlines()[-1])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/.work/hits"))
    parser.add_argument(
        "--shards", type=Path, nargs="+", help="hit-level shards to use instead of simulating"
    )
    parser.add_argument("--events", type=int, default=60, help="events per sample to simulate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--batches", type=int, default=3, help="batches timed per backbone (+1 warm-up)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model-settings", default="{}", help="JSON overrides of the model section")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--point", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--batch-point", nargs=2, metavar=("MODEL", "WHAT"), help=argparse.SUPPRESS)
    return parser


def _training(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for kind in args.backbones:
        for what in ("infer", "train"):
            r = _in_subprocess(args, "--batch-point", kind, what)
            rows.append(r)
            print(f"{kind:12s} {what:5s} {r['elements_per_event_mean']:6.0f} elements/event: "
                  f"{r['cpu_s_per_event']:.2f} CPU s/event ({r['wall_s_per_event']:.2f} s wall), peak "
                  f"+{r['peak_extra_mb_per_batch']:.0f} MB per batch of {args.batch_size}, "
                  f"finite {r['finite']}")  # fmt: skip
    return rows


def _scaling(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in args.backbones:
        points = []
        for n in args.sizes:
            point = _in_subprocess(args, "--point", kind, str(n))
            points.append(point)
            print(f"{kind:12s} N={n:6d}: {point['infer_cpu_s']:.2f} CPU s ({point['infer_wall_s']:.2f} s wall), "
                  f"peak +{point['peak_extra_mb']:.0f} MB")  # fmt: skip
        out[kind] = {"points": points, "loglog_slope": _slope(points)}
        print(f"{kind:12s} log-log slope of CPU time vs N: {out[kind]['loglog_slope']:.2f}")
    return out


def main() -> int:
    args = _parser().parse_args()
    torch.set_num_threads(args.threads)
    settings = validate_section("model", json.loads(args.model_settings))
    if args.shards:
        shards = list(args.shards)
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        shards = make_events(args.workdir, args.events, args.seed)
    if args.point:
        print(json.dumps(scaling_point(shards, settings, args.point[0], int(args.point[1]), args.repeats)))
        return 0
    if args.batch_point:
        kind, what = args.batch_point
        print(json.dumps(batch_point(shards, settings, kind, what, args.batch_size, args.batches)))
        return 0
    out: dict[str, Any] = {
        "threads": args.threads,
        "model_settings": settings,
        "shards": list(map(str, shards)),
    }
    if not args.skip_training:
        out["events"] = _training(args)
    if not args.skip_scaling:
        out["scaling"] = _scaling(args)
        out["results"] = [p for kind in args.backbones for p in out["scaling"][kind]["points"]]
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
