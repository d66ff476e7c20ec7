"""What a study produces: the trial table, the best configuration as a config overlay, figures, and the
comparison of the default and the tuned hyperparameters trained on the same data for the same epochs."""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from mlpf import __version__
from mlpf.atomic import atomic_directory, write_text_atomic
from mlpf.errors import InputFileError, MlpfError
from mlpf.evaluate.plots.style import save
from mlpf.evaluate.plots.training import plot_seed_bands, read_history
from mlpf.provenance import provenance

from . import space
from .objective import RECORDED, reference_loss
from .replicas import spread
from .study import describe_storage

log = logging.getLogger(__name__)

BEST_NAME = "best.yaml"
TRIALS_NAME = "trials.csv"
# Figures of the study (optuna.visualization.matplotlib) and the before/after comparison.
STUDY_FIGURES = ("optimization_history", "param_importances", "parallel_coordinate", "intermediate_values")
COMPARISON_FIGURE = "before_after"
COMPARED = RECORDED  # validation columns in the comparison table


def trial_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, objective, epochs trained, worker, retry origin, the parameters by
    their config key and the last validation metrics."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "epochs": t.user_attrs.get("epochs", t.last_step),
            "duration_s": round(t.duration.total_seconds(), 2) if t.duration else None,
            "worker": t.user_attrs.get("worker"),
            "retry_of": t.user_attrs.get("retry_of"),
        }
        row.update(t.params)
        row.update({k: t.user_attrs.get(k) for k in RECORDED})
        rows.append(row)
    frame = pd.DataFrame(rows)
    # integers stay integers in the CSV where some trials have none (pruned before training, not a retry)
    return frame.astype(dict.fromkeys(("epochs", "worker", "retry_of"), "Int64")) if rows else frame


def best_trial(study: optuna.Study) -> FrozenTrial:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise MlpfError(
            f"study '{study.study_name}' has no completed trial yet; raise hpo.n_trials and rerun"
        )
    return study.best_trial


def tuned_name(base_name: str, study_name: str) -> str:
    """The model name of the tuned configuration: beside the default model, not over it."""
    return f"{base_name}-{study_name}"


def best_overlay(study: optuna.Study, base_model_name: str) -> tuple[dict[str, Any], str]:
    """The best trial's values as a config overlay (dict) and as commented YAML text."""
    best = best_trial(study)
    overlay = space.overlay(best.params)
    overlay.setdefault("model", {})["name"] = tuned_name(base_model_name, study.study_name)
    header = [
        f"# Best configuration of study '{study.study_name}' (mlpf-workflow {__version__}): trial {best.number}",
        f"# of {len(study.trials)}, objective {best.value:.6g} on the validation split after {best.last_step} epochs.",
        "# A config overlay: read it on top of the configuration the study was run with, e.g.",
        "#   snakemake --cores all --configfile config/hpo.yaml results/hpo/best.yaml",
        "# model.name differs from the default model's, so both trained models coexist under results/.",
    ]
    text = "\n".join(header) + "\n" + yaml.safe_dump(overlay, sort_keys=True)
    return overlay, text


def write_best(study: optuna.Study, base_model_name: str, best: str | Path, trials: str | Path) -> None:
    _, text = best_overlay(study, base_model_name)
    write_text_atomic(best, text)
    write_text_atomic(trials, trial_table(study).to_csv(index=False))


def read_overlay(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        overlay = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputFileError(
            f"cannot read the best configuration ({type(exc).__name__})", path=path
        ) from None
    if not isinstance(overlay, dict) or set(overlay) - {"model", "training"}:
        raise InputFileError("not a best configuration (model and training sections only)", path=path)
    return overlay


def _placeholder(directory: Path, name: str, message: str) -> list[Path]:
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return save(fig, directory, name)


def _study_figure(study: optuna.Study, directory: Path, name: str) -> list[Path]:
    """One Optuna figure; a short explanation instead where the study has too few trials for it."""
    vis = optuna.visualization.matplotlib
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    draw = {
        "optimization_history": lambda: vis.plot_optimization_history(study),
        "param_importances": lambda: vis.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
        ),
        "parallel_coordinate": lambda: vis.plot_parallel_coordinate(study),
        "intermediate_values": lambda: vis.plot_intermediate_values(study),
    }[name]
    if name == "param_importances" and len(complete) < 2:
        return _placeholder(directory, name, "Parameter importances need at least 2 completed trials")
    # Optuna's functions switch the global style to ggplot: keep that inside this figure. Their warnings
    # (experimental API, flat axes of parameters that never varied) say nothing about the study.
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ax = draw()
        except (ValueError, RuntimeError) as exc:  # e.g. importances of parameters that never varied
            log.warning("%s: %s", name, exc)
            return _placeholder(directory, name, f"{name.replace('_', ' ')}: {exc}")
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(10, 6)
        return save(fig, directory, name)


