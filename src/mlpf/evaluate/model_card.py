"""The `mlpf model-card` stage: a Markdown model card generated from the run's own outputs.

Layout after the MLPF CLIC model cards (mlpf-clic-clusters-v1.9.0): model details, training data and
procedure (hardware, epochs, time), evaluation table and figures, intended use, limitations, citation.
Every number comes from the metrics JSON, `model.json` and `history.csv`; missing keys read "not recorded".
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlpf.atomic import write_text_atomic
from mlpf.errors import InputFileError
from mlpf.provenance import merge_records

NOT_RECORDED = "not recorded"
PAPER = "J. Pata et al., Commun. Phys. 7, 124 (2024), arXiv:2309.06782"
# Figures of each sample linked from the card (written by `mlpf plots` under results/figures/<model>/<sample>/).
CARD_FIGURES: tuple[tuple[str, str], ...] = (
    ("jet_response", "Jet pT response"),
    ("jet_response_vs_pt", "Jet response IQR/median vs generator jet pT"),
    ("met_response", "MET response"),
)


def _read_json(path: str | Path, what: str) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputFileError(f"cannot read {what} ({type(exc).__name__})", path=path) from None
    if not isinstance(data, dict):
        raise InputFileError(f"{what} must be a JSON object", path=path)
    return data


def _history_summary(path: str | Path) -> dict[str, Any]:
    """Epoch count and final losses from a history CSV (read with the csv module: tiny file)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise InputFileError(f"cannot read training history ({exc.strerror})", path=path) from None
    if not rows:
        return {}
    last = rows[-1]
    out: dict[str, Any] = {"epochs": len(rows)}
    for key in ("train_loss", "val_loss"):
        if last.get(key) not in (None, ""):
            out[key] = float(last[key])
    val = [float(r["val_loss"]) for r in rows if r.get("val_loss") not in (None, "")]
    if val:
        out["best_val_loss"] = min(val)
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _with_err(section: dict[str, Any], key: str) -> str:
    value, err = section.get(key), section.get(f"{key}_err")
    if not isinstance(err, float) or not math.isfinite(err) or err <= 0:
        return _fmt(value)
    # Two significant digits of the uncertainty, the value to the same decimal (at least 3, at most 6).
    digits = min(max(3, 1 - math.floor(math.log10(err))), 6)
    return f"{_fmt(value, digits)} ± {_fmt(err, digits)}"


