"""`mlpf download` (Zenodo record files and EDM4HEP shards) and `mlpf key4hep-check` (is a stack there?)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from mlpf.cli import add_settings_arguments

    d = subparsers.add_parser(
        "download",
        help="download published CLIC EDM4HEP files from Zenodo (md5-verified, resumable) or place one shard",
        description="Three modes. --sample/--shard: make the sample's record files available (downloaded, or "
        "from zenodo.local_dir) and write its shard-th ROOT file to --output. --file: download one record file "
        "to --output. --list: print the record's files (key, size in bytes, md5).",
    )
    mode = d.add_mutually_exclusive_group(required=True)
    mode.add_argument("--sample", help="sample name (ttbar, qq, zh_tautau, ...); needs --shard and --output")
    mode.add_argument("--file", metavar="KEY", help="one record file to download to --output")
    mode.add_argument("--list", action="store_true", help="list the record's files and exit")
    d.add_argument("--shard", type=int, help="shard index: the k-th ROOT file of the sample's archives")
    d.add_argument("--output", help="output path (written atomically)")
    d.add_argument("--record", type=int, help="Zenodo record id (default: zenodo.record)")
    d.add_argument(
        "--download-dir",
        default="resources/zenodo",
        help="where --sample keeps downloaded record files, under a subdirectory per record "
        "(default: resources/zenodo)",
    )
    d.add_argument(
        "--archives",
        nargs="+",
        metavar="PATH",
        help="use these already downloaded archives / ROOT files / unpacked directories for --sample "
        "instead of resolving them from the config (as the workflow does)",
    )
    add_settings_arguments(d)
    d.set_defaults(handler=_run_download)

    k = subparsers.add_parser(
        "key4hep-check",
        help="check that a Key4HEP stack (setup script or Apptainer image) is available",
        description="Exit 0 and print what will be used if a Key4HEP stack is available; otherwise print one "
        "line saying what is missing and exit 2.",
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


def _run_download(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlpf.errors import ConfigError
    from mlpf.io import zenodo

    settings = _settings(args)
    policy = zenodo.RetryPolicy.from_settings(settings)
    api_url = settings["api_url"]
    if args.list:
        for rf in zenodo.fetch_record(settings["record"], api_url, policy):
            print(f"{rf.key}\t{rf.size}\t{rf.md5 or '-'}")  # noqa: T201 - the listing is the output
        return 0
    if not args.output:
        raise ConfigError("--output is required with --sample or --file")
    if args.file:
        listing = {f.key: f for f in zenodo.fetch_record(settings["record"], api_url, policy)}
        if args.file not in listing:
            raise ConfigError(f"Zenodo record {settings['record']} has no file '{args.file}'")
        zenodo.download_file(listing[args.file], args.output, policy)
        return 0
    if args.shard is None or args.shard < 0:
        raise ConfigError("--sample needs --shard (a non-negative integer)")
    if args.archives:
        sources = [Path(p) for p in args.archives]
        missing = [str(p) for p in sources if not p.exists()]
        if missing:
            raise ConfigError(f"--archives: not found: {', '.join(missing)}")
    else:
        sources = zenodo.fetch_sample_files(settings, args.sample, download_dir=args.download_dir)
    zenodo.place_shard(sources, args.shard, args.output, link=settings["local_link"])
    return 0


def _run_key4hep_check(args: argparse.Namespace) -> int:
    from mlpf.config import settings_from_cli
    from mlpf.io.key4hep import find_stack

    settings = settings_from_cli("key4hep", args.settings, args.config)
    if args.setup_script is not None:
        settings["setup_script"] = args.setup_script
    if args.image is not None:
        settings["apptainer_image"] = args.image
    print(f"Key4HEP stack: {find_stack(settings).describe()}")  # noqa: T201 - the answer is the output
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
