"""`mlpf download` (Zenodo record files and EDM4HEP shards) and `mlpf key4hep-check` (is a stack there?)."""

from __future__ import annotations

import argparse

# The default download directory, repeated from mlpf.io.zenodo so that building the parser imports nothing
# heavy (tests/io/test_zenodo.py checks they agree).
DEFAULT_DOWNLOAD_DIR = "resources/zenodo"


def register(subparsers: argparse._SubParsersAction) -> None:
    from mlpf.cli import add_settings_arguments

    d = subparsers.add_parser(
        "download",
        help="list, select and download the published CLIC EDM4HEP files from Zenodo (md5-verified, "
        "resumable), or place one shard",
        description="Modes. --list: the record's files (key, size in bytes, md5), printed or, with --output, "
        "kept as JSON. --select SAMPLE: the sample's files chosen by its patterns (zenodo.samples) from the "
        "record's listing or from zenodo.local_dir, written to --output with their sizes and md5s (the "
        "provenance of the sample's shards). --file KEY: one record file to --output. --sample/--shard: the "
        "shard-th ROOT file of the sample's files, written to --output (files downloaded first where needed).",
    )
    mode = d.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="list the record's files")
    mode.add_argument("--select", metavar="SAMPLE", help="choose a sample's files; writes a JSON manifest")
    mode.add_argument("--file", metavar="KEY", help="one record file to download to --output")
    mode.add_argument("--sample", help="sample name (ttbar, qq, zh_tautau, ...); needs --shard and --output")
    d.add_argument("--shard", type=int, help="shard index: the k-th ROOT file of the sample's files")
    d.add_argument("--output", help="output path (written atomically)")
    d.add_argument("--record", type=int, help="Zenodo record id (default: zenodo.record)")
    d.add_argument(
        "--listing",
        metavar="JSON",
        help="a listing kept by --list --output, used instead of asking the records API again",
    )
    d.add_argument(
        "--download-dir",
        default=DEFAULT_DOWNLOAD_DIR,
        help="where record files are kept, under a subdirectory per record (default: resources/zenodo)",
    )
    d.add_argument(
        "--manifest",
        metavar="JSON",
        help="for --sample: the files named by this manifest of --select, in its order (as the workflow does)",
    )
    d.add_argument(
        "--archives",
        nargs="+",
        metavar="PATH",
        help="for --sample: use these archives / ROOT files / unpacked directories, in this order, instead of "
        "resolving them from the config (as the workflow does)",
    )
    add_settings_arguments(d)
    d.set_defaults(handler=_run_download)

    k = subparsers.add_parser(
        "key4hep-check",
        help="check that a Key4HEP stack (setup script or Apptainer image) and the reconstruction's "
        "configuration directory are available",
        description="Exit 0 and print what will be used if a Key4HEP stack and key4hep.clic_config_dir are "
        "available; otherwise print one line saying what is missing and exit 2.",
    )
    k.add_argument("--setup-script", help="override key4hep.setup_script")
    k.add_argument("--image", help="override key4hep.apptainer_image")
    add_settings_arguments(k)
    k.set_defaults(handler=_run_key4hep_check)

    r = subparsers.add_parser(
        "key4hep-run",
        help="generate, simulate and reconstruct one shard with the Key4HEP stack (Pythia8, ddsim, CLIC reco)",
        description="Check for a Key4HEP stack, then run the shard's job (the commands the key4hep rule shows) "
        "through workflow/resources/key4hep/in_stack.sh. --dry-run prints the command instead.",
    )
    r.add_argument("--sample", required=True, help="sample name (ttbar, qq, ..., ttbar_pu10, gun_e, ...)")
    r.add_argument("--shard", type=int, required=True, help="shard index (sets the job seed)")
    r.add_argument("--output", required=True, help="output EDM4HEP file (placed atomically)")
    r.add_argument(
        "--resources",
        default="workflow/resources/key4hep",
        help="directory with in_stack.sh, cards and steering (default: workflow/resources/key4hep)",
    )
    r.add_argument("--dry-run", action="store_true", help="print the command and the job script; run nothing")
    add_settings_arguments(r)
    r.set_defaults(handler=_run_key4hep_run)


def _settings(args: argparse.Namespace) -> dict:
    from mlpf.config import settings_from_cli

    settings = settings_from_cli("zenodo", args.settings, args.config)
    if args.record is not None:
        settings["record"] = args.record
    return settings


