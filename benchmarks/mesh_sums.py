"""The kernel sums on the (eta, phi) mesh against the exact pairwise ones, on real hit-level events.

For N elements cut from hit-level shards as the hit-level timing cuts them (benchmarks/bench_hits.py: a random
subset of one event, overlaid events above its size), the 14 link inputs (mlpf.model.geometry.link_features)
computed pairwise and on the mesh (mlpf.model.mesh_sums): per input the correlation and the mean absolute
difference of the two, and the CPU time of each on one thread (the best of `--repeats` after a warm-up).

Usage (in a hit-level run's directory, e.g. after `snakemake --cores all results/plots --configfile
config/hits.yaml`):
    python benchmarks/mesh_sums.py --shards results/datasets/fastsim_hits/hits/ttbar/2.parquet
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_hits import SIZES, real_elements  # the hit-level timing's way of cutting N elements

from mlpf.model.geometry import (
    CALORIMETER_HALF_LENGTH_MM,
    CALORIMETER_RADIUS_MM,
    calorimeter_direction,
    link_features,
)


def _best_cpu_s(inputs: tuple[torch.Tensor, ...], mesh: bool, repeats: int) -> float:
    """Best CPU time of `repeats` calls of link_features after a warm-up (compilation of the cell lists, first
    allocation of the mesh)."""
    link_features(*inputs, mesh=mesh)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        link_features(*inputs, mesh=mesh)
        times.append(time.process_time() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shards", type=Path, nargs="+", required=True, help="hit-level dataset shards")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("N       pairwise  mesh     min corr  max mean |diff|  (over the 14 inputs, log(1 + sum) scale)")
    for n in args.sizes:
        X = torch.from_numpy(real_elements(args.shards, n))[None]
        mask = torch.ones(1, n, dtype=torch.bool)
        eta, phi = calorimeter_direction(X, CALORIMETER_RADIUS_MM, CALORIMETER_HALF_LENGTH_MM)
        exact = link_features(X, mask, eta, phi)
        mesh = link_features(X, mask, eta, phi, mesh=True)
        columns = exact.shape[-1]
        corr = [np.corrcoef(exact[0, :, c].numpy(), mesh[0, :, c].numpy())[0, 1] for c in range(columns)]
        diff = (exact - mesh).abs().mean(dim=(0, 1))
        t_exact = _best_cpu_s((X, mask, eta, phi), False, args.repeats)
        t_mesh = _best_cpu_s((X, mask, eta, phi), True, args.repeats)
        print(
            f"{n:<7d} {t_exact * 1e3:6.1f} ms {t_mesh * 1e3:6.1f} ms {min(corr):8.4f}  {diff.max().item():8.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
