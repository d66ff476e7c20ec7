"""Validation metrics computed during training: response IQR / median of jets and of MET.

The jet metric clusters the predicted, baseline-PF and target particles of the validation events with the
evaluation stage's jet code and the configured jet definition (`mlpf.evaluate.jets`, config `evaluation.jets`,
which the training receives), matches each target jet to its nearest reconstructed jet and reports IQR / median
of pT(reco) / pT(target): the paper's figure of merit (arXiv:2309.06782, jet response figures; upstream
`mlpf/jet_utils.py`), on targets instead of generator particles because the validation split carries only
element-level rows. The MET metric is the same statistic of the event's missing
transverse momentum, |sum of particle pT vectors| (`mlpf.evaluate.particles.missing_pt`, the evaluation stage's
definition), reco over target, over the events with non-zero target MET.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from mlpf.data.targets import Y_CLASS, Y_COS_PHI, Y_ENERGY, Y_ETA, Y_PT, Y_SIN_PHI
from mlpf.evaluate.jets import JetDefinition, cluster, match, matched_pt
from mlpf.evaluate.particles import missing_pt


def response_iqr_over_median(reco: np.ndarray, reference: np.ndarray) -> float:
    """IQR / median of reco / reference over entries with reference > 0 and finite reco (NaN if none)."""
    ok = (reference > 0) & np.isfinite(reco)
    if not np.any(ok):
        return float("nan")
    ratio = reco[ok] / reference[ok]
    q25, q50, q75 = np.percentile(ratio, [25, 50, 75])
    return float((q75 - q25) / q50) if q50 > 0 else float("nan")


def _particles(rows: np.ndarray, counts: np.ndarray) -> ak.Array:
    """Element rows [n, 7] of all events -> per-event `{px, py, pz, E}` of the rows with class > 0."""
    events = ak.unflatten(rows, counts)
    events = events[events[..., Y_CLASS] > 0]
    pt = events[..., Y_PT]
    return ak.zip(
        {
            "px": pt * events[..., Y_COS_PHI],
            "py": pt * events[..., Y_SIN_PHI],
            "pz": pt * np.sinh(events[..., Y_ETA]),
            "E": events[..., Y_ENERGY],
        }
    )


def jet_pt_pairs(
    reco_rows: np.ndarray, target_rows: np.ndarray, counts: np.ndarray, definition: JetDefinition
) -> tuple[np.ndarray, np.ndarray]:
    """(pT of the matched reco jet, pT) of every target jet of the events (reco NaN where none matched)."""
    target_jets = cluster(_particles(target_rows, counts), definition)
    reco_jets = cluster(_particles(reco_rows, counts), definition)
    index, _ = match(target_jets, reco_jets, definition.match_dr)
    reco_pt = ak.to_numpy(ak.flatten(matched_pt(reco_jets, index)))
    return np.asarray(reco_pt, dtype=np.float64), np.asarray(
        ak.to_numpy(ak.flatten(target_jets.pt)), np.float64
    )


def met_pairs(
    reco_rows: np.ndarray, target_rows: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(reco MET, target MET) of every event."""
    reco_met = missing_pt(_particles(reco_rows, counts))
    target_met = missing_pt(_particles(target_rows, counts))
    return np.asarray(reco_met, np.float64), np.asarray(target_met, np.float64)


def jet_response_iqr_over_median(
    reco_rows: np.ndarray, target_rows: np.ndarray, counts: np.ndarray, definition: JetDefinition
) -> float:
    """Jet pT response IQR / median of reco jets matched to target jets (NaN if no jet matched)."""
    return response_iqr_over_median(*jet_pt_pairs(reco_rows, target_rows, counts, definition))


def met_response_iqr_over_median(reco_rows: np.ndarray, target_rows: np.ndarray, counts: np.ndarray) -> float:
    """MET response IQR / median of the events (NaN if no event has target MET > 0)."""
    return response_iqr_over_median(*met_pairs(reco_rows, target_rows, counts))


class ResponseAccumulator:
    """The jet and MET responses of MLPF and of the baseline PF over validation batches, in bounded memory.

    Element rows are kept only until `chunk_events` events have come, then reduced to a few numbers per jet and
    per event (jets and MET are per event, so the result is that of all rows at once).
    """

    KEYS = ("jet", "jet_pf", "met", "met_pf")

    def __init__(self, definition: JetDefinition, chunk_events: int) -> None:
        self.definition, self.chunk_events = definition, chunk_events
        self._rows: dict[str, list[np.ndarray]] = {"pred": [], "cand": [], "target": [], "counts": []}
        self._n_events = 0
        self._pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in self.KEYS}

    def add(self, pred: np.ndarray, cand: np.ndarray, target: np.ndarray, counts: np.ndarray) -> None:
        """Element rows [n, 7] of a batch's events and the elements of each event."""
        for key, value in zip(self._rows, (pred, cand, target, counts), strict=True):
            self._rows[key].append(value)
        self._n_events += len(counts)
        if self._n_events >= self.chunk_events:
            self._reduce()

    def _reduce(self) -> None:
        if not self._n_events:
            return
        rows = {k: np.concatenate(v) for k, v in self._rows.items()}
        target, counts = rows["target"], rows["counts"]
        self._pairs["jet"].append(jet_pt_pairs(rows["pred"], target, counts, self.definition))
        self._pairs["jet_pf"].append(jet_pt_pairs(rows["cand"], target, counts, self.definition))
        self._pairs["met"].append(met_pairs(rows["pred"], target, counts))
        self._pairs["met_pf"].append(met_pairs(rows["cand"], target, counts))
        self._rows = {k: [] for k in self._rows}
        self._n_events = 0

    def iqr_over_median(self) -> dict[str, float]:
        """IQR / median of each response (keys as KEYS) over all events added."""
        self._reduce()
        out = {}
        for key, pairs in self._pairs.items():
            reco = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0)
            reference = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0)
            out[key] = response_iqr_over_median(reco, reference)
        return out
