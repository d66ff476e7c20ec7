"""Speed and memory of the MLPF backbones.

1. Training throughput (events/s, ms/event per optimiser step) and inference latency (ms/event) at B = 16
   events of up to N = 256 elements with ~21 % padding (the conditions of upstream's timings, docs/performance.md), for both
   backbones, next to a reference measured in the same run: torch's own `nn.TransformerEncoder` of the same
   width and total depth (so figures can be quoted as ratios, independent of machine load).
2. Inference time and peak extra memory at B = 1 for N = 256 ... 10240 elements. Each point runs in a fresh
   subprocess; on CPU the peak is the growth of the resident set size during the call (peak reset through
   /proc/self/clear_refs), on
   CUDA `torch.cuda.max_memory_allocated`.
3. With --baseline-pf, the fast simulation's rule-based particle flow (mlpf.sim.pfa) per event at the same
   sizes, next to the networks (paper Fig. 10 compares MLPF with the baseline's time per event): ttbar events
   with as many gamma gamma -> hadrons interactions overlaid as reach the size, timed on one thread (the
   baseline is numpy code without threads).

Usage:
    python benchmarks/bench_model.py --threads 2 [--device cuda] [--quick] [--json results.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mlpf.config import validate_section
from mlpf.data.features import DETECTOR_BFIELD_TESLA, PT_PER_TESLA_MM
from mlpf.inference.precision import prepare
from mlpf.model.factory import build_model
from mlpf.model.geometry import X_OMEGA, X_TAN_LAMBDA
from mlpf.model.losses import mlpf_loss
from mlpf.sim.pfa import particle_flow
from mlpf.sim.pipeline import simulate

SCALING_N = (256, 1024, 2048, 4096, 10240)
PADDING = 0.21  # fraction of padded slots in the batches of upstream's timings (docs/performance.md)


def make_batch(
    B: int, N: int, device: torch.device, padding: float = PADDING, seed: int = 0
) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    lengths = (N * (1 - 2 * padding * torch.rand(B, generator=g))).long().clamp(1, N)
    lengths[0] = N
    mask = torch.arange(N)[None, :] < lengths[:, None]
    X = torch.rand(B, N, 17, generator=g) * 10
    X[..., 0] = torch.randint(1, 3, (B, N), generator=g).float()
    X[..., 2] = torch.randn(B, N, generator=g)
    X[..., 5] = X[..., 1] * torch.cosh(X[..., 2])
    # Directions and helices as in an event (the calorimeter-point inputs depend on them): phi uniform,
    # tanLambda = sinh(eta), omega = charge x 3e-4 B / pt in 1/mm for the CLIC field (the parser's inverse).
    phi = 2 * torch.pi * torch.rand(B, N, generator=g)
    X[..., 3], X[..., 4] = torch.sin(phi), torch.cos(phi)
    charge = torch.randint(0, 2, (B, N), generator=g).float() * 2 - 1
    X[..., X_TAN_LAMBDA] = torch.sinh(X[..., 2])
    bfield = DETECTOR_BFIELD_TESLA["clic"]
    X[..., X_OMEGA] = charge * PT_PER_TESLA_MM * bfield / X[..., 1].clamp_min(0.1)
    y = torch.zeros(B, N, 7)
    y[..., 0] = torch.randint(0, 6, (B, N), generator=g).float()
    y[..., 2], y[..., 3], y[..., 6] = X[..., 1], X[..., 2], X[..., 5]
    y[..., 5] = 1.0
    X, y = X * mask[..., None], y * mask[..., None]
    batch = {"X": X, "ytarget": y, "ycand": y.clone(), "mask": mask}
    return {k: v.to(device) for k, v in batch.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _status_kib(key: str) -> int:
    """A `VmRSS` / `VmHWM` line of /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak_rss() -> int:
    """Reset the peak resident set size (Linux: writing 5 to clear_refs resets VmHWM); return the current RSS.

    Without the reset the peak would include import-time allocations larger than the call being measured.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss_kib() -> int:
    try:
        return _status_kib("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _timings(fn, repeats: int, warmup: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


class ReferenceEncoder(torch.nn.Module):
    """torch's nn.TransformerEncoder (pre-LN, same width, total layers) + a linear head: the in-run yardstick."""

    def __init__(self, width: int, heads: int, layers: int, ffn_multiplier: int):
        super().__init__()
        self.embed = torch.nn.Linear(17, width)
        layer = torch.nn.TransformerEncoderLayer(
            width, heads, ffn_multiplier * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(width, 16)

    def forward(self, X: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(X), src_key_padding_mask=~mask))  # True = padding here


def _throughput_model(kind: str, settings: dict[str, Any], device: torch.device):
    """(model, loss function of a batch) for one benchmarked architecture."""
    torch.manual_seed(0)
    training = validate_section("training", {})
    if kind == "reference":
        model = ReferenceEncoder(
            settings["width"], settings["num_heads"], 2 * settings["num_layers"], settings["ffn_multiplier"]
        ).to(device)
        return model, lambda b: model(b["X"], b["mask"]).pow(2).mean()
    model = build_model({**settings, "type": kind}).to(device)
    return model, lambda b: mlpf_loss(model(b["X"], b["mask"]), b, training)[0]


