"""`mlpf fastsim` (one shard) and `mlpf fastsim-validate` (calibration figures and numbers)."""

from __future__ import annotations

import argparse

SAMPLE_NAMES = (
    "ttbar",
    "qq",
    "zh_tautau",
    "ww_fullhad",
    "z_tautau",
    "ttbar_pu10",
    "gun_e",
    "gun_mu",
    "gun_pi",
    "gun_pi0",
    "gun_kl",
    "gun_n",
    "gun_gamma",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from mlpf.cli import add_settings_arguments

    p = subparsers.add_parser(
        "fastsim",
        help="generate one shard: Pythia8 + CLICdet-like detector + baseline PF -> EDM4hep-named ROOT file",
        description="Generate one shard of a sample with Pythia8, simulate the CLICdet-like parametric detector "
        "and the rule-based baseline particle flow, and write an EDM4hep-named ROOT file.",
    )
    p.add_argument("--sample", required=True, help=f"sample name: {', '.join(SAMPLE_NAMES)}")
    p.add_argument("--shard", required=True, help="shard name or number (part of the job seed)")
    p.add_argument("--seed", type=int, default=None, help="master seed (default: the config's seed, else 42)")
    p.add_argument("--output", required=True, help="output ROOT file (written atomically)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_settings_arguments(p)
    p.set_defaults(handler=_run_fastsim)

    v = subparsers.add_parser(
        "fastsim-validate",
        help="calibration figures and numbers of the fastsim (resolutions, PF jets, multiplicities)",
        description="Generate calibration samples and write figures plus a JSON/Markdown summary: track pT "
        "resolution, ECAL/HCAL cluster energy resolution, baseline-PF jet energy resolution, tracks and "
        "clusters per ttbar event.",
    )
    v.add_argument("--output", required=True, help="output directory (replaced atomically)")
    v.add_argument("--events", type=int, default=400, help="events per calibration sample (default 400)")
    v.add_argument("--seed", type=int, default=1, help="master seed")
    add_settings_arguments(v)
    v.set_defaults(handler=_run_validate)


def _master_seed(args: argparse.Namespace) -> int:
    if args.seed is not None:
        return args.seed
    if args.config:
        from mlpf.config import load_config

        return int(load_config(args.config)["seed"])
    return 42


def _run_fastsim(args: argparse.Namespace) -> int:
    from mlpf.config import settings_from_cli
    from mlpf.errors import ConfigError
    from mlpf.sim.pipeline import run_shard

    settings = settings_from_cli("fastsim", args.settings, args.config)
    if args.sample not in SAMPLE_NAMES:
        raise ConfigError(f"unknown sample '{args.sample}'; known: {', '.join(SAMPLE_NAMES)}")
    run_shard(
        args.sample, args.shard, _master_seed(args), settings, args.output, show_progress=not args.no_progress
    )
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from mlpf.config import settings_from_cli
    from mlpf.errors import ConfigError
    from mlpf.evaluate.fastsim import run_validation

    if args.events < 10:
        raise ConfigError(f"--events must be at least 10 (got {args.events})")
    settings = settings_from_cli("fastsim", args.settings, args.config)
    run_validation(args.output, settings, n_events=args.events, seed=args.seed)
    return 0
