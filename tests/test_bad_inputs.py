"""The bad-input corpus: every way an input file, a setting or the filesystem can be wrong is one line.

Each case builds its bad input under a fresh directory and runs `mlpf` as a user would (mlpf.cli.main, the
console script's entry point). It must exit non-zero with exactly one error line on stderr, naming the file
(or the option) at fault, with no traceback, and leave no output and no temporary file behind.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from edm4hep_fixtures import CLD_FILE
from mlpf.cli import INPUT_FILE_ARGUMENTS, OUTPUT_ARGUMENTS, build_parser, main
from mlpf.runtime import save_checkpoint
from mlpf.training.loop import train
from model._synthetic import write_parquet

MODEL = {"width": 16, "num_layers": 1, "num_heads": 2, "head_width": 8}


@dataclass
class Setup:
    """What a case runs: the command line, text the error line must contain, the output that must not appear."""

    argv: list[str]
    names: str
    output: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a checkpoint, a parsed shard) from a tiny training."""
    root = tmp_path_factory.mktemp("bad-inputs")
    shard = write_parquet(root / "ttbar" / "0.parquet", 12, 1)
    train([shard], root / "model", MODEL, {"epochs": 1, "batch_size": 4}, {}, seed=1, threads=1)
    return root / "model" / "checkpoint.pt", shard


def assert_one_line_error(capsys: pytest.CaptureFixture, rc: int, command: str, names: str) -> str:
    assert rc != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"mlpf {command}: error: "), errors[0]
    assert names in errors[0], errors[0]
    return errors[0]


def assert_nothing_left(output: Path, before: set[Path]) -> None:
    assert not output.exists()
    left = set(output.parent.iterdir()) - before if output.parent.exists() else set()
    assert not left, f"left behind: {sorted(map(str, left))}"


def run_case(setup: Setup, capsys: pytest.CaptureFixture, tmp: Path) -> str:
    if setup.output == NOTHING:
        setup.output = tmp / NOTHING
    before = set(setup.output.parent.iterdir()) if setup.output.parent.exists() else set()
    rc = main(["--log-level", "ERROR", *setup.argv])
    line = assert_one_line_error(capsys, rc, setup.argv[0], setup.names)
    assert_nothing_left(setup.output, before)
    return line


# --- damaged files ------------------------------------------------------------------------------------------


def corrupt_data_page(shard: Path, to: Path) -> Path:
    """A copy of `shard` with bytes of the X column's first data page overwritten; the footer stays intact."""
    column = pq.ParquetFile(shard).metadata.row_group(0).column(0)
    data = bytearray(shard.read_bytes())
    data[column.data_page_offset : column.data_page_offset + 64] = b"\xa5" * 64
    to.parent.mkdir(parents=True, exist_ok=True)
    to.write_bytes(bytes(data))
    return to


def overwrite_tensor_bytes(checkpoint: Path, to: Path) -> Path:
    """A copy of `checkpoint` with 64 bytes of one weight tensor's data overwritten (the file still loads)."""
    state = torch.load(checkpoint, weights_only=True)
    weight = next(t for t in state["model_state"].values() if t.numel() >= 64)
    needle = weight.reshape(-1)[:16].numpy().tobytes()
    data = bytearray(checkpoint.read_bytes())
    at = data.find(needle)
    assert at > 0
    data[at : at + 64] = np.full(16, 7.5, dtype=np.float32).tobytes()
    to.write_bytes(bytes(data))
    return to


def nan_weights(checkpoint: Path, to: Path) -> Path:
    """A well-formed checkpoint (valid checksum) of a model whose weights are NaN."""
    state = torch.load(checkpoint, weights_only=True)
    state.pop("checksum", None)
    for tensor in state["model_state"].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    save_checkpoint(to, state)
    return to


def with_value(shard: Path, to: Path, event: int, element: int, column: int, value: float) -> Path:
    """A copy of `shard` with X[event][element][column] set to `value`."""
    events = ak.from_parquet(shard)
    counts = ak.to_numpy(ak.num(events.X, axis=1))
    flat = ak.to_numpy(ak.flatten(events.X, axis=1)).copy()
    flat[int(np.sum(counts[:event])) + element, column] = value
    events = ak.with_field(events, ak.unflatten(ak.from_numpy(flat), counts), "X")
    to.parent.mkdir(parents=True, exist_ok=True)
    ak.to_parquet(events, to)
    return to


