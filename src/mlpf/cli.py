"""The `mlpf` command: one subcommand per stage of the chain.

Each stage package registers its own subcommands (`register(subparsers)` in its `cli` module). Those modules
import only argparse at load time, so `mlpf --help` is instant; the heavy libraries load in the handlers.

Before a stage runs, its output paths are checked writable and its input files checked not to be directories
(the tables below), so that a long job does not fail only when it writes. A user error (`MlpfError`, which
includes an output that cannot be written) is printed as one line and exits with status 2; any other
operating-system error (a disk that fills up midway, a vanished input) is one line with exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlpf import __version__
from mlpf.errors import MlpfError

if TYPE_CHECKING:
    from mlpf.atomic import OutputKind

# Modules that define `register(subparsers)`, in the order of the chain.
COMMAND_MODULES = (
    "mlpf.config_cli",  # config validate, config docs
    "mlpf.sim.cli",  # fastsim
    "mlpf.io.cli",  # download (Zenodo)
    "mlpf.data.cli",  # parse, dataset-validate
    "mlpf.training.cli",  # train
    "mlpf.inference.cli",  # infer, export
    "mlpf.evaluate.cli",  # evaluate, plots, view-figures, model-card, paper-manifest
    "mlpf.hpo.cli",  # hpo (hyperparameter optimisation), replicas
)


# Arguments naming outputs, per subcommand (argparse dest -> what the path is; see mlpf.atomic.OutputKind).
OUTPUT_ARGUMENTS: dict[str, dict[str, OutputKind]] = {
    "config": {"update": "file"},
    "fastsim": {"output": "file"},
    "fastsim-validate": {"output": "directory"},
    "download": {"output": "file"},
    "key4hep-run": {"output": "file"},
    "parse": {"output": "file"},
    "dataset-validate": {"output": "file"},
    "train": {"output_dir": "files-inside"},
    "infer": {"output": "file"},
    "export": {"output": "file"},
    "evaluate": {"metrics": "file", "responses": "file"},
    "plots": {"output": "directory"},
    "view-figures": {"output": "directory"},
    "model-card": {"output": "file"},
    "paper-manifest": {"output": "directory"},
    "compare": {"output": "directory"},
}
# Arguments naming input files (one path or a list), per subcommand: a directory there is a one-line error.
INPUT_FILE_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "config": ("file",),
    "parse": ("input",),
    "dataset-validate": ("shards",),
    "train": ("train",),
    "infer": ("checkpoint", "input"),
    "export": ("checkpoint",),
    "evaluate": ("predictions",),
    "plots": ("responses", "metrics", "history", "timing"),
    "model-card": ("metrics", "model_info", "history"),
    "paper-manifest": ("metrics", "model_card"),
    "compare": ("metrics", "second_metrics"),
}


def _paths(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def check_paths(args: argparse.Namespace) -> None:
    """Fail now, in one line, on an input file that is a directory or an output that cannot be written."""
    from mlpf.atomic import check_writable
    from mlpf.errors import InputFileError

    for dest in INPUT_FILE_ARGUMENTS.get(args.command, ()):
        for path in _paths(getattr(args, dest, None)):
            if Path(path).is_dir():
                raise InputFileError("is a directory, not a file", path=path)
    for dest, kind in OUTPUT_ARGUMENTS.get(args.command, {}).items():
        for path in _paths(getattr(args, dest, None)):
            check_writable(path, kind)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _os_error_line(exc: OSError) -> str:
    """An OSError as `path: cause` (the cause alone when no path is attached)."""
    cause = exc.strerror or str(exc)
    names = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    return _one_line(f"{' -> '.join(names)}: {cause}" if names else cause)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The two ways a stage receives its config section: JSON from a rule, or a whole config file."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--settings", metavar="JSON", help="this stage's config section as JSON (as rules pass it)"
    )
    group.add_argument("--config", metavar="YAML", help="a whole config file; this stage's section is used")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpf", description="Machine-learned particle-flow workflow stages."
    )
    parser.add_argument("--version", action="version", version=f"mlpf {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="<stage>")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        check_paths(args)
        return int(args.handler(args) or 0)
    except MlpfError as exc:
        sys.stderr.write(f"mlpf {args.command}: error: {_one_line(str(exc))}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"mlpf {args.command}: error: {_os_error_line(exc)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"mlpf {args.command}: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
