"""The `mlpf paper-manifest` stage: which produced file stands for which figure of the MLPF paper.

The paper (J. Pata et al., Commun. Phys. 7, 124 (2024), arXiv:2309.06782) shows the CLIC results as training
curves, jet and MET response and resolution, per-class efficiency, fake rate and response on particle guns,
kinematic distributions and inference-time scaling. This module maps each of those figure kinds to the files
`mlpf plots` wrote, per sample, and records the config and version that made them, so a reader of the paper
can find the reproduced figure and a reader of the outputs can find what it reproduces.

Outputs (under the output directory, written atomically): `manifest.json` (machine-readable) and
`manifest.md` (the same as tables).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpf.atomic import atomic_directory
from mlpf.errors import InputFileError
from mlpf.provenance import merge_records, provenance

from .model_card import describe_event_source

PAPER = "J. Pata et al., Commun. Phys. 7, 124 (2024), arXiv:2309.06782"


@dataclass(frozen=True)
class PaperFigure:
    """One kind of figure of the paper and the `mlpf plots` file names that reproduce it."""

    key: str
    paper: str  # where in the paper; figure numbers only where they are stated in the project's references
    content: str
    per_sample: bool  # files under results/figures/<model>/<sample>/ (else under a fixed group directory)
    names: tuple[str, ...]  # file stems; a trailing "*" matches the per-class suffixes
    group: str = ""


FIGURES: tuple[PaperFigure, ...] = (
    PaperFigure(
        "training_curves",
        "Fig. 3",
        "Loss terms and validation jet/MET resolution vs epoch",
        per_sample=False,
        names=("loss", "loss_terms", "val_metrics", "learning_rate"),
        group="training",
    ),
    PaperFigure(
        "jet_response",
        "jet response figures",
        "Jet pT response pT_reco / pT_gen of MLPF and baseline PF (median, IQR)",
        per_sample=True,
        names=("jet_response", "jet_pt"),
    ),
    PaperFigure(
        "jet_resolution_vs_pt",
        "jet resolution figures",
        "Jet response IQR/median and median vs generator jet pT",
        per_sample=True,
        names=("jet_response_vs_pt",),
    ),
    PaperFigure(
        "met_response",
        "MET response figures",
        "Missing transverse momentum response and spectra, resolution vs generator MET",
        per_sample=True,
        names=("met_response", "met", "met_response_vs_genmet"),
    ),
    PaperFigure(
        "momentum_response",
        "event-level response",
        "Response of the magnitude of the summed event 3-momentum",
        per_sample=True,
        names=("momentum_response", "momentum_response_vs_p"),
    ),
    PaperFigure(
        "particle_efficiency",
        "per-class performance on single particles",
        "Efficiency and fake rate vs track pT / cluster energy per particle class (binomial errors)",
        per_sample=True,
        names=("eff_fake_*",),
    ),
    PaperFigure(
        "particle_response",
        "per-class performance on single particles",
        "Energy response per particle class",
        per_sample=True,
        names=("energy_response_*",),
    ),
    PaperFigure(
        "kinematics",
        "particle-level distributions",
        "pT and eta of reconstructed particles per class: truth, PF, MLPF, with ratio panels",
        per_sample=True,
        names=("kinematics_*",),
    ),
    PaperFigure(
        "resolution_summary",
        "summary of resolutions",
        "Jet and MET IQR/median of every evaluated sample side by side",
        per_sample=False,
        names=("resolution_summary",),
        group="summary",
    ),
    PaperFigure(
        "timing_scaling",
        "Fig. 10",
        "Inference time per event vs elements per event (benchmarks/bench_model.py)",
        per_sample=False,
        names=("timing_scaling",),
        group="timing",
    ),
)


def _pngs(directory: Path, names: Sequence[str]) -> list[Path]:
    """PNG files of `directory` whose stems are `names` (a trailing `*` matches per-class suffixes)."""
    return [png for name in names for png in sorted(directory.glob(f"{name}.png"))]


def _png_and_pdf(pngs: Sequence[Path]) -> list[str]:
    return [str(f) for png in pngs for f in (png, png.with_suffix(".pdf")) if f.exists()]


def build_manifest(
    plots: str | Path,
    metrics_paths: Sequence[str | Path],
    config: dict[str, Any],
    model_card: str | Path | None = None,
) -> dict[str, Any]:
    """The manifest: per paper figure kind, the produced files (per sample where applicable)."""
    plots = Path(plots)
    if not plots.is_dir():
        raise InputFileError("plots directory not found (run `mlpf plots` first)", path=plots)
    samples = sorted(
        p.name for p in plots.iterdir() if p.is_dir() and p.name not in {"training", "summary", "timing"}
    )
    entries = []
    for figure in FIGURES:
        directories = (
            [(s, plots / s) for s in samples] if figure.per_sample else [(None, plots / figure.group)]
        )
        files: dict[str, list[str]] = {}
        for sample, directory in directories:
            pngs = _pngs(directory, figure.names)
            if pngs:
                files[sample or figure.group] = _png_and_pdf(pngs)
        entries.append(
            {
                "figure": figure.key,
                "paper": f"{PAPER}, {figure.paper}",
                "content": figure.content,
                "files": files,
                "produced": bool(files),
            }
        )
    metrics = {}
    sources = []
    for name in metrics_paths:
        path = Path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputFileError(f"cannot read metrics JSON ({type(exc).__name__})", path=path) from None
        metrics[data.get("sample", path.stem)] = str(path)
        sources.append(data.get("event_source"))
    return {
        "paper": PAPER,
        "figures": entries,
        "metrics": metrics,
        "event_source": merge_records(sources),
        "model_card": str(model_card) if model_card else None,
        "provenance": provenance(config),
    }


def manifest_markdown(manifest: dict[str, Any]) -> str:
    lines = [
        "# Paper figure manifest",
        "",
        f"Reproduction of the figures of {manifest['paper']} by this run. Figure numbers are given where the",
        "project's references state them; the other rows name the kind of figure. Config and version that made",
        "the files: `manifest.json` (`provenance`).",
        "",
        f"Events: {describe_event_source(manifest.get('event_source') or {})}.",
        "",
        "| figure | in the paper | content | produced files |",
        "|---|---|---|---|",
    ]
    for entry in manifest["figures"]:
        paper = entry["paper"].removeprefix(manifest["paper"] + ", ")
        produced = (
            "<br>".join(
                f"{group}: " + ", ".join(f"`{f}`" for f in files if f.endswith(".png"))
                for group, files in entry["files"].items()
            )
            or "not produced by this configuration"
        )
        lines.append(f"| {entry['figure']} | {paper} | {entry['content']} | {produced} |")
    lines += ["", "Metrics (JSON, per sample):", ""]
    lines += [f"- {sample}: `{path}`" for sample, path in sorted(manifest["metrics"].items())]
    if manifest.get("model_card"):
        lines += ["", f"Model card: `{manifest['model_card']}`"]
    return "\n".join(lines) + "\n"


def write_manifest(
    plots: str | Path,
    metrics_paths: Sequence[str | Path],
    config: dict[str, Any],
    output: str | Path,
    model_card: str | Path | None = None,
) -> dict[str, Any]:
    manifest = build_manifest(plots, metrics_paths, config, model_card)
    with atomic_directory(output) as tmp:
        (tmp / "manifest.json").write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        (tmp / "manifest.md").write_text(manifest_markdown(manifest), encoding="utf-8")
    return manifest