def case_train_on_corrupt_page(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    bad = corrupt_data_page(trained[1], tmp / "ttbar" / "0.parquet")
    out = tmp / "model"
    return Setup(["train", "--train", str(bad), "--output-dir", str(out)], f"{bad}: corrupt data", out)


def case_infer_on_corrupt_page(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    bad = corrupt_data_page(trained[1], tmp / "ttbar" / "0.parquet")
    out = tmp / "pred.parquet"
    argv = ["infer", "--checkpoint", str(trained[0]), "--input", str(bad), "--output", str(out)]
    return Setup(argv, f"{bad}: corrupt data", out)


def case_validate_other_schema(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    other = tmp / "ttbar" / "responses.parquet"
    other.parent.mkdir()
    pq.write_table(pa.table({"jet_pt": [1.0, 2.0], "response": [0.9, 1.1]}), other)
    out = tmp / "summary.json"
    return Setup(["dataset-validate", str(other), "--output", str(out)], f"{other}: not a parsed shard", out)


def case_validate_out_of_range(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    # a cluster energy as a damaged float reads (1.9e38 GeV): finite, so only the range check can see it
    x = ak.to_numpy(ak.from_parquet(trained[1]).X[3])
    first_cluster = int(np.flatnonzero(x[:, 0] == 2)[0])
    bad = with_value(trained[1], tmp / "ttbar" / "0.parquet", 3, first_cluster, 5, 1.9e38)
    out = tmp / "summary.json"
    argv = ["dataset-validate", str(bad), "--output", str(out)]
    return Setup(argv, f"{bad}: event 3: X cluster energy 1.9e+38 GeV is outside the physical range", out)


def case_infer_corrupt_checkpoint(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    bad = overwrite_tensor_bytes(trained[0], tmp / "checkpoint.pt")
    out = tmp / "pred.parquet"
    argv = ["infer", "--checkpoint", str(bad), "--input", str(trained[1]), "--output", str(out)]
    return Setup(argv, f"{bad}: corrupt checkpoint", out)


def case_export_corrupt_checkpoint(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    bad = overwrite_tensor_bytes(trained[0], tmp / "checkpoint.pt")
    out = tmp / "model.onnx"
    return Setup(
        ["export", "--checkpoint", str(bad), "--output", str(out)], f"{bad}: corrupt checkpoint", out
    )


def case_infer_nonfinite_predictions(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    bad = nan_weights(trained[0], tmp / "checkpoint.pt")
    out = tmp / "pred.parquet"
    argv = ["infer", "--checkpoint", str(bad), "--input", str(trained[1]), "--output", str(out)]
    return Setup(argv, f"{bad}: the model predicts non-finite values", out)


def overwrite_root_float(source: Path, to: Path, branch: str, value: float) -> Path:
    """A copy of a ROOT file with the first float of `branch` overwritten in place (an uncompressed basket)."""
    import uproot

    with uproot.open(source) as f:
        first = ak.to_numpy(ak.flatten(f["events"][branch].array(), axis=None))[:2].astype(">f4").tobytes()
    data = bytearray(source.read_bytes())
    at = data.find(first)
    if at < 0:
        pytest.skip(f"{branch} is compressed in this copy of {source.name}")
    data[at : at + 4] = np.array([value], dtype=">f4").tobytes()
    to.write_bytes(bytes(data))
    return to


def case_parse_damaged_root_file(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    # bytes overwritten mid-file: the file still reads, one calorimeter hit energy becomes 1.9e38 GeV
    if not CLD_FILE.is_file():
        pytest.skip("real EDM4HEP fixtures not available")
    bad = overwrite_root_float(CLD_FILE, tmp / "zh.edm4hep.root", "ECALEndcap/ECALEndcap.energy", 1.9e38)
    out = tmp / "zh.parquet"
    return Setup(
        ["parse", "--input", str(bad), "--output", str(out)],
        f"{bad}: event 0: calorimeter hit energy 1.9e+38 GeV is outside the physical range",
        out,
    )


def case_parse_input_is_directory(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    directory = tmp / "events.root"
    directory.mkdir()
    out = tmp / "shard.parquet"
    return Setup(
        ["parse", "--input", str(directory), "--output", str(out)], f"{directory}: is a directory", out
    )


# --- settings whose keys only disagree with each other ------------------------------------------------------


# `mlpf config validate` writes nothing: no file must appear beside its input
NOTHING = Path("no-output")


def config_file(tmp: Path, text: str) -> Path:
    path = tmp / "my.yaml"
    path.write_text(text)
    return path


def case_config_gun_range_inverted(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    path = config_file(tmp, "fastsim:\n  gun_energy_min: 150\n  gun_energy_max: 100\n")
    return Setup(["config", "validate", str(path)], f"{path}: fastsim.gun_energy_min: must be below", NOTHING)


def case_config_model_name_leaves_results(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    path = config_file(tmp, "model:\n  name: ..\n")
    return Setup(["config", "validate", str(path)], f"{path}: model.name: '..' does not match", NOTHING)


def case_config_heads_do_not_divide_width(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    path = config_file(tmp, "model:\n  width: 100\n  num_heads: 8\n")
    return Setup(["config", "validate", str(path)], f"{path}: model.width: must be a multiple of", NOTHING)


def case_fastsim_gun_range_inverted(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    out = tmp / "gun.root"
    settings = '{"gun_energy_min": 50, "gun_energy_max": 5}'
    argv = ["fastsim", "--sample", "gun_pi", "--shard", "0", "--output", str(out), "--settings", settings]
    return Setup(argv, "--settings: fastsim: gun_energy_min: must be below gun_energy_max", out)


def case_train_heads_do_not_divide_width(tmp: Path, trained: tuple[Path, Path]) -> Setup:
    out = tmp / "model"
    argv = ["train", "--train", str(trained[1]), "--output-dir", str(out)]
    argv += ["--model-settings", '{"width": 20, "num_heads": 8}']
    return Setup(argv, "--model-settings: model: width: must be a multiple of num_heads", out)


CASES: dict[str, Callable[[Path, tuple[Path, Path]], Setup]] = {
    name.removeprefix("case_"): f for name, f in globals().items() if name.startswith("case_")
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_leaves_nothing(
    name: str, tmp_path: Path, trained: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    run_case(CASES[name](tmp_path, trained), capsys, tmp_path)


# --- outputs that cannot be written -------------------------------------------------------------------------

# A command line per subcommand that argparse accepts; IN is an existing file, OUT the output under test.
COMMAND_LINES = {
    "config": ["config", "docs", "--update", "OUT"],
    "fastsim": ["fastsim", "--sample", "ttbar", "--shard", "0", "--output", "OUT"],
    "fastsim-validate": ["fastsim-validate", "--output", "OUT"],
    "download": ["download", "--file", "x.tar", "--output", "OUT"],
    "key4hep-run": ["key4hep-run", "--sample", "ttbar", "--shard", "0", "--output", "OUT"],
    "parse": ["parse", "--input", "IN", "--output", "OUT"],
    "dataset-validate": ["dataset-validate", "IN", "--output", "OUT"],
    "train": ["train", "--train", "IN", "--output-dir", "OUT"],
    "infer": ["infer", "--checkpoint", "IN", "--input", "IN", "--output", "OUT"],
    "export": ["export", "--checkpoint", "IN", "--output", "OUT"],
    "evaluate": [
        "evaluate",
        "--predictions",
        "IN",
        "--sample",
        "ttbar",
        "--model",
        "m",
        "--metrics",
        "OUT",
        "--responses",
        "OUT",
    ],
    "plots": ["plots", "--responses", "IN", "--output", "OUT"],
    "view-figures": [
        "view-figures",
        "--figures",
        "IN",
        "--model",
        "m",
        "--events",
        "e",
        "--dataset",
        "d",
        "--output",
        "OUT",
    ],
    "model-card": ["model-card", "--metrics", "IN", "--output", "OUT"],
    "paper-manifest": ["paper-manifest", "--plots", "IN", "--output", "OUT"],
    "compare": [
        "compare",
        "--metrics",
        "IN",
        "--second-metrics",
        "IN",
        "--models",
        "a",
        "b",
        "--output",
        "OUT",
    ],
}


def _subparsers(parser) -> dict:
    action = next(a for a in parser._actions if a.dest in ("command", "action"))
    return action.choices


def _dests(parser) -> set[str]:
    dests = {a.dest for a in parser._actions}
    nested = [a for a in parser._actions if a.dest == "action"]
    for action in nested:
        for sub in action.choices.values():
            dests |= {a.dest for a in sub._actions}
    return dests


def test_every_output_argument_is_checked_before_the_stage_runs() -> None:
    commands = _subparsers(build_parser())
    for command, outputs in OUTPUT_ARGUMENTS.items():
        assert set(outputs) <= _dests(commands[command]), command
    for command, inputs in INPUT_FILE_ARGUMENTS.items():
        assert set(inputs) <= _dests(commands[command]), command
    for command, parser in commands.items():
        named_output = {
            a.dest
            for a in parser._actions
            if a.dest.startswith("output") or (a.help or "").lower().startswith("output")
        }
        assert named_output <= set(OUTPUT_ARGUMENTS.get(command, {})), command
    assert set(COMMAND_LINES) == set(OUTPUT_ARGUMENTS)


def _command_line(command: str, tmp: Path, out: Path) -> list[str]:
    source = tmp / "in.dat"
    source.write_text("x")
    return [str(out) if a == "OUT" else str(source) if a == "IN" else a for a in COMMAND_LINES[command]]


OUTPUTS = [
    (command, dest, kind) for command, outputs in OUTPUT_ARGUMENTS.items() for dest, kind in outputs.items()
]


@pytest.mark.parametrize(("command", "dest", "kind"), OUTPUTS)
def test_an_output_in_the_way_is_one_line_before_any_work(
    command: str, dest: str, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # a directory where a file goes, a file where a directory goes: refused before the stage starts
    out = tmp_path / "out"
    out.mkdir() if kind == "file" else out.write_text("not a directory")
    argv = _command_line(command, tmp_path, out)
    before = sorted(tmp_path.rglob("*"))
    rc = main(["--log-level", "ERROR", *argv])
    expected = "is a directory" if kind == "file" else "exists and is not a directory"
    assert_one_line_error(capsys, rc, command, f"{out}: {expected}")
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("command", sorted(OUTPUT_ARGUMENTS))
def test_an_output_under_a_file_is_one_line_before_any_work(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file where a directory should be")
    out = blocker / "out"
    rc = main(["--log-level", "ERROR", *_command_line(command, tmp_path, out)])
    assert_one_line_error(capsys, rc, command, f"{out}: cannot be created: {blocker} is not a directory")


def _disk_full(table, where, *args, **kwargs):
    """pq.write_table on a full disk: part of the file, then pyarrow's OSError (errno set, no file name)."""
    Path(where).write_bytes(b"PAR1 partial")
    raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")


def test_disk_full_while_writing_predictions_is_one_line(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pq, "write_table", _disk_full)
    out = tmp_path / "predictions" / "ttbar.parquet"
    argv = ["infer", "--checkpoint", str(trained[0]), "--input", str(trained[1]), "--output", str(out)]
    run_case(Setup(argv, f"{out}: cannot write (No space left on device)", out), capsys, tmp_path)
    assert list(out.parent.iterdir()) == []


def _can_mount_in_a_user_namespace() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "mount", "-t", "tmpfs", "none", "/mnt"], capture_output=True, check=False
    )
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(
    not _can_mount_in_a_user_namespace(), reason="no unprivileged user namespace with mounts here"
)


@needs_mount
@pytest.mark.parametrize(
    ("options", "cause"),
    [("size=4k", "cannot write (No space left on device)"), ("ro,size=4k", "(Read-only file system)")],
)
def test_a_real_full_or_read_only_filesystem_is_one_line(
    options: str, cause: str, trained: tuple[Path, Path], tmp_path: Path
) -> None:
    # a tmpfs of 4 KiB (too small for the predictions) or a read-only one, mounted in a user namespace
    mount = tmp_path / "fs"
    mount.mkdir()
    out = mount / "pred.parquet"
    mlpf = [sys.executable, "-m", "mlpf", "--log-level", "ERROR", "infer", "--checkpoint", str(trained[0])]
    mlpf += ["--input", str(trained[1]), "--output", str(out), "--threads", "1"]
    # the mount lives as long as the namespace: list what the command left in it before leaving
    script = (
        f"mount -t tmpfs -o {options} none {mount} && {{ {' '.join(mlpf)}; rc=$?; ls -A {mount}; exit $rc; }}"
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode not in (0, 32)  # 32: mount failed
    assert done.stdout == ""  # nothing left on the filesystem, not even a temporary
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(f"mlpf infer: error: {out}: "), errors[0]
    assert cause in errors[0]
    assert "Traceback" not in done.stderr
