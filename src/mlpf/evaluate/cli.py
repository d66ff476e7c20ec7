"""`mlpf evaluate`, `plots`, `view-figures`, `model-card`, `paper-manifest`: metrics, figures, the view of one
model's figures (results/plots), model card, paper mapping.

Only argparse is imported here so that `mlpf --help` stays instant; the handlers import the heavy libraries.
"""

from __future__ import annotations

import argparse


def _evaluate(args: argparse.Namespace) -> int:
    from mlpf.config import settings_from_cli

    from .evaluation import check_settings, run

    settings = check_settings(settings_from_cli("evaluation", args.settings, args.config))
    run(args.predictions, args.sample, args.model, settings, args.metrics, args.responses)
    return 0


def _plots(args: argparse.Namespace) -> int:
    from .plots.runner import make_plots

    make_plots(args.responses, args.metrics, args.history, args.output, args.timing, jobs=args.jobs)
    return 0


def _view_figures(args: argparse.Namespace) -> int:
    from .view import ViewOf, make_view

    make_view(args.figures, args.output, ViewOf(args.model, args.events, args.dataset))
    return 0


def _model_card(args: argparse.Namespace) -> int:
    from .model_card import write_model_card

    write_model_card(args.metrics, args.model_info, args.history, args.output, args.replicas, args.figures)
    return 0


def _paper_manifest(args: argparse.Namespace) -> int:
    import json

    from mlpf.errors import ConfigError

    from .paper import write_manifest

    try:
        config = json.loads(args.config_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config-json is not valid JSON: {exc}") from None
    write_manifest(args.plots, args.metrics, config, args.output, args.model_card)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .compare import write_comparison

    write_comparison(args.metrics, args.second_metrics, tuple(args.labels), tuple(args.models), args.output)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the evaluation subcommands to the `mlpf` command."""
    from mlpf.cli import add_settings_arguments

    p = subparsers.add_parser(
        "evaluate",
        help="jets, MET, 3-momentum and per-class metrics of one predictions file",
        description="Cluster jets (fastjet) for truth, MLPF, baseline PF and targets; match generator jets; "
        "write response statistics (metrics JSON) and the per-event response table (parquet).",
    )
    p.add_argument("--predictions", required=True, help="predictions parquet (contract section 4)")
    p.add_argument("--sample", required=True, help="sample name, recorded in the outputs")
    p.add_argument("--model", required=True, help="model name, recorded in the outputs")
    p.add_argument("--metrics", required=True, help="output metrics JSON")
    p.add_argument("--responses", required=True, help="output response table (parquet) for the figures")
    add_settings_arguments(p)
    p.set_defaults(handler=_evaluate)

    p = subparsers.add_parser(
        "plots",
        help="figures (PNG and PDF) of every evaluated sample and the training curves",
        description="Write <output>/<sample>/*.{png,pdf} and <output>/training/*.{png,pdf}; the directory "
        "appears only when complete.",
    )
    p.add_argument("--responses", nargs="+", required=True, help="response tables written by mlpf evaluate")
    p.add_argument("--metrics", nargs="*", default=[], help="metrics JSON files written by mlpf evaluate")
    p.add_argument("--history", nargs="*", default=[], help="training history CSV (epoch, losses, metrics)")
    p.add_argument(
        "--timing", nargs="*", default=[], help="model benchmark timing files (CSV or JSON), optional"
    )
    p.add_argument("--output", required=True, help="output directory (e.g. results/figures/mlpf)")
    p.add_argument("--jobs", type=int, default=1, help="processes drawing samples in parallel (default 1)")
    p.set_defaults(handler=_plots)

    p = subparsers.add_parser(
        "view-figures",
        help="make a directory (results/plots) the view of one model's figures, with an index",
        description="Write <output>/ as the files of --figures (hard links, or copies where links cannot be "
        "made) and <output>/index.md naming the model, events and dataset; replaces <output> as a whole, "
        "atomically, and never writes in --figures.",
    )
    p.add_argument("--figures", required=True, help="figures directory written by mlpf plots")
    p.add_argument("--model", required=True, help="name of the model the figures are of")
    p.add_argument("--events", required=True, help="name of the events its dataset was parsed from")
    p.add_argument("--dataset", required=True, help="name of the dataset it was trained on")
    p.add_argument("--output", required=True, help="output directory (e.g. results/plots)")
    p.set_defaults(handler=_view_figures)

    p = subparsers.add_parser(
        "model-card",
        help="Markdown model card from the metrics, model info and training history",
    )
    p.add_argument("--metrics", nargs="+", required=True, help="metrics JSON files written by mlpf evaluate")
    p.add_argument("--model-info", nargs="*", default=[], help="model.json written by mlpf train")
    p.add_argument("--history", nargs="*", default=[], help="training history CSV")
    p.add_argument("--replicas", nargs="*", default=[], help="spread across seeds written by mlpf replicas")
    p.add_argument(
        "--figures",
        default=None,
        help="the directory `mlpf plots` wrote, linked from the card (default: plots/)",
    )
    p.add_argument(
        "--output", required=True, help="output Markdown file (e.g. results/models/mlpf/model_card.md)"
    )
    p.set_defaults(handler=_model_card)

    p = subparsers.add_parser(
        "paper-manifest",
        help="map the figures of the MLPF paper to the files this run produced",
        description="Write <output>/manifest.json and manifest.md: per figure of arXiv:2309.06782, the produced "
        "files per sample, the metrics files and the config and version that made them.",
    )
    p.add_argument("--plots", required=True, help="figures directory written by mlpf plots")
    p.add_argument("--metrics", nargs="*", default=[], help="metrics JSON files written by mlpf evaluate")
    p.add_argument("--model-card", default=None, help="model card written by mlpf model-card")
    p.add_argument("--config-json", default="{}", help="the workflow config (JSON) recorded in the manifest")
    p.add_argument("--output", required=True, help="output directory (e.g. results/paper/mlpf)")
    p.set_defaults(handler=_paper_manifest)

    p = subparsers.add_parser(
        "compare",
        help="two MLPF models of the same events (hit and cluster level) and the baseline PF side by side",
        description="Write <output>/comparison.{json,md} (jets, MET, per-class efficiency and fake rate) and "
        "<output>/<sample>/{resolution,per_class}.{png,pdf}; the directory appears only when complete.",
    )
    p.add_argument("--metrics", nargs="+", required=True, help="the first model's metrics JSON (per sample)")
    p.add_argument("--second-metrics", nargs="+", required=True, help="the second model's metrics JSON")
    p.add_argument("--labels", nargs=2, default=["hits", "clusters"], help="what each model's elements are")
    p.add_argument("--models", nargs=2, required=True, help="the two model names, recorded in the output")
    p.add_argument("--output", required=True, help="output directory (e.g. results/compare/mlpf_hits)")
    p.set_defaults(handler=_compare)
