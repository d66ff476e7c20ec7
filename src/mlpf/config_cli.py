"""`mlpf config`: validate a config file, or print/update the key reference generated from the schema."""

from __future__ import annotations

import argparse


def _validate(args: argparse.Namespace) -> int:
    from mlpf.config import load_config

    load_config(args.file)
    print(f"{args.file}: valid")  # noqa: T201 - the verdict is the output
    return 0


def _docs(args: argparse.Namespace) -> int:
    from mlpf.config_docs import key_reference, update_readme

    if args.update:
        changed = update_readme(args.update)
        print(f"{args.update}: {'updated' if changed else 'already current'}")  # noqa: T201 - the output
    else:
        print(key_reference())  # noqa: T201 - the reference is the output
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="validate a config file or document the config keys")
    actions = parser.add_subparsers(dest="action", required=True)
    validate = actions.add_parser("validate", help="check a config file against the schema")
    validate.add_argument("file")
    validate.set_defaults(handler=_validate)
    docs = actions.add_parser("docs", help="print the key reference (Markdown) generated from the schema")
    docs.add_argument("--update", metavar="README", help="rewrite the generated region of this file instead")
    docs.set_defaults(handler=_docs)
