"""Per-class particle metrics: efficiency, fake rate, momentum/energy response and the confusion matrix.

Definitions (upstream MLPF notebooks, reference section 9), per class c and element:
    efficiency = N(target = c and reco = c) / N(target = c)
    fake rate  = N(target != c and reco = c) / N(reco = c)
binned in the element's reference scale (track pT for tracks, cluster energy for clusters; the variables the
paper's notebooks bin in) with binomial (Wilson) errors; response = reco / target pT (energy) on elements where both are class c.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpf.data.features import ELEM_TYPE_TRACK
from mlpf.data.targets import CLASS_NAMES

from .stats import efficiency, summarize, summarize_binned

# Name of the binning variable of efficiencies and fake rates in the metrics JSON.
ELEMENT_SCALE = "track_pt_or_cluster_energy"


def element_scale(elements: dict[str, np.ndarray]) -> np.ndarray:
    """Track pT for tracks, cluster energy for clusters (GeV)."""
    return np.where(
        elements["element_type"] == ELEM_TYPE_TRACK, elements["element_pt"], elements["element_energy"]
    )


def _binned_efficiency(passed: np.ndarray, x: np.ndarray, edges: np.ndarray) -> dict[str, list[float]]:
    """Efficiency of the boolean `passed` over all entries, in bins of `x`."""
    total, _ = np.histogram(x, bins=edges)
    good, _ = np.histogram(x[passed], bins=edges)
    eff, low, high = efficiency(good, total)
    return {"n": total.tolist(), "value": eff.tolist(), "err_low": low.tolist(), "err_high": high.tolist()}


def class_metrics(
    elements: dict[str, np.ndarray],
    reco: str,
    edges: list[float],
    n_resamples: int,
    rng: np.random.Generator,
    min_entries: int,
) -> dict[str, Any]:
    """Metrics of one reconstruction (`mlpf` or `pf`) for every particle class.

    `elements` holds flat per-element arrays: `element_type`, `element_pt`, `element_energy`, `target_class`,
    `target_pt`,
    `target_energy`, `{reco}_class`, `{reco}_pt`, `{reco}_energy`.
    """
    edges_arr = np.asarray(edges, dtype=np.float64)
    target = elements["target_class"]
    pred = elements[f"{reco}_class"]
    x = element_scale(elements)
    out: dict[str, Any] = {}
    for code, name in enumerate(CLASS_NAMES):
        if code == 0:
            continue
        is_target, is_pred = target == code, pred == code
        both = is_target & is_pred
        eff, eff_lo, eff_hi = efficiency(both.sum(), is_target.sum())
        fake, fake_lo, fake_hi = efficiency((is_pred & ~is_target).sum(), is_pred.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            pt_resp = elements[f"{reco}_pt"][both] / elements["target_pt"][both]
            e_resp = elements[f"{reco}_energy"][both] / elements["target_energy"][both]
        out[name] = {
            "n_target": int(is_target.sum()),
            "n_reco": int(is_pred.sum()),
            "efficiency": float(eff),
            "efficiency_err": [float(eff_lo), float(eff_hi)],
            "fake_rate": float(fake),
            "fake_rate_err": [float(fake_lo), float(fake_hi)],
            "pt_response": summarize(pt_resp, n_resamples, rng),
            "energy_response": summarize(e_resp, n_resamples, rng),
            "binned": {
                "variable": ELEMENT_SCALE,
                "edges": edges_arr.tolist(),
                "efficiency": _binned_efficiency(is_pred[is_target], x[is_target], edges_arr),
                "fake_rate": _binned_efficiency(~is_target[is_pred], x[is_pred], edges_arr),
                "energy_response": summarize_binned(
                    e_resp, elements["target_energy"][both], edges_arr, n_resamples, rng, min_entries
                ),
            },
        }
    return out


def confusion_matrix(target: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    """Counts [target class][reco class] over all elements (classes 0..5)."""
    n = len(CLASS_NAMES)
    counts = np.bincount(target.astype(np.int64) * n + pred.astype(np.int64), minlength=n * n)
    return counts.reshape(n, n).tolist()
