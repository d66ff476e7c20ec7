"""`mlpf hpo create|worker|best|train-best|report` and `mlpf replicas summary` (heavy imports in handlers).

Every `mlpf hpo` step receives the same description of the study: the `hpo` config section, the base model,
training and dataset sections, the seed and the training shards, all as the rules pass them.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("mlpf.hpo")

SIGTERM_EXIT_CODE = 143  # the worker's job was ended by its batch system; the trial is retried later


def _json(name: str, text: str | None) -> Any:
    from mlpf.errors import ConfigError

    try:
        return json.loads(text) if text is not None else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--{name}-settings is not valid JSON ({exc.msg})") from None


def _section(name: str, text: str | None) -> dict[str, Any]:
    from mlpf.config import validate_section

    return validate_section(name, _json(name, text), source=f"--{name}-settings")


def _base(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {
        name: _section(name, getattr(args, f"{name}_settings")) for name in ("model", "training", "dataset")
    }


def _jets(args: argparse.Namespace) -> dict[str, Any]:
    """The jet definition of the validation's jet metric (evaluation.jets; the schema's default without one)."""
    from mlpf.config import validate_section

    jets = _json("jet", getattr(args, "jet_settings", None))
    return validate_section("evaluation", {"jets": jets}, source="--jet-settings")["jets"]


class _Study:
    """The study the arguments describe: settings, search space, definition and storage."""

    def __init__(self, args: argparse.Namespace) -> None:
        from . import space
        from . import study as studies

        self.hpo = _section("hpo", args.hpo_settings)
        self.base = _base(args)
        self.jets = _jets(args)
        self.seed = args.seed
        self.train = [str(p) for p in args.train]
        self.study_dir = Path(args.study_dir)
        self.dims = space.dimensions(self.hpo["search_space"])
        space.check(self.dims, self.base)
        studies.check_enqueue(self.hpo["enqueue"], self.dims)
        self.spec = studies.definition(self.hpo, self.base, self.seed, self.train, self.jets)
        self.storage = studies.open_storage(self.hpo["storage"], self.study_dir)
        self.name = self.hpo["study_name"]

    def settings(self) -> dict[str, Any]:
        """The settings recorded in outputs (the storage without a password)."""
        from . import study as studies

        hpo = {**self.hpo, "storage": studies.describe_storage(self.hpo["storage"])}
        return {"hpo": hpo, **self.base, "jets": self.jets, "seed": self.seed}

    def load(self) -> Any:
        from . import study as studies

        study = studies.load(self.storage, self.name)
        studies.check_definition(study, self.spec)
        return study


def _create(args: argparse.Namespace) -> int:
    from mlpf.atomic import write_text_atomic
    from mlpf.provenance import provenance

    from . import space
    from . import study as studies

    ctx = _Study(args)
    first = ([space.base_values(ctx.dims, ctx.base)] if ctx.hpo["enqueue_base"] else []) + ctx.hpo["enqueue"]
    study, created = studies.create_or_load(ctx.storage, ctx.name, ctx.spec, first)
    log.info(
        "%s study '%s' (%d trials so far)",
        "created" if created else "continuing",
        ctx.name,
        len(study.trials),
    )
    record = {
        "study": ctx.name,
        "storage": studies.describe_storage(ctx.hpo["storage"]),
        "dimensions": [d.name for d in ctx.dims],
        "trials_at_start": len(study.trials),
        "provenance": provenance(ctx.settings()),
    }
    write_text_atomic(args.output, json.dumps(record, indent=2) + "\n")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from mlpf.atomic import write_text_atomic
    from mlpf.provenance import provenance

    from .objective import TrialSetup, WorkerInterrupted
    from .worker import WorkerSettings, run_worker

    ctx = _Study(args)
    worker = WorkerSettings(str(Path(args.output).resolve()), args.index, ctx.hpo)
    setup = TrialSetup(
        dims=ctx.dims,
        base=ctx.base,
        train_files=ctx.train,
        seed=ctx.seed,
        objective=ctx.hpo["objective"],
        epochs=ctx.hpo["epochs"],
        trial_root=ctx.study_dir / "trials",
        threads=args.threads,
        jets=ctx.jets,
    )
    try:
        record = run_worker(ctx.storage, ctx.name, ctx.spec, worker, setup)
    except WorkerInterrupted as exc:
        log.error("worker %d stopped (%s); its trial is retried by the next worker", args.index, exc)
        return SIGTERM_EXIT_CODE
    record["provenance"] = provenance(ctx.settings(), worker=args.index)
    write_text_atomic(args.output, json.dumps(record, indent=2) + "\n")
    log.info("worker %d ran %d trial(s)", args.index, len(record["trials"]))
    return 0


def _best(args: argparse.Namespace) -> int:
    from .report import write_best

    ctx = _Study(args)
    write_best(ctx.load(), ctx.base["model"]["name"], args.best, args.trials)
    log.info("wrote %s and %s", args.best, args.trials)
    return 0


def _train_best(args: argparse.Namespace) -> int:
    from mlpf.config import validate_section
    from mlpf.training.loop import train

    from .report import read_overlay

    base = _base(args)
    overlay = read_overlay(args.best)
    sections = {}
    for name in ("model", "training"):
        merged = _merge(base[name], overlay.get(name, {}))
        sections[name] = validate_section(name, merged, source=str(args.best))
    summary = train(
        args.train,
        args.output_dir,
        sections["model"],
        sections["training"],
        base["dataset"],
        seed=args.seed,
        threads=args.threads,
        split_seed=args.split_seed,
        jet_settings=_jets(args),
    )
    return 0 if summary["finished"] else SIGTERM_EXIT_CODE


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` on top of `base`, nested mappings merged key by key (as Snakemake merges --configfile)."""
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = (
            _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return merged


def _report(args: argparse.Namespace) -> int:
    from .report import write_report

    ctx = _Study(args)
    runs = {
        "default": (args.default_history, args.default_info),
        "tuned": (args.tuned_history, args.tuned_info),
    }
    files = write_report(
        ctx.load(),
        args.best,
        args.trials,
        runs,
        ctx.base["training"]["loss_weights"],
        ctx.settings(),
        args.output,
    )
    log.info("wrote %d files under %s", len(files), args.output)
    return 0


def _replicas_summary(args: argparse.Namespace) -> int:
    from .replicas import write_replica_summary

    summary = write_replica_summary(args.history, args.info, args.seeds, args.metrics, args.figures)
    loss = summary["last_epoch"]["val_loss"]
    log.info("%d replicas: last-epoch validation loss %s +- %s", summary["n"], loss["mean"], loss["std"])
    return 0


def _add_base(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-settings", metavar="JSON", help="the base model config section")
    p.add_argument("--training-settings", metavar="JSON", help="the base training config section")
    p.add_argument("--dataset-settings", metavar="JSON", help="the dataset config section")
    p.add_argument(
        "--jet-settings", metavar="JSON", help="the evaluation.jets config section: the validation's jets"
    )
    p.add_argument("--seed", type=int, default=42, help="the config seed (weights, batch order, split)")
    p.add_argument("--train", nargs="+", required=True, metavar="PARQUET", help="training shards")


def _add_study(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hpo-settings", metavar="JSON", help="the hpo config section")
    p.add_argument("--study-dir", required=True, help="the study's directory (journal file, trials)")
    _add_base(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    hpo = subparsers.add_parser(
        "hpo", help="hyperparameter optimisation: study, workers, best config, report"
    )
    steps = hpo.add_subparsers(dest="step", required=True, metavar="<step>")

    p = steps.add_parser(
        "create", help="create the study (or check an existing one) and enqueue first trials"
    )
    _add_study(p)
    p.add_argument("--output", required=True, help="JSON record of the study")
    p.set_defaults(handler=_create)

    p = steps.add_parser("worker", help="run trials until the study's budget is spent")
    _add_study(p)
    p.add_argument("--index", type=int, default=0, help="worker number (seeds its sampler)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per trial (default: all)")
    p.add_argument("--output", required=True, help="JSON record of the trials this worker ran")
    p.set_defaults(handler=_worker)

    p = steps.add_parser("best", help="the best configuration (config overlay) and the trial table")
    _add_study(p)
    p.add_argument("--best", required=True, help="output YAML config overlay")
    p.add_argument("--trials", required=True, help="output CSV trial table")
    p.set_defaults(handler=_best)

    p = steps.add_parser("train-best", help="train the base configuration with the best overlay on top")
    _add_base(p)
    p.add_argument("--best", required=True, help="YAML config overlay written by `mlpf hpo best`")
    p.add_argument(
        "--split-seed", type=int, default=None, help="seed of the validation split (default --seed)"
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--output-dir", required=True, help="directory for checkpoint.pt, history.csv, model.json")
    p.set_defaults(handler=_train_best)

    p = steps.add_parser("report", help="results/hpo: best config, trials, figures, default vs tuned")
    _add_study(p)
    p.add_argument("--best", required=True, help="YAML config overlay written by `mlpf hpo best`")
    p.add_argument("--trials", required=True, help="CSV trial table written by `mlpf hpo best`")
    for variant in ("default", "tuned"):
        p.add_argument(
            f"--{variant}-history", nargs="+", required=True, help=f"history.csv of each {variant} run"
        )
        p.add_argument(
            f"--{variant}-info", nargs="+", required=True, help=f"model.json of each {variant} run"
        )
    p.add_argument("--output", required=True, help="output directory (replaced as a whole)")
    p.set_defaults(handler=_report)

    replicas = subparsers.add_parser(
        "replicas", help="statistics of trainings that differ only in their seed"
    )
    steps = replicas.add_subparsers(dest="step", required=True, metavar="<step>")
    p = steps.add_parser("summary", help="spread across seeds (JSON) and the mean +- std figure")
    p.add_argument("--history", nargs="+", required=True, help="history.csv of each replica")
    p.add_argument("--info", nargs="+", required=True, help="model.json of each replica")
    p.add_argument("--seeds", nargs="+", type=int, required=True, help="the seed of each replica")
    p.add_argument(
        "--metrics", required=True, help="output JSON (e.g. results/metrics/<model>/replicas.json)"
    )
    p.add_argument("--figures", required=True, help="directory for validation_seeds.png/.pdf")
    p.set_defaults(handler=_replicas_summary)
