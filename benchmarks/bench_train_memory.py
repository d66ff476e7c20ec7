"""Peak memory and throughput of `mlpf train` for 1x, 10x and 100x the default run's training events.

The default run trains on 6 files x 1000 events of ttbar and of qq (config/config.yaml, shards.train). The
inputs are links to the given shards under distinct names (`copies` x `scale` links to each: with
`--copies 6` two 1000-event files stand for the default's twelve), so events repeat but files, row groups and
the catalogue grow as they would with generated shards. Every run takes the
same number of optimiser steps (training.max_steps) with the default model, and the validation set is held at
the 1x size (dataset.validation_fraction / scale), so that the end-of-run validation costs the same at every
scale: the training events are 1x, 10x and 100x the default's.

Each run is a fresh process (`mlpf.cli.main` under a wrapper) and reports:
- peak RSS of the training process (its ru_maxrss);
- peak PSS of the process tree, sampled every SAMPLE_S: the training process and its DataLoader workers, the
  pages they share (libraries, the pages a forked worker has not written) counted once. A worker's own RSS says
  little: a forked process starts with its parent's peak.
- CPU seconds of the training process and its workers (less sensitive to the machine's load than wall time);
- wall time; steps/s of the run's progress bar (training steps, and the end-of-run validation, over the time
  the bar was open); steps/s of the steps alone and the time spent waiting for data (the loop's log line).

`--src DIR --legacy` measures another checkout's `src` (e.g. the in-memory loader before streaming, from
`git archive <commit> src | tar -x -C /tmp/before`), without the settings it does not know.

Usage:
    python benchmarks/bench_train_memory.py \\
        --shards results/datasets/fastsim/clusters/{ttbar,qq}/{0,1,2,3,4,5}.parquet \\
        --scales 1 10 100 --max-steps 100 --threads 1 --json after.json
    python benchmarks/bench_train_memory.py --shards ... --scales 1 10 --src /tmp/before/src --legacy
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE_S = 0.25  # PSS sampling period: short against a run (minutes), cheap (a few /proc reads)
DEFAULT_VALIDATION_FRACTION = 0.2  # dataset.validation_fraction of the default run

_WRAPPER = r"""
import json, resource, sys
from mlpf.cli import main
rc = main(sys.argv[2:])
own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
usage = {"rc": rc, "self_kb": own.ru_maxrss, "cpu_s": own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime}
with open(sys.argv[1], "w") as f:
    json.dump(usage, f)
"""
_LOOP_LINE = re.compile(
    r"(\d+) training steps in ([\d.]+) s \(([\d.]+) steps/s\), ([\d.]+) s of it waiting for data; "
    r"at most (\d+) events held"
)
_BAR_RATE = re.compile(r"train: 100%.*?([\d.]+)(step/s|s/step)")


def link_inputs(shards: list[Path], links: int, scale: int, root: Path) -> list[Path]:
    """`links` links to each shard under distinct names, in root/x<scale>/."""
    out = root / f"x{scale}"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(links):
        for shard in shards:
            link = out / f"{shard.parent.name}_{shard.stem}_{k:03d}.parquet"
            if not link.exists():
                link.symlink_to(shard.resolve())
            paths.append(link)
    return paths


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(parents.get(p, []))
    return found


def _pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def run(paths: list[Path], scale: int, args: argparse.Namespace, out: Path) -> dict:
    training = {"max_steps": args.max_steps, "epochs": 1, "checkpoint_every": 0}
    if not args.legacy:
        training["num_workers"] = args.num_workers
    dataset = {"validation_fraction": DEFAULT_VALIDATION_FRACTION / scale}
    usage_file = out / "usage.json"
    argv = ["train", "--train", *map(str, paths), "--settings", json.dumps(training)]
    argv += [
        "--dataset-settings",
        json.dumps(dataset),
        "--threads",
        str(args.threads),
        "--output-dir",
        str(out),
    ]
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(args.src).resolve()), env.get("PYTHONPATH", "")])
    started = time.perf_counter()
    with (out / "train.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRAPPER, str(usage_file), *argv], stdout=log, stderr=log, env=env
        )
        peak_pss = 0
        while proc.poll() is None:
            peak_pss = max(peak_pss, sum(_pss_kb(p) for p in _tree(proc.pid)))
            time.sleep(SAMPLE_S)
    wall = time.perf_counter() - started
    text = (out / "train.log").read_text()
    if proc.returncode != 0 or not usage_file.exists():
        raise SystemExit(f"training failed at scale {scale}:\n{text[-3000:]}")
    usage = json.loads(usage_file.read_text())
    info = json.loads((out / "model.json").read_text())
    result = {
        "scale": scale,
        "files": len(paths),
        "train_events": info["n_train_events"],
        "validation_events": info["n_validation_events"],
        "steps": info["steps"],
        "main_rss_mb": usage["self_kb"] / 1024,
        "tree_pss_mb": peak_pss / 1024,
        "wall_s": wall,
        "cpu_s": usage["cpu_s"],
    }
    bar = _BAR_RATE.findall(text)
    if bar:
        value, unit = bar[-1]
        result["bar_steps_per_s"] = float(value) if unit == "step/s" else 1.0 / float(value)
    loop = _LOOP_LINE.search(text)
    if loop:
        result["loop_steps_per_s"] = float(loop.group(3))
        result["data_wait_s"] = float(loop.group(4))
        result["peak_events_held"] = int(loop.group(5))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shards", nargs="+", type=Path, required=True, help="the default run's training shards"
    )
    parser.add_argument("--scales", nargs="+", type=int, default=[1, 10, 100])
    parser.add_argument("--copies", type=int, default=1, help="links to each shard at 1x")
    parser.add_argument("--max-steps", type=int, default=100, help="optimiser steps of every run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--num-workers", type=int, default=1, help="training.num_workers")
    parser.add_argument("--workdir", type=Path, default=None, help="links and outputs (default: a temp dir)")
    parser.add_argument("--src", default=None, help="measure the mlpf package under this src directory")
    parser.add_argument("--legacy", action="store_true", help="the measured code predates num_workers")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_train_memory_"))
    results = []
    for scale in args.scales:
        paths = link_inputs(args.shards, args.copies * scale, scale, workdir / "inputs")
        out = workdir / f"run_x{scale}"
        out.mkdir(parents=True, exist_ok=True)
        result = run(paths, scale, args, out)
        results.append(result)
        print(json.dumps(result), flush=True)
    base = results[0]
    print(
        "\n| scale | files | training events | steps | training process peak RSS MB | process tree peak PSS MB "
        "| vs 1x (RSS / PSS) | wall s | CPU s | steps/s (bar) | steps/s (steps) | data wait s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['scale']}x | {r['files']} | {r['train_events']} | {r['steps']} | {r['main_rss_mb']:.0f} "
            f"| {r['tree_pss_mb']:.0f} "
            f"| {r['main_rss_mb'] / base['main_rss_mb']:.3f} / {r['tree_pss_mb'] / base['tree_pss_mb']:.3f} "
            f"| {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r.get('bar_steps_per_s', float('nan')):.3f} "
            f"| {r.get('loop_steps_per_s', float('nan')):.3f} | {r.get('data_wait_s', float('nan')):.1f} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": results})
        )


if __name__ == "__main__":
    main()