def _run(history: str | Path, info: str | Path, reference: dict[str, float]) -> pd.DataFrame:
    """A training's history with val_loss recomputed with the reference (default) loss weights."""
    frame = read_history(history)
    try:
        weights = json.loads(Path(info).read_text(encoding="utf-8"))["training"]["loss_weights"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise InputFileError(
            f"cannot read the training's loss weights ({type(exc).__name__})", path=info
        ) from None
    frame["val_loss"] = [reference_loss(row, reference, weights) for row in frame.to_dict("records")]
    return frame


def comparison(
    runs: dict[str, tuple[Sequence[str | Path], Sequence[str | Path]]], reference: dict[str, float]
) -> tuple[dict[str, list[pd.DataFrame]], pd.DataFrame]:
    """Histories of each variant (default, tuned) and a table of their last-epoch spread over seeds."""
    groups = {
        label: [_run(h, i, reference) for h, i in zip(*pair, strict=True)] for label, pair in runs.items()
    }
    rows = []
    for label, frames in groups.items():
        row: dict[str, Any] = {
            "variant": label,
            "seeds": len(frames),
            "epochs": int(frames[0]["epoch"].iloc[-1]),
        }
        for column in COMPARED:
            stats = spread([float(f[column].iloc[-1]) if column in f else math.nan for f in frames])
            row[f"{column}_mean"], row[f"{column}_std"] = stats["mean"], stats["std"]
        rows.append(row)
    return groups, pd.DataFrame(rows)


def write_report(
    study: optuna.Study,
    best: str | Path,
    trials: str | Path,
    runs: dict[str, tuple[Sequence[str | Path], Sequence[str | Path]]],
    reference: dict[str, float],
    settings: dict[str, Any],
    output: str | Path,
) -> list[Path]:
    """The results/hpo directory, replaced as a whole: best.yaml, trials.csv, summary.json, comparison.csv and
    the figures (PNG and PDF)."""
    groups, table = comparison(runs, reference)
    overlay = read_overlay(best)
    with atomic_directory(output) as tmp:
        (tmp / BEST_NAME).write_text(Path(best).read_text(encoding="utf-8"), encoding="utf-8")
        (tmp / TRIALS_NAME).write_text(Path(trials).read_text(encoding="utf-8"), encoding="utf-8")
        table.to_csv(tmp / "comparison.csv", index=False)
        files = [tmp / BEST_NAME, tmp / TRIALS_NAME, tmp / "comparison.csv"]
        for name in STUDY_FIGURES:
            files += _study_figure(study, tmp, name)
        files += plot_seed_bands(groups, tmp, COMPARISON_FIGURE)
        summary = _summary(study, overlay, table, settings)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
        files.append(tmp / "summary.json")
    return [Path(output) / f.relative_to(tmp) for f in files]


def _json_default(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else str(value)


def _summary(
    study: optuna.Study, overlay: dict[str, Any], table: pd.DataFrame, settings: dict[str, Any]
) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    best = best_trial(study)
    states = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    return {
        "study": study.study_name,
        "objective": settings["hpo"]["objective"],
        "trials": {k: v for k, v in states.items() if v},
        "workers": sorted({t.user_attrs["worker"] for t in trials if "worker" in t.user_attrs}),
        "best": {"number": best.number, "value": best.value, "epochs": best.last_step, "params": best.params},
        "overlay": overlay,
        "comparison": json.loads(table.to_json(orient="records")),
        "provenance": provenance(_without_password(settings)),
    }


def _without_password(settings: dict[str, Any]) -> dict[str, Any]:
    hpo = settings.get("hpo") or {}
    if "storage" not in hpo:
        return settings
    return {**settings, "hpo": {**hpo, "storage": describe_storage(hpo["storage"])}}
