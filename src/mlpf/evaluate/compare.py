"""The `mlpf compare` stage: two MLPF models of the same events at two element levels, and the baseline PF.

Inputs are the metrics JSON files `mlpf evaluate` wrote for each model (one per sample): a hit-level model
(tracks + calorimeter hits) and a cluster-level one (tracks + clusters) trained on datasets parsed from the same
EDM4HEP files, so their held-out events are the same events (checked: same event source, same number of events
and the same generator jets). Jets and MET are scored against the generator truth, so the three reconstructions
are compared on equal terms; the baseline PF is the same PF particles in both files (taken from the second
model's metrics, and its agreement between the two files is recorded). Per-class efficiency and fake rate are
per element (docs/evaluation.md), so they are given per element level: MLPF and PF on hits, MLPF and PF on
clusters.

Writes `<output>/comparison.json` and `comparison.md` (the tables) and, per sample, `<sample>/resolution.png`
(jet and MET response median and IQR/median of the three) and `<sample>/per_class.png` (efficiency and fake
rate per class), atomically as one directory.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlpf.atomic import atomic_directory
from mlpf.data.targets import CLASS_NAMES
from mlpf.errors import InputFileError
from mlpf.provenance import provenance

from .evaluation import json_ready
from .plots.style import decorate, labelled_with, new_figure, sample_label, save

log = logging.getLogger(__name__)

QUANTITIES = {"jet_response": "jets", "met_response": "MET"}
STATS = ("median", "median_err", "iqr_over_median", "iqr_over_median_err")
# Colours of the three reconstructions (the PF one is the figures' PF colour, mlpf.evaluate.plots.style).
COLOURS = ("tab:orange", "tab:green", "tab:blue")
# Two PF numbers of the same events agree to float32 rounding of the stored responses.
PF_AGREEMENT = 1e-4


def _read(paths: Sequence[str | Path]) -> dict[str, dict[str, Any]]:
    out = {}
    for path in map(Path, paths):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputFileError(f"not a readable metrics file ({type(exc).__name__})", path=path) from None
        if "jet_response" not in data or "sample" not in data:
            raise InputFileError("not a metrics file of mlpf evaluate (no jet_response or sample)", path=path)
        out[data["sample"]] = data
    return out


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else math.nan


def _stats(section: dict[str, Any] | None) -> dict[str, float]:
    section = section or {}
    out = {key: _number(section.get(key)) for key in STATS}
    if "matched_fraction" in section:
        out["matched_fraction"] = _number(section["matched_fraction"])
    return out


def _per_class(data: dict[str, Any], reco: str) -> dict[str, dict[str, float]]:
    classes = (data.get("per_class") or {}).get(reco) or {}
    return {
        name: {
            "efficiency": _number((classes.get(name) or {}).get("efficiency")),
            "fake_rate": _number((classes.get(name) or {}).get("fake_rate")),
            "n_target": int((classes.get(name) or {}).get("n_target") or 0),
        }
        for name in CLASS_NAMES[1:]
    }


def compare_sample(first: dict[str, Any], second: dict[str, Any], labels: tuple[str, str]) -> dict[str, Any]:
    """The comparison of one sample: per quantity the three reconstructions, per class the four element
    metrics, and the checks that both models saw the same events."""
    recos = {
        f"MLPF ({labels[0]})": (first, "mlpf"),
        f"MLPF ({labels[1]})": (second, "mlpf"),
        "PF": (second, "pf"),
    }
    out: dict[str, Any] = {
        "n_events": {labels[0]: first.get("n_events"), labels[1]: second.get("n_events")},
        "n_gen_jets": {
            labels[0]: (first.get("jets") or {}).get("n_gen_jets"),
            labels[1]: (second.get("jets") or {}).get("n_gen_jets"),
        },
    }
    for key, name in QUANTITIES.items():
        out[name] = {reco: _stats((data.get(key) or {}).get(which)) for reco, (data, which) in recos.items()}
    out["per_class"] = {
        f"{reco} on {label}": _per_class(data, reco_key)
        for label, data in zip(labels, (first, second), strict=True)
        for reco, reco_key in (("MLPF", "mlpf"), ("PF", "pf"))
    }
    pf_first, pf_second = (_stats((d.get("jet_response") or {}).get("pf")) for d in (first, second))
    out["checks"] = {
        "same_events": out["n_events"][labels[0]] == out["n_events"][labels[1]]
        and out["n_gen_jets"][labels[0]] == out["n_gen_jets"][labels[1]],
        "same_event_source": _events_of(first) == _events_of(second),
        "same_pf_jets": abs(pf_first["median"] - pf_second["median"]) <= PF_AGREEMENT
        and abs(pf_first["iqr_over_median"] - pf_second["iqr_over_median"]) <= PF_AGREEMENT,
    }
    return out


def _events_of(data: dict[str, Any]) -> Any:
    source = data.get("event_source") or {}
    return source.get("events"), source.get("sample"), source.get("master_seed")


def _fmt(value: float, err: float = math.nan) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.3f} ± {err:.3f}" if not math.isnan(err) else f"{value:.3f}"


def markdown(comparison: dict[str, Any]) -> str:
    """The comparison as Markdown tables: jets and MET, then per-class efficiency and fake rate."""
    lines = ["# Hit-level MLPF, cluster-level MLPF and the baseline PF on the same events", ""]
    for sample, s in comparison["samples"].items():
        n = next(iter(s["n_events"].values()))
        header = (
            "| reconstruction | jet median | jet IQR/median | jets matched | MET median | MET IQR/median |"
        )
        lines += [f"## {sample} ({n} events)", "", header, "|---|---|---|---|---|---|"]
        for reco, jet in s["jets"].items():
            met = s["MET"][reco]
            lines.append(
                f"| {reco} | {_fmt(jet['median'], jet['median_err'])} | "
                f"{_fmt(jet['iqr_over_median'], jet['iqr_over_median_err'])} | {_fmt(jet.get('matched_fraction', math.nan))} | "
                f"{_fmt(met['median'], met['median_err'])} | {_fmt(met['iqr_over_median'], met['iqr_over_median_err'])} |"
            )  # fmt: skip
        columns = list(s["per_class"])
        lines += ["", "| class | " + " | ".join(f"{c}: eff / fake" for c in columns) + " |",
                  "|---|" + "---|" * len(columns)]  # fmt: skip
        for name in CLASS_NAMES[1:]:
            cells = [f"{_fmt(s['per_class'][c][name]['efficiency'])} / {_fmt(s['per_class'][c][name]['fake_rate'])}"
                     for c in columns]  # fmt: skip
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        failed = [k for k, ok in s["checks"].items() if not ok]
        lines += ["", "Checks: " + ("all pass" if not failed else "FAILED " + ", ".join(failed)), ""]
    return "\n".join(lines)


def _resolution_figure(sample: str, s: dict[str, Any], directory: Path) -> None:
    # wide panels: the experiment label and the energy of each panel need the room of a single figure
    fig = new_figure(figsize=(20, 7.5))[0]
    fig.clf()
    axes = fig.subplots(1, 2, gridspec_kw={"wspace": 0.25})
    for ax, (name, ylabel) in zip(axes, (("jets", "jet $p_T$"), ("MET", "MET")), strict=True):
        recos = list(s[name])
        x = np.arange(len(recos))
        values = [s[name][r]["iqr_over_median"] for r in recos]
        errors = [s[name][r]["iqr_over_median_err"] for r in recos]
        ax.bar(x, values, yerr=np.nan_to_num(errors), color=COLOURS[: len(recos)], capsize=4)
        # the response median goes under each name: inside the bars it would cross the error bars
        ticks = [
            f"{r}\nmedian {s[name][r]['median']:.3f}" if math.isfinite(s[name][r]["median"]) else r
            for r in recos
        ]
        ax.set_xticks(x, ticks, fontsize=13)
        ax.set_ylabel(f"{ylabel} response IQR / median")
        ax.set_ylim(
            0, 1.3 * max([v + e for v, e in zip(values, np.nan_to_num(errors), strict=True)], default=1)
        )
        decorate(ax, sample)
    save(fig, directory, "resolution")


def _per_class_figure(sample: str, s: dict[str, Any], directory: Path) -> None:
    fig = new_figure(figsize=(20, 7.5))[0]
    fig.clf()
    axes = fig.subplots(1, 2, gridspec_kw={"wspace": 0.25})
    columns = list(s["per_class"])
    x = np.arange(len(CLASS_NAMES) - 1)
    width = 0.8 / len(columns)
    colours = ("tab:orange", "tab:cyan", "tab:green", "tab:blue")
    for ax, metric in zip(axes, ("efficiency", "fake_rate"), strict=True):
        for k, column in enumerate(columns):
            values = [s["per_class"][column][name][metric] for name in CLASS_NAMES[1:]]
            ax.bar(x + (k - (len(columns) - 1) / 2) * width, np.nan_to_num(values), width, label=column,
                   color=colours[k % len(colours)])  # fmt: skip
        ax.set_xticks(x, [n.replace("_", " ") for n in CLASS_NAMES[1:]], rotation=20, fontsize=12)
        ax.set_ylabel(metric.replace("_", " ") + " (per element)")
        ax.set_ylim(0, 1.35)
        ax.legend(fontsize=11, loc="upper right")
        decorate(ax, sample)
    save(fig, directory, "per_class")


def write_comparison(
    first_metrics: Sequence[str | Path],
    second_metrics: Sequence[str | Path],
    labels: tuple[str, str],
    models: tuple[str, str],
    output: str | Path,
) -> dict[str, Any]:
    """Compare the two models' metrics sample by sample; write the tables and figures (module docstring)."""
    first, second = _read(first_metrics), _read(second_metrics)
    samples = [s for s in first if s in second]
    if not samples:
        raise InputFileError("no sample evaluated for both models", path=Path(output))
    comparison = {
        "models": dict(zip(labels, models, strict=True)),
        "samples": {s: compare_sample(first[s], second[s], labels) for s in samples},
        "provenance": provenance(
            {}, first_metrics=list(map(str, first_metrics)), second_metrics=list(map(str, second_metrics))
        ),
    }
    sources = [first[s].get("event_source") for s in samples]
    with atomic_directory(output) as tmp, labelled_with(sources[0] if sources else None):
        (tmp / "comparison.json").write_text(json.dumps(json_ready(comparison), indent=1) + "\n")
        (tmp / "comparison.md").write_text(markdown(comparison) + "\n")
        for sample, s in comparison["samples"].items():
            _resolution_figure(sample, s, tmp / sample)
            _per_class_figure(sample, s, tmp / sample)
    for sample, s in comparison["samples"].items():
        jets = ", ".join(f"{r} {v['iqr_over_median']:.3f}" for r, v in s["jets"].items())
        log.info("%s (%s): jet IQR/median %s", sample, sample_label(sample), jets)
    return comparison