def _get(data: dict[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return NOT_RECORDED
    hours, rest = divmod(float(seconds), 3600)
    return f"{int(hours)} h {rest / 60:.1f} min" if hours else f"{rest / 60:.1f} min"


def _section(info: dict[str, Any], settings: dict[str, Any], name: str) -> dict[str, Any]:
    value = settings.get(name) or info.get(name) or _get(info, "provenance", "settings", name) or {}
    return value if isinstance(value, dict) else {}


def _train_samples(info: dict[str, Any]) -> list[str]:
    """Sample names from the training files (results/datasets/<events>/<dataset>/<sample>/<shard>.parquet)."""
    if isinstance(info.get("train_samples"), list):
        return [str(s) for s in info["train_samples"]]
    files = info.get("train_files") or []
    return sorted({Path(str(f)).parent.name for f in files if Path(str(f)).parent.name})


def _hardware(hardware: Any) -> str:
    """One line from the trainer's hardware record (a dict: device, gpu, cpu, threads, world_size) or text."""
    if not hardware:
        return NOT_RECORDED
    if not isinstance(hardware, dict):
        return str(hardware)
    world = hardware.get("world_size") or 1
    if hardware.get("gpu"):
        return f"{world} x {hardware['gpu']}" + (
            f" (torch {hardware['torch']})" if hardware.get("torch") else ""
        )
    parts = [str(hardware.get("cpu") or hardware.get("device") or "CPU")]
    if hardware.get("threads"):
        parts.append(f"{hardware['threads']} threads")
    if world > 1:
        parts.append(f"{world} processes")
    return ", ".join(parts)


def _performance_table(metrics: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| sample | events | reco | jet median | jet IQR | jet IQR/median | matched jets | MET median | MET IQR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in metrics:
        for reco, label in (("pf", "PF"), ("mlpf", "MLPF")):
            jet = _get(m, "jet_response", reco) or {}
            met = _get(m, "met_response", reco) or {}
            lines.append(
                f"| {m.get('sample', '?')} | {m.get('n_events', '?')} | {label} | {_with_err(jet, 'median')} | "
                f"{_with_err(jet, 'iqr')} | {_with_err(jet, 'iqr_over_median')} | "
                f"{_fmt(jet.get('matched_fraction'))} | {_with_err(met, 'median')} | {_with_err(met, 'iqr')} |"
            )
    return lines


def _class_table(metrics: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| sample | class | PF efficiency | MLPF efficiency | PF fake rate | MLPF fake rate |",
        "|---|---|---|---|---|---|",
    ]
    for m in metrics:
        per_class = m.get("per_class") or {}
        for name in per_class.get("mlpf") or {}:
            pf, ml = _get(per_class, "pf", name) or {}, _get(per_class, "mlpf", name) or {}
            if not ml.get("n_target"):
                continue
            lines.append(
                f"| {m.get('sample', '?')} | {name.replace('_', ' ')} | {_fmt(pf.get('efficiency'))} | "
                f"{_fmt(ml.get('efficiency'))} | {_fmt(pf.get('fake_rate'))} | {_fmt(ml.get('fake_rate'))} |"
            )
    return lines


def _derived_inputs(model: dict[str, Any], info: dict[str, Any]) -> str:
    """The inputs the model derives from the 17 features (model.calorimeter_features, docs/model.md); their
    number comes from the training's model info (older ones do not record it)."""
    if not model.get("calorimeter_features"):
        return ""
    count = info.get("n_derived_inputs")
    return (
        f" and {count if count else 'more inputs'} derived from its calorimeter point (tracks: helix extrapolated"
        " to the ECAL front face) and the elements around it"
    )


# The workflow's own words for a source record's keys (mlpf.data.parse.event_source and the workflow's source).
_SOURCE_FIELDS: tuple[tuple[str, str], ...] = (
    ("source", "workflow source"),
    ("events", "events (name)"),
    ("zenodo_record", "Zenodo record"),
    ("key4hep_release", "Key4HEP release"),
    ("fastsim_version", "fast simulation version (mlpf-workflow)"),
    ("detector", "detector"),
    ("layout", "EDM4HEP layout"),
    ("master_seed", "master seed"),
    ("sample", "samples"),
    ("shard", "shards"),
    ("job_seed", "job seeds"),
)


def describe_event_source(event_source: dict[str, Any]) -> str:
    """One line saying which simulation made the events and how to regenerate them (seeds, record, version)."""
    if not event_source:
        return NOT_RECORDED
    kind = {"fastsim": "fast simulation", "full": "full simulation"}.get(event_source.get("simulation"), "")
    head = f"{kind}: {event_source['description']}" if kind and "description" in event_source else "mixed"
    details = []
    for key, label in _SOURCE_FIELDS:
        value = event_source.get(key)
        if value not in (None, "", []):
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            details.append(f"{label} {text}")
    return head + (f" ({'; '.join(details)})" if details else "")


def _is_fast_simulation(*sources: dict[str, Any]) -> bool:
    return any(isinstance(s, dict) and "fastsim" in str(s.get("simulation")) for s in sources)


# Validation columns of the seed-spread table (results/metrics/<model>/replicas.json, mlpf.hpo.replicas).
REPLICA_ROWS: tuple[tuple[str, str], ...] = (
    ("val_loss", "loss"),
    ("val_jet_iqr_over_median", "jet pT response IQR/median, MLPF"),
    ("val_jet_iqr_over_median_pf", "jet pT response IQR/median, PF"),
    ("val_met_iqr_over_median", "MET response IQR/median, MLPF"),
    ("val_met_iqr_over_median_pf", "MET response IQR/median, PF"),
)


def _replica_section(replicas: dict[str, Any] | None) -> list[str]:
    """Spread of the trainings that differ only in their seed (empty without replicas)."""
    if not replicas:
        return []
    last = replicas.get("last_epoch") or {}
    seeds = ", ".join(str(s) for s in replicas.get("seeds") or [])
    lines = [
        "",
        "## Training statistics across seeds",
        "",
        f"{replicas.get('n', '?')} trainings that differ only in their seed ({seeds}), validated on the same events;",
        "validation metrics at the last epoch (mean ± sample standard deviation over the seeds):",
        "",
        "| validation metric | mean ± std | per seed |",
        "|---|---|---|",
    ]
    for key, label in REPLICA_ROWS:
        entry = last.get(key) or {}
        values = ", ".join(_fmt(v) for v in entry.get("values") or [])
        lines.append(f"| {label} | {_fmt(entry.get('mean'))} ± {_fmt(entry.get('std'))} | {values} |")
    best = replicas.get("best_val_loss") or {}
    model = replicas.get("model") or "<model>"
    lines += [
        "",
        f"Lowest validation loss of each training: {_fmt(best.get('mean'))} ± {_fmt(best.get('std'))}.",
        f"Curves: [validation metrics per epoch, mean ± std](replicas/{model}/validation_seeds.png).",
    ]
    return lines


def render(
    metrics: list[dict[str, Any]],
    info: dict[str, Any],
    history: dict[str, Any],
    replicas: dict[str, Any] | None = None,
    figures: str = "plots",
) -> str:
    """The model card as Markdown text; `figures` is where the figures of `mlpf plots` are, relative to the
    card (its links point there)."""
    # model.json (written by `mlpf train`) holds the config sections at the top level; older or other writers
    # may nest them under "settings": accept both.
    settings = info.get("settings") or {}
    model = _section(info, settings, "model")
    training = _section(info, settings, "training")
    dataset = _section(info, settings, "dataset")
    name = model.get("name") or info.get("name") or (metrics[0].get("model") if metrics else None) or "mlpf"
    version = _get(info, "provenance", "mlpf_version") or (
        _get(metrics[0], "provenance", "mlpf_version") if metrics else None
    )
    jets = (metrics[0].get("jets") if metrics else None) or {}
    n_params = info.get("n_params")
    epochs = info.get("epochs") or history.get("epochs") or training.get("epochs")
    samples = ", ".join(str(m.get("sample")) for m in metrics)
    train_samples = _train_samples(info)
    n_train = info.get("n_train_events")
    n_val = info.get("n_validation_events")
    evaluated_source = merge_records([m.get("event_source") for m in metrics])
    training_source = info.get("train_event_source") or {}

    lines = [
        f"# Model card: {name}",
        "",
        "Machine-learned particle-flow (MLPF) reconstruction for the CLIC detector at 380 GeV: a neural network that",
        "maps the tracks and calorimeter clusters of an event to a set of reconstructed particles (class, charge,",
        f"pT, eta, phi, energy), after {PAPER}. Generated by `mlpf model-card` from this run's outputs.",
        "",
        "## Model details",
        "",
        f"- Architecture: {model.get('type', NOT_RECORDED)}",
        f"- Trainable parameters: {f'{n_params:,}' if isinstance(n_params, int) else NOT_RECORDED}",
        f"- Software: mlpf-workflow {version or NOT_RECORDED}",
        (
            f"- Inputs: per element (track or cluster) 17 features{_derived_inputs(model, info)}; outputs: one"
            " particle or none per element."
        ),
        "- Formats: PyTorch checkpoint and ONNX export (`results/models/<name>/`).",
    ]
    for key, value in sorted(model.items()):
        if key not in ("name", "type"):
            lines.append(f"- `model.{key}`: {value}")
    lines += [
        "",
        "## Training data",
        "",
        f"- Training samples: {', '.join(train_samples) if train_samples else NOT_RECORDED}",
        (
            f"- Training / validation events: {n_train if n_train is not None else NOT_RECORDED} /"
            f" {n_val if n_val is not None else NOT_RECORDED}"
        ),
        f"- Target definition: {dataset.get('target', NOT_RECORDED)}",
        f"- Events: e+e- collisions at 380 GeV, {describe_event_source(training_source)}",
        "",
        "## Training procedure",
        "",
        f"- Epochs: {epochs or NOT_RECORDED}",
        f"- Training time: {_duration(info.get('training_time_s'))}",
        f"- Hardware: {_hardware(info.get('hardware'))}",
        f"- Final training loss: {_fmt(history.get('train_loss'))}",
        f"- Final validation loss: {_fmt(history.get('val_loss'))} (best {_fmt(history.get('best_val_loss'))})",
    ]
    for key, value in sorted(training.items()):
        lines.append(f"- `training.{key}`: {value}")
    lines += _replica_section(replicas)
    lines += [
        "",
        "## Evaluation",
        "",
        f"Held-out events of: {samples or NOT_RECORDED}; {describe_event_source(evaluated_source)}.",
        (
            f"Jets: fastjet {jets.get('algorithm', 'ee_genkt')}, R = {jets.get('radius', '?')}, p = {jets.get('p', '?')},"
            f" pT > {jets.get('min_pt', '?')} GeV; generator jets matched to the nearest reconstructed jet within"
            f" Delta R < {jets.get('match_dr', '?')}."
        ),
        "Response = reconstructed / generator quantity; IQR = p75 - p25; uncertainties are bootstrap standard",
        "deviations. MLPF is compared with the baseline rule-based particle flow (PF) on the same events.",
        "",
        *_performance_table(metrics),
        "",
        "Per-class particle efficiency and fake rate (elements, against the target particles):",
        "",
        *_class_table(metrics),
        "",
        *_figure_links(metrics, figures),
        "",
        "## Intended use",
        "",
        "Research on machine-learned event reconstruction at future e+e- colliders: reproducing and extending the",
        "MLPF studies, comparing architectures and training choices on a common benchmark, and studying how",
        "reconstruction quality propagates to jets and missing transverse momentum.",
        "",
        "## Limitations",
        "",
        "- Trained and evaluated on simulation only; never validated on collision data.",
        "- Valid for the detector geometry, beam conditions and processes it was trained on; performance on other",
        "  samples (see the out-of-distribution samples above) can differ and must be measured, not assumed.",
        *(
            [
                "- These events come from the parametric fast simulation: the numbers describe that simplified",
                "  detector model, not the full CLICdet Geant4 simulation, and must not be quoted as CLIC performance.",
            ]
            if _is_fast_simulation(training_source, evaluated_source)
            else []
        ),
        "- Per-particle classes are limited to charged hadrons, neutral hadrons, photons, electrons and muons.",
        "",
        "## Citation",
        "",
        f"{PAPER}.",
        "",
    ]
    return "\n".join(lines)


def _figure_links(metrics: list[dict[str, Any]], figures: str) -> list[str]:
    """The card's figure section: the first sample's jet response shown, links to the others'."""
    lines = [f"Figures (produced by `mlpf plots`, in `{figures}/` from here):", ""]
    if metrics:
        first = metrics[0].get("sample", "?")
        lines += [f"![Jet pT response of MLPF and PF, {first}]({figures}/{first}/jet_response.png)", ""]
    for m in metrics:
        sample = m.get("sample", "?")
        links = ", ".join(f"[{title}]({figures}/{sample}/{fig}.png)" for fig, title in CARD_FIGURES)
        lines.append(f"- {sample}: {links}")
    lines.append(f"- training: [loss curves]({figures}/training/loss.png)")
    return lines


def write_model_card(
    metrics_paths: Sequence[str | Path],
    info_paths: Sequence[str | Path],
    history_paths: Sequence[str | Path],
    output: str | Path,
    replicas_paths: Sequence[str | Path] = (),
    figures_dir: str | Path | None = None,
) -> str:
    """Read the inputs, render the card and write it atomically. Returns the text. `figures_dir` is the
    directory `mlpf plots` wrote (default: `plots` beside the card)."""
    metrics = [_read_json(p, "metrics JSON") for p in metrics_paths]
    info: dict[str, Any] = {}
    for path in info_paths:
        info.update(_read_json(path, "model info JSON"))
    history: dict[str, Any] = {}
    for path in history_paths:
        history.update(_history_summary(path))
    replicas = _read_json(replicas_paths[0], "replicas JSON") if replicas_paths else None
    figures = (
        "plots" if figures_dir is None else Path(os.path.relpath(figures_dir, Path(output).parent)).as_posix()
    )
    text = render(metrics, info, history, replicas, figures)
    write_text_atomic(output, text)
    return text
