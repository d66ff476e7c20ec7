"""The `mlpf evaluate` stage: from one predictions file to the metrics JSON and the response table.

Jets, MET and total 3-momentum of MLPF, the baseline PF and the target particles are compared with the
generator truth of the same events; per-class element metrics compare MLPF and PF with the targets.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq

from mlpf.atomic import write_text_atomic
from mlpf.data.features import N_FEATURES, X_ENERGY, X_PT, X_TYPE
from mlpf.data.parquet import read_metadata, reading, write_table
from mlpf.data.targets import N_PARTICLE_COLUMNS, Y_CLASS, Y_ENERGY, Y_ETA, Y_PT
from mlpf.errors import ConfigError
from mlpf.provenance import provenance

from . import jets as jetlib
from .classes import class_metrics, confusion_matrix
from .columns import RECO_FIELDS
from .particles import missing_pt, reco_particles, rows_matrix, total_momentum, truth_particles
from .reader import read_predictions
from .stats import summarize, summarize_binned

log = logging.getLogger(__name__)

# Reconstructions whose per-class element metrics are reported (the target is the reference there).
CLASS_RECOS: tuple[str, ...] = ("mlpf", "pf")
# Parquet key-value metadata key holding the producing settings (as in contract section 2).


def _summary_with_bins(
    response: np.ndarray,
    x: np.ndarray,
    edges: list[float],
    variable: str,
    settings: dict[str, Any],
    rng: np.random.Generator,
) -> dict[str, Any]:
    out = summarize(response, settings["bootstrap"], rng)
    binned = summarize_binned(response, x, edges, settings["bootstrap"], rng, settings["min_bin_entries"])
    out["binned"] = {"variable": variable, **binned}
    return out


def _event_response(reco: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """reco / gen per event; NaN where the generator quantity is zero (the ratio is undefined there)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gen > 0, reco / gen, np.nan)


def _elements(events: ak.Array) -> dict[str, np.ndarray]:
    """Flat per-element arrays for the class metrics; elements where no collection has a particle are dropped
    (they enter neither an efficiency nor a fake-rate count)."""
    x, counts = rows_matrix(events["X"], N_FEATURES)
    out: dict[str, np.ndarray] = {
        "event": np.repeat(np.arange(len(counts)), counts),
        "element_type": x[:, X_TYPE].astype(np.int8),
        "element_pt": x[:, X_PT].astype(np.float32),
        "element_energy": x[:, X_ENERGY].astype(np.float32),
    }
    for reco, field in RECO_FIELDS.items():
        rows, _ = rows_matrix(events[field], N_PARTICLE_COLUMNS)
        out[f"{reco}_class"] = rows[:, Y_CLASS].astype(np.int8)
        for name, column in (("pt", Y_PT), ("eta", Y_ETA), ("energy", Y_ENERGY)):
            out[f"{reco}_{name}"] = rows[:, column].astype(np.float32)
    keep = (out["target_class"] != 0) | (out["pf_class"] != 0) | (out["mlpf_class"] != 0)
    return {key: value[keep] for key, value in out.items()}


def _jet_metrics(
    gen_particles: ak.Array,
    particles: dict[str, ak.Array],
    settings: dict[str, Any],
    rng: np.random.Generator,
) -> tuple[dict[str, Any], ak.Array, dict[str, ak.Array]]:
    """Cluster, match and summarise jets. Returns (metrics with `jets` and `jet_response`, generator jets with
    their matched reco pT and Delta R per reconstruction, reconstructed jets per reconstruction)."""
    definition = jetlib.JetDefinition.from_settings(settings["jets"])
    gen_jets = jetlib.cluster(gen_particles, definition)
    reco_jets = {reco: jetlib.cluster(p, definition) for reco, p in particles.items()}
    fields: dict[str, Any] = {name: gen_jets[name] for name in ("pt", "eta", "phi", "energy")}
    for reco, jets in reco_jets.items():
        index, dr = jetlib.match(gen_jets, jets, definition.match_dr)
        fields[f"{reco}_pt"] = jetlib.matched_pt(jets, index)
        fields[f"{reco}_dr"] = dr
    # Statistics in float64; the stored table in float32 (halves it, far below any response's precision).
    matched = ak.zip({name: ak.values_astype(value, np.float32) for name, value in fields.items()})
    flat = {
        name: np.asarray(ak.to_numpy(ak.flatten(v, axis=1)), dtype=np.float64) for name, v in fields.items()
    }
    n_gen = len(flat["pt"])
    metrics: dict[str, Any] = {
        "jets": {
            **settings["jets"],
            "n_gen_jets": n_gen,
            "n_reco_jets": {reco: int(ak.sum(ak.num(j, axis=1))) for reco, j in reco_jets.items()},
        },
        "jet_response": {},
    }
    for reco in particles:
        with np.errstate(divide="ignore", invalid="ignore"):
            response = flat[f"{reco}_pt"] / flat["pt"]
        summary = _summary_with_bins(
            response, flat["pt"], settings["jet_pt_bins"], "gen_jet_pt", settings, rng
        )
        summary["n_matched"] = summary["n"]
        summary["matched_fraction"] = summary["n"] / n_gen if n_gen else float("nan")
        metrics["jet_response"][reco] = summary
    return metrics, matched, reco_jets


