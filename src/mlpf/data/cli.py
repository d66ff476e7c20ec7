"""`mlpf parse` (EDM4HEP -> parquet shard) and `mlpf dataset-validate` (summary and checks of shards)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from mlpf.cli import add_settings_arguments

    parse = subparsers.add_parser(
        "parse",
        help="turn one EDM4HEP file into a parquet shard of elements, targets and candidates",
        description="Read one EDM4HEP file (legacy podio, podio 1.x or fastsim layout) and write one parquet "
        "shard: per event the element features X, target particles, baseline PF candidates and truth "
        "particles (docs/contracts.md section 2, docs/dataset.md).",
    )
    parse.add_argument("--input", required=True, metavar="ROOT", help="EDM4HEP file")
    parse.add_argument("--output", required=True, metavar="PARQUET", help="output shard")
    parse.add_argument(
        "--source",
        metavar="JSON",
        help='where the file was acquired, recorded with its events (e.g. \'{"source": "zenodo", '
        '"zenodo_record": 8260741}\'; the workflow passes it)',
    )
    add_settings_arguments(parse)
    parse.set_defaults(handler=_parse)

    validate = subparsers.add_parser(
        "dataset-validate",
        help="summarise parsed shards per sample and check them (NaN/inf, conservation)",
        description="Per sample (parent directory name): events, element counts, class fractions, target "
        "coverage of visible truth energy, candidate energy vs PandoraPFOs, NaN/inf checks. Exit status 1 "
        "when a check fails.",
    )
    validate.add_argument("shards", nargs="+", metavar="PARQUET", help="parsed shards")
    validate.add_argument("--output", metavar="JSON", help="also write the summary as JSON")
    validate.set_defaults(handler=_validate)


def _parse(args: argparse.Namespace) -> int:
    from mlpf.config import settings_from_cli
    from mlpf.data.parse import parse_file

    settings = settings_from_cli("dataset", args.settings, args.config)
    parse_file(args.input, args.output, settings, workflow_source=_source_record(args.source))
    return 0


def _source_record(text: str | None) -> dict | None:
    import json

    from mlpf.errors import ConfigError

    if text is None:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--source is not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise ConfigError("--source must be a JSON object")
    return record


def _validate(args: argparse.Namespace) -> int:
    import json

    from mlpf.atomic import write_text_atomic
    from mlpf.data.validate import format_summary, validate_shards

    summary = validate_shards(args.shards)
    print(format_summary(summary))  # noqa: T201 - the summary is this command's output
    if args.output:
        write_text_atomic(args.output, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return 0 if summary["ok"] else 1