def _throughput_row(
    kind: str, model: torch.nn.Module, times: dict[str, list[float]], B: int
) -> dict[str, Any]:
    t_train, t_infer, t_int8 = times["train"], times["infer"], times["int8"]
    return {
        "model": kind,
        "n_params": sum(p.numel() for p in model.parameters()),
        "train_ms_per_event": 1e3 * statistics.median(t_train) / B,
        "train_ms_per_event_best": 1e3 * min(t_train) / B,
        "train_events_per_s": B / statistics.median(t_train),
        "infer_ms_per_event": 1e3 * statistics.median(t_infer) / B,
        "infer_ms_per_event_best": 1e3 * min(t_infer) / B,
        "infer_int8_ms_per_event": 1e3 * statistics.median(t_int8) / B if t_int8 else None,
    }


def bench_throughput(
    kinds: Sequence[str], settings: dict[str, Any], device: torch.device, repeats: int
) -> list[dict[str, Any]]:
    """Training step and inference times at B=16, N=256. The models take turns in every repeat, so that load
    from other processes on a shared machine hits all of them alike; median and best of the repeats."""
    B, N = 16, 256
    batch = make_batch(B, N, device)
    models = {kind: _throughput_model(kind, settings, device) for kind in kinds}
    optimisers = {kind: torch.optim.AdamW(m.parameters(), lr=1e-4) for kind, (m, _) in models.items()}
    # int8 inference as `mlpf infer` runs it (inference.precision int8, CPU only), timed in the same rounds
    quantised = {
        kind: prepare(copy.deepcopy(m).eval(), "int8", device)[0]
        for kind, (m, _) in models.items()
        if kind != "reference" and device.type == "cpu"
    }
    times: dict[str, dict[str, list[float]]] = {
        kind: {"train": [], "infer": [], "int8": []} for kind in kinds
    }

    def train_step(kind: str) -> None:
        model, loss_fn = models[kind]
        model.train()
        optimisers[kind].zero_grad(set_to_none=True)
        loss_fn(batch).backward()
        optimisers[kind].step()

    def infer(kind: str) -> None:
        model, _ = models[kind]
        model.eval()
        with torch.no_grad():
            model(batch["X"], batch["mask"])

    def infer_int8(kind: str) -> None:
        with torch.no_grad():
            quantised[kind](batch["X"], batch["mask"])

    for rep in range(repeats + 2):  # the first two rounds are warm-up
        for kind in kinds:
            steps = [("train", train_step), ("infer", infer)] + (
                [("int8", infer_int8)] if kind in quantised else []
            )
            for what, fn in steps:
                _sync(device)
                t0 = time.perf_counter()
                fn(kind)
                _sync(device)
                if rep >= 2:
                    times[kind][what].append(time.perf_counter() - t0)
    results = [_throughput_row(kind, models[kind][0], times[kind], B) for kind in kinds]
    reference = next((r for r in results if r["model"] == "reference"), None)
    for r in results:  # ratios to the yardstick of the same run (../shared anchors are quoted this way)
        if reference is not None:
            r["infer_over_reference"] = r["infer_ms_per_event"] / reference["infer_ms_per_event"]
            r["train_over_reference"] = r["train_ms_per_event"] / reference["train_ms_per_event"]
    return results


def _scaling_point(kind: str, settings: dict[str, Any], N: int, device: torch.device, repeats: int) -> dict:
    """One (backbone, N) point; run in a fresh process so that the CPU peak-RSS growth is this call's."""
    torch.manual_seed(0)
    if kind == "reference":
        model = (
            ReferenceEncoder(
                settings["width"],
                settings["num_heads"],
                2 * settings["num_layers"],
                settings["ffn_multiplier"],
            )
            .to(device)
            .eval()
        )
    else:
        model = build_model({**settings, "type": kind}).to(device).eval()
    small = make_batch(1, 64, device, padding=0.0)
    with torch.no_grad():
        model(small["X"], small["mask"])
    batch = make_batch(1, N, device, padding=0.0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss0 = _reset_peak_rss()
    with torch.no_grad():
        times = _timings(lambda: model(batch["X"], batch["mask"]), repeats, 1, device)
    if device.type == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mb = (_peak_rss_kib() - rss0) / 1024
    return {
        "model": kind,
        "N": N,
        "infer_ms": 1e3 * statistics.median(times),
        "infer_ms_best": 1e3 * min(times),
        "peak_extra_mb": peak_mb,
    }


# Elements of a fastsim ttbar event and per overlaid gamma gamma -> hadrons interaction (fastsim ttbar: ~140 tracks
# and clusters per event, PU10: ~320), to pick the pile-up that brings an event to a wanted size.
TTBAR_ELEMENTS, ELEMENTS_PER_INTERACTION = 140, 18


def bench_baseline_pf(sizes: Sequence[int], repeats: int, seed: int = 0) -> list[dict[str, Any]]:
    """Time per event of the fast simulation's baseline PF on events of about each size (one event each)."""
    settings = validate_section("fastsim", {})
    rows = []
    for n in sizes:
        pileup = max(0.0, (n - TTBAR_ELEMENTS) / ELEMENTS_PER_INTERACTION)
        event = simulate("ttbar_pu10", 1, seed, {**settings, "pileup_mean": pileup}, show_progress=False)
        n_elements = len(event.tracks.evt) + len(event.clusters.evt)
        times = _timings(
            lambda ev=event: particle_flow(ev.tracks, ev.clusters, ev.hits), repeats, 1, torch.device("cpu")
        )
        rows.append(
            {
                "model": "baseline_pf",
                "N": n_elements,
                "requested_N": n,
                "infer_ms": 1e3 * statistics.median(times),
                "infer_ms_best": 1e3 * min(times),
                "threads": 1,
            }
        )
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--model-settings", default="{}", help="model section JSON (default: config defaults)"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and N up to 4096")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true", help="only the scaling with N")
    parser.add_argument(
        "--sizes", default=None, help="comma-separated N of the scaling (default 256,...,10240)"
    )
    parser.add_argument("--json", default=None, help="write all figures to this JSON file")
    parser.add_argument(
        "--baseline-pf", action="store_true", help="also time the fast simulation's baseline PF at the sizes"
    )
    parser.add_argument("--point", default=None, help=argparse.SUPPRESS)  # internal: one scaling point
    return parser


