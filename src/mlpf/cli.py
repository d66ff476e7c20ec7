"""The `mlpf` command: one subcommand per stage of the chain.

Each stage package registers its own subcommands (`register(subparsers)` in its `cli` module). Those modules
import only argparse at load time, so `mlpf --help` is instant; the heavy libraries load in the handlers.
A user error (`MlpfError`) is printed as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from mlpf import __version__
from mlpf.errors import MlpfError

# Modules that define `register(subparsers)`, in the order of the chain.
COMMAND_MODULES = (
    "mlpf.config_cli",  # config validate, config docs
    "mlpf.sim.cli",  # fastsim
    "mlpf.io.cli",  # download (Zenodo)
    "mlpf.data.cli",  # parse, dataset-validate
    "mlpf.model.cli",  # train, infer, export
    "mlpf.evaluate.cli",  # evaluate, plots, model-card
)


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
        return int(args.handler(args) or 0)
    except MlpfError as exc:
        sys.stderr.write(f"mlpf {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"mlpf {args.command}: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