def _listing(args: argparse.Namespace, settings: dict):
    """The record's listing: from --listing if given (checked to be the configured record), else the API."""
    from mlpf.errors import ConfigError
    from mlpf.io import zenodo

    if not args.listing:
        policy = zenodo.RetryPolicy.from_settings(settings)
        return zenodo.fetch_listing(settings["record"], settings["api_url"], policy)
    listing = zenodo.Listing.read(args.listing)
    if str(listing.record) != str(settings["record"]):
        raise ConfigError(f"--listing {args.listing} is of record {listing.record}, not {settings['record']}")
    return listing


def _require_output(args: argparse.Namespace) -> str:
    from mlpf.errors import ConfigError

    if not args.output:
        raise ConfigError("--output is required with --select, --file and --sample")
    return args.output


def _run_download(args: argparse.Namespace) -> int:
    from mlpf.io import zenodo

    settings = _settings(args)
    if args.list:
        return _download_list(args, settings)
    output = _require_output(args)
    if args.select:
        listing = None if settings["local_dir"] else _listing(args, settings)
        manifest = zenodo.sample_manifest(settings, args.select, listing, args.download_dir)
        zenodo.write_json(output, manifest)
        return 0
    if args.file:
        return _download_one(args, settings, output)
    return _download_shard(args, settings, output)


def _download_list(args: argparse.Namespace, settings: dict) -> int:
    from mlpf.io import zenodo

    listing = _listing(args, settings)
    if args.output:
        zenodo.write_text_atomic(args.output, listing.to_json())
        return 0
    for rf in listing.files():
        print(f"{rf.key}\t{rf.size}\t{rf.md5 or '-'}")  # noqa: T201 - the listing is the output
    return 0


def _download_one(args: argparse.Namespace, settings: dict, output: str) -> int:
    from mlpf.errors import ConfigError
    from mlpf.io import zenodo

    listing = _listing(args, settings)
    files = {rf.key: rf for rf in listing.files()}
    if args.file not in files:
        raise ConfigError(
            f"Zenodo record {settings['record']} has no file '{args.file}'; it has: {', '.join(files)}"
        )
    zenodo.download_file(files[args.file], output, zenodo.RetryPolicy.from_settings(settings))
    return 0


def _download_shard(args: argparse.Namespace, settings: dict, output: str) -> int:
    from pathlib import Path

    from mlpf.errors import ConfigError
    from mlpf.io import zenodo

    if args.shard is None or args.shard < 0:
        raise ConfigError("--sample needs --shard (a non-negative integer)")
    if args.manifest or args.archives:
        sources = [
            Path(p) for p in (zenodo.manifest_paths(args.manifest) if args.manifest else args.archives)
        ]
        missing = [str(p) for p in sources if not p.exists()]
        if missing:
            raise ConfigError(f"{args.manifest or '--archives'}: not found: {', '.join(missing)}")
    else:
        sources = zenodo.fetch_sample_files(settings, args.sample, download_dir=args.download_dir)
    zenodo.place_shard(sources, args.shard, output, link=settings["local_link"])
    return 0


def _run_key4hep_check(args: argparse.Namespace) -> int:
    from mlpf.config import settings_from_cli
    from mlpf.io.key4hep import find_stack

    settings = settings_from_cli("key4hep", args.settings, args.config)
    if args.setup_script is not None:
        settings["setup_script"] = args.setup_script
    if args.image is not None:
        settings["apptainer_image"] = args.image
    stack = find_stack(settings)
    print(  # noqa: T201 - the answer is the output
        f"Key4HEP stack: {stack.describe()}; production {settings['production']}; "
        f"configuration {settings['clic_config_dir']}"
    )
    return 0


def _run_key4hep_run(args: argparse.Namespace) -> int:
    import shlex
    import subprocess
    from pathlib import Path

    from mlpf.config import settings_from_cli
    from mlpf.errors import ConfigError
    from mlpf.io.key4hep import find_stack, job_script, stack_arguments

    settings = settings_from_cli("key4hep", args.settings, args.config)
    if args.shard < 0:
        raise ConfigError(f"--shard must be a non-negative integer (got {args.shard})")
    runner = Path(args.resources) / "in_stack.sh"
    if not runner.is_file():
        raise ConfigError(
            f"--resources: {runner} not found (run from the repository root or pass --resources)"
        )
    command = [
        "bash",
        str(runner),
        *stack_arguments(settings),
        "--output",
        args.output,
        "--script",
        job_script(args.sample, args.shard, settings),
    ]
    if args.dry_run:
        print(shlex.join(command))  # noqa: T201 - the command is the output
        return 0
    find_stack(settings)  # one clear line if there is no stack
    return subprocess.run(command, check=False).returncode