def _event_metrics(
    genmet: np.ndarray,
    gen_particles: ak.Array,
    particles: dict[str, ak.Array],
    settings: dict[str, Any],
    rng: np.random.Generator,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """MET and |sum p| responses. Returns (metrics with `met_response` and `momentum_response`, per-event
    values for the response table)."""
    gen_p = total_momentum(gen_particles)
    values: dict[str, np.ndarray] = {"genmet": genmet, "gen_p": gen_p}
    metrics: dict[str, Any] = {"met_response": {}, "momentum_response": {}}
    for reco, p in particles.items():
        met, mom = missing_pt(p), total_momentum(p)
        values[f"met_{reco}"], values[f"p_{reco}"] = met, mom
        metrics["met_response"][reco] = _summary_with_bins(
            _event_response(met, genmet), genmet, settings["met_bins"], "genmet", settings, rng
        )
        metrics["momentum_response"][reco] = _summary_with_bins(
            _event_response(mom, gen_p), gen_p, settings["momentum_bins"], "gen_p", settings, rng
        )
    return metrics, values


def _element_metrics(
    elements: dict[str, np.ndarray], settings: dict[str, Any], rng: np.random.Generator
) -> dict[str, Any]:
    """Per-class efficiency, fake rate and response, and the confusion matrices, of MLPF and PF."""
    return {
        "per_class": {
            reco: class_metrics(
                elements,
                reco,
                settings["energy_bins"],
                settings["bootstrap"],
                rng,
                settings["min_bin_entries"],
            )
            for reco in CLASS_RECOS
        },
        "confusion": {
            "axes": "[target class][reco class], classes 0..5",
            **{
                reco: confusion_matrix(elements["target_class"], elements[f"{reco}_class"])
                for reco in CLASS_RECOS
            },
        },
    }


def evaluate_events(events: ak.Array, settings: dict[str, Any]) -> tuple[dict[str, Any], ak.Array]:
    """Compute the metrics (a JSON-ready dict) and the per-event response table of a set of events.

    One seeded Generator serves every bootstrap in a fixed order, so the same inputs give the same numbers.
    """
    rng = np.random.default_rng(settings["seed"])
    n_events = len(events)
    gen_particles = truth_particles(events["truth"])
    particles = {reco: reco_particles(events[field]) for reco, field in RECO_FIELDS.items()}

    jet_metrics, matched, reco_jets = _jet_metrics(gen_particles, particles, settings, rng)
    genmet = np.asarray(ak.to_numpy(events["genmet"]), dtype=np.float64)
    event_metrics, event_values = _event_metrics(genmet, gen_particles, particles, settings, rng)
    elements = _elements(events)
    metrics = {
        "n_events": n_events,
        **jet_metrics,
        **event_metrics,
        **_element_metrics(elements, settings, rng),
    }

    element_counts = np.bincount(elements.pop("event"), minlength=n_events)
    responses = ak.zip(
        {
            "gen_jets": matched,
            **{
                f"{reco}_jets": ak.values_astype(j[["pt", "eta"]], np.float32)
                for reco, j in reco_jets.items()
            },
            **{name: ak.Array(value.astype(np.float32)) for name, value in event_values.items()},
            "elements": ak.unflatten(ak.zip(elements), element_counts),
        },
        depth_limit=1,
    )
    return metrics, responses


def json_ready(value: Any) -> Any:
    """NaN and inf become null (strict JSON); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_responses(responses: ak.Array, path: str | Path, metadata: dict[str, Any]) -> None:
    """Write the response table as parquet with the producing settings in the key-value metadata."""
    write_table(ak.to_arrow_table(responses, extensionarray=False), path, json_ready(metadata))


def read_responses(path: str | Path) -> tuple[ak.Array, dict[str, Any]]:
    """Read a response table and its metadata (sample, model, settings)."""
    with reading(path):
        table = pq.read_table(path)
    return ak.from_arrow(table), read_metadata(path)


def run(
    predictions: str | Path,
    sample: str,
    model: str,
    settings: dict[str, Any],
    metrics_path: str | Path,
    responses_path: str | Path,
) -> dict[str, Any]:
    """Evaluate one predictions file; write the metrics JSON and the response parquet atomically."""
    events = read_predictions(predictions)
    log.info("evaluating %d events of %s (model %s)", len(events), sample, model)
    metrics, responses = evaluate_events(events, settings)
    origin = read_metadata(predictions).get("event_source", {})  # set by parse.event_source, kept by infer
    prov = provenance(settings, predictions=str(predictions), sample=sample, model=model)
    metrics = {"sample": sample, "model": model, "event_source": origin, **metrics, "provenance": prov}
    write_responses(
        responses,
        responses_path,
        {"sample": sample, "model": model, "event_source": origin, "provenance": prov},
    )
    write_text_atomic(metrics_path, json.dumps(json_ready(metrics), indent=1, sort_keys=False) + "\n")
    for reco in ("mlpf", "pf"):
        jr, mr = metrics["jet_response"][reco], metrics["met_response"][reco]
        log.info(
            "%s: jet median %.3f IQR %.3f (matched %.3f), MET median %.3f IQR %.3f",
            reco,
            jr["median"],
            jr["iqr"],
            jr["matched_fraction"],
            mr["median"],
            mr["iqr"],
        )
    return metrics


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Checks the schema cannot express: bin edges strictly increasing."""
    for key in ("jet_pt_bins", "met_bins", "momentum_bins", "energy_bins"):
        edges = np.asarray(settings[key], dtype=np.float64)
        if np.any(np.diff(edges) <= 0):
            raise ConfigError(f"evaluation.{key}: bin edges must be strictly increasing, got {settings[key]}")
    return settings
