"""`mlpf train`: the training stage (heavy imports happen inside the handler)."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger("mlpf.training")

SIGTERM_EXIT_CODE = 143  # 128 + SIGTERM, the shell convention for a job ended by SIGTERM


def _json_section(name: str, text: str | None) -> dict:
    from mlpf.config import validate_section
    from mlpf.errors import ConfigError

    if text is None:
        return validate_section(name, {}, source="defaults")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--{name}-settings is not valid JSON ({exc.msg})") from None
    return validate_section(name, value, source=f"--{name}-settings")


def _json_object(option: str, text: str) -> dict:
    """A JSON object given on the command line (validated where it is used)."""
    from mlpf.errors import ConfigError

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option} is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{option} must be a JSON object")
    return value


def _train(args: argparse.Namespace) -> int:
    from mlpf.config import load_config, settings_from_cli
    from mlpf.training.loop import train

    if args.config is not None:
        config = load_config(args.config)
        model, training, dataset = config["model"], config["training"], config["dataset"]
        jets = config["evaluation"]["jets"]
        # explicit JSON sections take precedence over the config file's
        if args.model_settings is not None:
            model = _json_section("model", args.model_settings)
        if args.dataset_settings is not None:
            dataset = _json_section("dataset", args.dataset_settings)
        if args.jet_settings is not None:
            jets = _json_object("--jet-settings", args.jet_settings)
        seed = args.seed if args.seed is not None else config["seed"]
    else:
        model = _json_section("model", args.model_settings)
        training = settings_from_cli("training", args.settings, None)
        dataset = _json_section("dataset", args.dataset_settings)
        jets = None if args.jet_settings is None else _json_object("--jet-settings", args.jet_settings)
        seed = 42 if args.seed is None else args.seed
    summary = train(
        args.train,
        args.output_dir,
        model,
        training,
        dataset,
        seed=seed,
        threads=args.threads,
        resume=args.resume,
        split_seed=args.split_seed,
        jet_settings=jets,
    )
    if not summary["finished"]:
        log.error(
            "stopped (%s) at step %d; resume with --resume", summary["stop_reason"], summary["global_step"]
        )
        return SIGTERM_EXIT_CODE if summary["stop_reason"] == "SIGTERM" else 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from mlpf.cli import add_settings_arguments

    p = subparsers.add_parser("train", help="train an MLPF model on parsed parquet shards")
    p.add_argument("--train", nargs="+", required=True, metavar="PARQUET", help="training shards")
    add_settings_arguments(p)  # --settings = training section, or --config for a whole config file
    p.add_argument("--model-settings", metavar="JSON", help="the model config section as JSON")
    p.add_argument("--dataset-settings", metavar="JSON", help="the dataset config section as JSON")
    p.add_argument(
        "--jet-settings",
        metavar="JSON",
        help="the evaluation.jets config section as JSON: the jets of the validation's jet metric",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: config seed or 42)")
    p.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="seed of the training/validation split (default: --seed); replicas share the main run's",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all available cores)")
    p.add_argument("--output-dir", required=True, help="directory for checkpoint.pt, history.csv, model.json")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last.pt if it exists")
    p.set_defaults(handler=_train)