def main() -> int:
    args = _parser().parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    settings = validate_section("model", json.loads(args.model_settings))
    repeats = 3 if args.quick else args.repeats

    if args.point:
        kind, n = args.point.split(":")
        n_rep = 3 if int(n) >= 4096 else repeats
        print(json.dumps(_scaling_point(kind, settings, int(n), device, n_rep)))
        return 0

    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model_settings": settings,
        "throughput": [],
        "scaling": [],
    }
    print(f"# device {results['device']}, {results['threads']} threads, torch {torch.__version__}")
    kinds = () if args.skip_throughput else ("transformer", "gnn_lsh", "reference")
    results["throughput"] = _print_throughput(kinds, settings, device, repeats)
    if not args.skip_scaling:
        results["scaling"] = _print_scaling(args, repeats)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:  # noqa: PTH123 - a plain results dump
            json.dump(results, f, indent=2)
    return 0


def _print_throughput(
    kinds: tuple[str, ...], settings: dict[str, Any], device: torch.device, repeats: int
) -> list[dict[str, Any]]:
    """Training and inference speed of each backbone, printed as a table row each."""
    print(
        "| model | parameters | training ms/event (best) | inference ms/event (best) | int8 inference ms/event "
        "| training / yardstick | inference / yardstick |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = bench_throughput(kinds, settings, device, repeats)
    for r in rows:
        int8 = f"{r['infer_int8_ms_per_event']:.2f}" if r["infer_int8_ms_per_event"] is not None else "-"
        print(
            f"| {r['model']} | {r['n_params'] / 1e6:.3f} M | "
            f"{r['train_ms_per_event']:.2f} ({r['train_ms_per_event_best']:.2f}) | "
            f"{r['infer_ms_per_event']:.2f} ({r['infer_ms_per_event_best']:.2f}) | {int8} | "
            f"{r.get('train_over_reference', math.nan):.3f} | {r.get('infer_over_reference', math.nan):.3f} |",
            flush=True,
        )
    return rows


def _print_scaling(args: argparse.Namespace, repeats: int) -> list[dict[str, Any]]:
    """Inference time and memory against N, each point in its own process, then the baseline PF if asked."""
    print("\n| model | N | inference ms, B=1 (best) | peak extra memory MB |")
    print("|---|---|---|---|")
    sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else SCALING_N
    sizes = [n for n in sizes if not args.quick or n <= 4096]
    rows = []
    for kind in ("gnn_lsh", "transformer"):
        for n in sizes:
            r = _scaling_point_in_subprocess(args, kind, n, repeats)
            rows.append(r)
            print(
                f"| {kind} | {n} | {r['infer_ms']:.1f} ({r['infer_ms_best']:.1f}) | {r['peak_extra_mb']:.0f} |",
                flush=True,
            )
    if args.baseline_pf:
        for r in bench_baseline_pf(sizes, repeats):
            rows.append(r)
            print(
                f"| baseline_pf | {r['N']} | {r['infer_ms']:.1f} ({r['infer_ms_best']:.1f}) | |", flush=True
            )
    return rows


def _scaling_point_in_subprocess(args: argparse.Namespace, kind: str, n: int, repeats: int) -> dict[str, Any]:
    """One scaling point measured by this script in a fresh process (a clean peak memory)."""
    cmd = [
        sys.executable,
        __file__,
        "--device",
        args.device,
        "--model-settings",
        args.model_settings,
        "--repeats",
        str(repeats),
        "--point",
        f"{kind}:{n}",
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
