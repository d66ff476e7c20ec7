"""Response statistics: median, IQR (p75 - p25) and IQR/median, overall and in bins, with bootstrap errors.

Definitions as upstream MLPF `med_iqr` (reference section 9). Percentiles use numpy's default (linear)
interpolation. Bootstrap uncertainties are the standard deviation of each statistic over resamples drawn with
replacement by a seeded numpy Generator, so the same inputs and seed give the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def med_iqr(values: np.ndarray) -> tuple[float, float]:
    """(median, p75 - p25) of the finite values; NaN for an empty array."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    p25, p50, p75 = np.percentile(values, [25.0, 50.0, 75.0])
    return float(p50), float(p75 - p25)


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(num, den)


def _resampled_quartiles(ordered: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """p25, p50, p75 of one bootstrap resample of the sorted array `ordered`, in O(n).

    A resample is a multiset of the input, so it is fully described by how often each sorted value was drawn:
    the k-th smallest resampled value is ordered[j] for the first j whose cumulative count exceeds k. This
    gives numpy's default (linear) percentiles of the resample without sorting it.
    """
    n = len(ordered)
    cumulative = np.cumsum(np.bincount(rng.integers(0, n, size=n), minlength=n))
    position = np.array([0.25, 0.5, 0.75]) * (n - 1)
    low = np.floor(position)
    at_low = ordered[np.searchsorted(cumulative, low, side="right")]
    at_high = ordered[np.minimum(np.searchsorted(cumulative, low + 1, side="right"), n - 1)]
    return at_low + (position - low) * (at_high - at_low)


def bootstrap(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> dict[str, float]:
    """Bootstrap standard deviations of median, IQR and IQR/median (resampling with replacement)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2 or n_resamples < 2:
        return {"median_err": float("nan"), "iqr_err": float("nan"), "iqr_over_median_err": float("nan")}
    ordered = np.sort(values)
    quartiles = np.array([_resampled_quartiles(ordered, rng) for _ in range(n_resamples)])
    median, iqr = quartiles[:, 1], quartiles[:, 2] - quartiles[:, 0]
    return {
        "median_err": float(np.std(median, ddof=1)),
        "iqr_err": float(np.std(iqr, ddof=1)),
        "iqr_over_median_err": float(np.std(_ratio(iqr, median), ddof=1)),
    }


def summarize(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> dict[str, Any]:
    """Median, IQR, IQR/median, their bootstrap errors and the entry count of a response sample."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    median, iqr = med_iqr(values)
    out: dict[str, Any] = {
        "n": len(values),
        "median": median,
        "iqr": iqr,
        "iqr_over_median": float(_ratio(iqr, median)),
    }
    out.update(bootstrap(values, n_resamples, rng))
    return out


def summarize_binned(
    values: np.ndarray,
    x: np.ndarray,
    edges: list[float] | np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
    min_entries: int,
) -> dict[str, list[Any]]:
    """`summarize` in bins of `x` (e.g. generator jet pT): lists aligned with the bins; NaN where a bin has
    fewer than `min_entries` entries. Bin i is [edges[i], edges[i+1])."""
    values = np.asarray(values, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    ok = np.isfinite(values) & np.isfinite(x)
    values, x = values[ok], x[ok]
    which = np.digitize(x, edges) - 1
    keys = ("n", "median", "iqr", "iqr_over_median", "median_err", "iqr_err", "iqr_over_median_err")
    out: dict[str, list[Any]] = {"edges": edges.tolist(), **{key: [] for key in keys}}
    for i in range(len(edges) - 1):
        in_bin = values[which == i]
        if len(in_bin) >= max(min_entries, 1):
            stats = summarize(in_bin, n_resamples, rng)
        else:
            stats = dict.fromkeys(keys, float("nan"))
            stats["n"] = len(in_bin)
        for key in keys:
            out[key].append(stats[key])
    return out


def efficiency(
    passed: np.ndarray | int, total: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binomial efficiency k/n with a 68.3% Wilson score interval, returned as (eff, err_low, err_high).

    Wilson's interval stays inside [0, 1] and is non-zero at k = 0 or k = n, where the naive
    sqrt(eff(1-eff)/n) collapses (see Ullrich and Xu, arXiv:physics/0701199, on binomial errors). NaN for n = 0.
    """
    k = np.asarray(passed, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    z = 1.0  # one standard deviation
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = k / n
        centre = (k + z**2 / 2) / (n + z**2)
        half = z * np.sqrt(k * (n - k) / n + z**2 / 4) / (n + z**2)
    low = np.clip(eff - (centre - half), 0.0, None)
    high = np.clip((centre + half) - eff, 0.0, None)
    empty = n == 0
    return np.where(empty, np.nan, eff), np.where(empty, np.nan, low), np.where(empty, np.nan, high)
