"""The `mlpf plots` stage: every figure of every evaluated sample plus the training curves.

Output layout: `<output>/<sample>/<figure>.{png,pdf}`, `<output>/summary/resolution_summary.{png,pdf}` (all
samples side by side) and `<output>/training/<figure>.{png,pdf}`. The whole
directory is written to a temporary name and renamed at the end, so it appears only when complete.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from mlpf.atomic import atomic_directory
from mlpf.errors import InputFileError
from mlpf.provenance import merge_records

from ..evaluation import read_responses
from .classes import plot_class_response, plot_efficiency, plot_kinematics
from .response import plot_binned, plot_distribution, plot_response
from .style import labelled_with
from .summary import plot_summary
from .timing import plot_timing
from .training import plot_history, read_history

log = logging.getLogger(__name__)

# Histogram ranges of the response figures (response = reco / gen).
JET_RESPONSE_BINS = np.linspace(0.5, 1.5, 81)
EVENT_RESPONSE_BINS = np.linspace(0.0, 2.0, 81)


def read_metrics(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputFileError(f"cannot read metrics JSON ({type(exc).__name__})", path=path) from None


def _flat(array: ak.Array) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(array, axis=None)), dtype=np.float64)


def _jet_text(metadata: dict[str, Any]) -> str | None:
    jets = metadata.get("provenance", {}).get("settings", {}).get("jets")
    if not jets:
        return None
    return f"ee_genkt R = {jets['radius']:g}, $p_T$ > {jets['min_pt']:g} GeV"


def sample_figures(
    responses: ak.Array, metadata: dict[str, Any], metrics: dict[str, Any] | None, directory: Path
) -> list[Path]:
    """All figures of one sample."""
    sample = metadata.get("sample", directory.name)
    jet_text = _jet_text(metadata)
    written: list[Path] = []
    gen = responses["gen_jets"]
    gen_pt = _flat(gen.pt)
    with np.errstate(divide="ignore", invalid="ignore"):
        jet_resp = {reco: _flat(gen[f"{reco}_pt"]) / gen_pt for reco in ("pf", "mlpf")}
    if len(gen_pt):
        written += plot_response(
            jet_resp,
            r"Jet $p_T^{reco} / p_T^{gen}$",
            directory,
            "jet_response",
            sample,
            JET_RESPONSE_BINS,
            extra=jet_text,
        )
        top = max(float(np.percentile(gen_pt, 99.5)), 20.0)
        written += plot_distribution(
            {"truth": gen_pt, "pf": _flat(responses["pf_jets"].pt), "mlpf": _flat(responses["mlpf_jets"].pt)},
            r"Jet $p_T$ [GeV]",
            directory,
            "jet_pt",
            sample,
            np.linspace(0, top, 41),
            extra=jet_text,
            ylabel="Jets",
        )
    events = {
        name: np.asarray(ak.to_numpy(responses[name]), dtype=np.float64)
        for name in ("genmet", "met_pf", "met_mlpf", "gen_p", "p_pf", "p_mlpf")
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        met_resp = {
            reco: np.where(events["genmet"] > 0, events[f"met_{reco}"] / events["genmet"], np.nan)
            for reco in ("pf", "mlpf")
        }
        p_resp = {
            reco: np.where(events["gen_p"] > 0, events[f"p_{reco}"] / events["gen_p"], np.nan)
            for reco in ("pf", "mlpf")
        }
    if len(events["genmet"]):
        written += plot_response(
            met_resp,
            r"$p_T^{miss,reco} / p_T^{miss,gen}$",
            directory,
            "met_response",
            sample,
            EVENT_RESPONSE_BINS,
        )
        written += plot_response(
            p_resp,
            r"$|\sum \mathbf{p}^{reco}| \,/\, |\sum \mathbf{p}^{gen}|$",
            directory,
            "momentum_response",
            sample,
            EVENT_RESPONSE_BINS,
        )
        top = max(float(np.percentile(events["genmet"], 99.5)), 10.0)
        written += plot_distribution(
            {"truth": events["genmet"], "pf": events["met_pf"], "mlpf": events["met_mlpf"]},
            r"$p_T^{miss}$ [GeV]",
            directory,
            "met",
            sample,
            np.linspace(0, top, 41),
            ylabel="Events",
        )
    if metrics:
        for key, xlabel, quantity, name, extra in (
            ("jet_response", r"Generator jet $p_T$ [GeV]", "Jet $p_T$", "jet_response_vs_pt", jet_text),
            ("met_response", r"Generator $p_T^{miss}$ [GeV]", "MET", "met_response_vs_genmet", None),
            (
                "momentum_response",
                r"Generator $|\sum \mathbf{p}|$ [GeV]",
                "3-momentum",
                "momentum_response_vs_p",
                None,
            ),
        ):
            if key in metrics:
                written += plot_binned(metrics[key], xlabel, quantity, directory, name, sample, extra) or []
        per_class = metrics.get("per_class")
        if per_class:
            written += plot_efficiency(per_class, directory, sample)
            written += plot_class_response(per_class, directory, sample)
    elements = responses["elements"]
    flat_elements = {name: _flat(elements[name]) for name in elements.fields}
    written += plot_kinematics(flat_elements, directory, sample)
    return written


def _figures_of_file(path: str | Path, metrics_by_sample: dict[str, dict[str, Any]], tmp: Path) -> list[Path]:
    """All figures of one response table, under `tmp/<sample>/` (one unit of work of the process pool)."""
    responses, metadata = read_responses(path)
    sample = metadata.get("sample") or Path(path).stem
    metadata["sample"] = sample
    log.info("figures for %s (%d events)", sample, len(responses))
    with labelled_with(metadata.get("event_source")):
        return sample_figures(responses, metadata, metrics_by_sample.get(sample), tmp / sample)


def make_plots(
    responses_paths: Sequence[str | Path],
    metrics_paths: Sequence[str | Path],
    history_paths: Sequence[str | Path],
    output: str | Path,
    timing_paths: Sequence[str | Path] = (),
    jobs: int = 1,
) -> list[Path]:
    """Write all figures under `output` (replaced as a whole, atomically). Returns the final file paths.

    With `jobs` > 1 the samples are drawn in that many processes: drawing is single-threaded matplotlib, and a
    dozen samples took over two minutes on one core. Each sample's figures depend only on its own files, so
    the output is the same for any number of jobs."""
    metrics_by_sample: dict[str, dict[str, Any]] = {}
    for path in metrics_paths:
        metrics = read_metrics(path)
        metrics_by_sample[metrics.get("sample", Path(path).stem)] = metrics
    histories = [read_history(path) for path in history_paths]
    output = Path(output)
    written: list[Path] = []
    # figures of several samples (summary, training) carry the label of all their events' sources together
    all_sources = merge_records([m.get("event_source") for m in metrics_by_sample.values()])
    with atomic_directory(output) as tmp, labelled_with(all_sources):
        if jobs > 1 and len(responses_paths) > 1:
            # spawn, not fork: the parent may hold threads (pyarrow) that a forked child would inherit locked
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(jobs, len(responses_paths)), mp_context=context) as pool:
                results = pool.map(_figures_of_file, responses_paths, repeat(metrics_by_sample), repeat(tmp))
                per_file = list(results)
        else:
            per_file = [_figures_of_file(path, metrics_by_sample, tmp) for path in responses_paths]
        for files in per_file:
            written += [output / f.relative_to(tmp) for f in files]
        if metrics_by_sample:
            files = plot_summary(metrics_by_sample, tmp / "summary")
            written += [output / f.relative_to(tmp) for f in files]
        for frame in histories:
            files = plot_history(frame, tmp / "training")
            written += [output / f.relative_to(tmp) for f in files]
        if timing_paths:
            files = plot_timing(timing_paths, tmp / "timing")
            written += [output / f.relative_to(tmp) for f in files]
    log.info("wrote %d figure files under %s", len(written), output)
    return written
