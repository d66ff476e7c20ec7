"""Zenodo download against a Zenodo-shaped HTTP server on 127.0.0.1 (records API + files).

Only the network boundary is replaced: the server speaks the records API (`/api/records/<id>` with `files:
[{key, size, checksum: "md5:...", links: {self}}]`) and serves the files with HTTP Range support, and can
corrupt a file, drop a connection mid-transfer or answer 503, as the real service sometimes does.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edm4hep_fixtures import CLIC_LEGACY_FILE as LEGACY_CLIC
from edm4hep_fixtures import CLIC_SIM_FILE as CLIC_SIM
from mlpf.cli import main
from mlpf.errors import InputFileError, MlpfError
from mlpf.io import zenodo
from snakemake_runner import run_snakemake, workdir_with_default_config

FAST = {"retries": 3, "backoff_seconds": 0.01, "max_backoff_seconds": 0.02, "timeout_seconds": 5.0}


@dataclass
class ServedFile:
    data: bytes
    md5: str | None = None  # advertised checksum; None = the true one
    drop_first: int = 0  # this many transfers send half the bytes, then close the connection
    fail_first: int = 0  # this many requests get HTTP 503


@dataclass
class FakeZenodo:
    """State of the loopback server: records, and a log of (path, Range header) per request."""

    records: dict[str, dict[str, ServedFile]] = field(default_factory=dict)
    metadata_fail_first: int = 0
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    port: int = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def file_requests(self, key: str) -> list[str | None]:
        return [rng for path, rng in self.requests if path.endswith(f"/{key}")]


def _handler(state: FakeZenodo) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _json(self, code: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Range")))
            if m := re.fullmatch(r"/api/records/(\w+)", self.path):
                return self._record(m.group(1))
            if m := re.fullmatch(r"/files/(\w+)/(.+)", self.path):
                return self._file(m.group(1), m.group(2))
            return self._json(404, {"status": 404, "message": "not found"})

        def _record(self, record: str) -> None:
            if state.metadata_fail_first > 0:
                state.metadata_fail_first -= 1
                return self._json(503, {"status": 503})
            if record not in state.records:
                return self._json(404, {"status": 404, "message": "PID does not exist."})
            files = [
                {
                    "key": key,
                    "size": len(f.data),
                    "checksum": "md5:" + (f.md5 or hashlib.md5(f.data).hexdigest()),
                    "links": {"self": f"http://127.0.0.1:{state.port}/files/{record}/{key}"},
                }
                for key, f in state.records[record].items()
            ]
            return self._json(200, {"id": int(record), "files": files})

        def _file(self, record: str, key: str) -> None:
            served = state.records.get(record, {}).get(key)
            if served is None:
                return self._json(404, {"status": 404})
            if served.fail_first > 0:
                served.fail_first -= 1
                return self._json(503, {"status": 503})
            data, start = served.data, 0
            if rng := self.headers.get("Range"):
                start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if served.drop_first > 0:  # promise the whole body, deliver half, hang up
                served.drop_first -= 1
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return None
            self.wfile.write(body)
            return None

    return Handler


@pytest.fixture
def server() -> Iterator[FakeZenodo]:
    state = FakeZenodo()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _payload(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible-looking bytes."""
    out = bytearray()
    block = seed.to_bytes(8, "little")
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _record_file(server: FakeZenodo, record: str, key: str) -> zenodo.RecordFile:
    listing = {f.key: f for f in zenodo.fetch_record(record, server.api_url, zenodo.RetryPolicy(**_policy()))}
    return listing[key]


def _policy(**over: float) -> dict:
    base = {
        "retries": FAST["retries"],
        "backoff": FAST["backoff_seconds"],
        "max_backoff": FAST["max_backoff_seconds"],
        "timeout": FAST["timeout_seconds"],
    }
    return base | over


def test_list_record_reports_keys_sizes_md5(server: FakeZenodo) -> None:
    data = _payload(5000)
    server.records["42"] = {"b.tar": ServedFile(data), "a.root": ServedFile(b"root" + data)}
    files = zenodo.fetch_record(42, server.api_url)
    assert [f.key for f in files] == ["a.root", "b.tar"]
    assert files[1].size == 5000
    assert files[1].md5 == hashlib.md5(data).hexdigest()
    assert files[1].url.endswith("/files/42/b.tar")


def test_cli_list_prints_key_size_md5(server: FakeZenodo, capsys: pytest.CaptureFixture[str]) -> None:
    data = _payload(123)
    server.records["8260741"] = {"p8_ee_tt_ecm380_10files.tar": ServedFile(data)}
    rc = main(["download", "--list", "--settings", json.dumps({"api_url": server.api_url})])
    assert rc == 0
    assert capsys.readouterr().out == f"p8_ee_tt_ecm380_10files.tar\t123\t{hashlib.md5(data).hexdigest()}\n"


def test_normal_download_verified_and_placed(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(300_000)
    server.records["1"] = {"x.tar": ServedFile(data)}
    dest = tmp_path / "dl" / "x.tar"
    assert zenodo.download_file(_record_file(server, "1", "x.tar"), dest, zenodo.RetryPolicy(**_policy()))
    assert dest.read_bytes() == data
    assert not zenodo.partial_path(dest).exists()
    assert server.file_requests("x.tar") == [None]  # one plain GET, no Range


def test_md5_mismatch_removes_file_with_clear_error(server: FakeZenodo, tmp_path: Path) -> None:
    server.records["1"] = {"bad.tar": ServedFile(_payload(10_000), md5="0" * 32)}
    dest = tmp_path / "bad.tar"
    with pytest.raises(InputFileError, match=r"md5 mismatch for bad\.tar.*expected 0{32}.*removed") as info:
        zenodo.download_file(_record_file(server, "1", "bad.tar"), dest, zenodo.RetryPolicy(**_policy()))
    assert "\n" not in str(info.value)
    assert not dest.exists()
    assert not zenodo.partial_path(dest).exists()
    assert list(tmp_path.iterdir()) == []


def test_md5_mismatch_cli_one_line_exit_2(
    server: FakeZenodo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.records["7"] = {"bad.tar": ServedFile(_payload(1000), md5="f" * 32)}
    settings = json.dumps({"api_url": server.api_url, "record": 7, **FAST})
    rc = main(
        ["download", "--file", "bad.tar", "--output", str(tmp_path / "bad.tar"), "--settings", settings]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    # Above it only the progress bar of the transfer; the error itself is the one last line.
    assert err[-1].startswith("mlpf download: error:")
    assert "md5 mismatch" in err[-1]
    assert sum("error" in line for line in err) == 1
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "bad.tar").exists()


def test_dropped_connection_resumed_with_range(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(200_000, seed=3)
    server.records["1"] = {"big.tar": ServedFile(data, drop_first=1)}
    dest = tmp_path / "big.tar"
    assert zenodo.download_file(_record_file(server, "1", "big.tar"), dest, zenodo.RetryPolicy(**_policy()))
    assert dest.read_bytes() == data
    # First transfer delivered half, the second asked for exactly the rest.
    assert server.file_requests("big.tar") == [None, f"bytes={len(data) // 2}-"]


def test_interrupted_download_leaves_no_final_file_and_resumes_later(
    server: FakeZenodo, tmp_path: Path
) -> None:
    data = _payload(120_000, seed=5)
    server.records["1"] = {"big.tar": ServedFile(data, drop_first=1)}
    rf = _record_file(server, "1", "big.tar")
    dest = tmp_path / "big.tar"
    with pytest.raises(MlpfError, match="giving up after 1 attempts"):
        zenodo.download_file(rf, dest, zenodo.RetryPolicy(**_policy(retries=0)))
    assert not dest.exists()  # nothing that looks complete
    part = zenodo.partial_path(dest)
    assert part.stat().st_size == len(data) // 2
    # A later run (e.g. the rerun of the job) continues from the partial file.
    assert zenodo.download_file(rf, dest, zenodo.RetryPolicy(**_policy(retries=0)))
    assert dest.read_bytes() == data
    assert not part.exists()
    assert server.file_requests("big.tar")[-1] == f"bytes={len(data) // 2}-"


def test_stale_partial_file_replaced_after_md5_mismatch(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(50_000, seed=9)
    server.records["1"] = {"f.tar": ServedFile(data)}
    dest = tmp_path / "f.tar"
    zenodo.partial_path(dest).write_bytes(b"garbage from an older version of the file")
    assert zenodo.download_file(_record_file(server, "1", "f.tar"), dest, zenodo.RetryPolicy(**_policy()))
    assert dest.read_bytes() == data
    assert server.file_requests("f.tar")[0] is not None  # first tried to resume, then started over
    assert server.file_requests("f.tar")[-1] is None


def test_missing_record_clear_error(server: FakeZenodo) -> None:
    with pytest.raises(MlpfError, match=r"Zenodo record 999 not found \(HTTP 404") as info:
        zenodo.fetch_record(999, server.api_url, zenodo.RetryPolicy(**_policy()))
    assert "\n" not in str(info.value)
    assert len(server.requests) == 1  # a 404 is not retried


def test_missing_file_in_record_names_what_exists(server: FakeZenodo, tmp_path: Path) -> None:
    server.records["5"] = {"other.tar": ServedFile(b"x")}
    settings = {"api_url": server.api_url, "record": 5, **FAST}
    settings["samples"] = {"ttbar": ["p8_ee_tt_ecm380_10files.tar"]}
    with pytest.raises(MlpfError, match=r"no file 'p8_ee_tt_ecm380_10files.tar'.*it has: other\.tar"):
        zenodo.fetch_sample_files(settings, "ttbar", download_dir=tmp_path)


def test_already_present_file_skipped_without_transfer(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(10_000, seed=1)
    server.records["1"] = {"x.tar": ServedFile(data)}
    dest = tmp_path / "x.tar"
    dest.write_bytes(data)
    mtime = dest.stat().st_mtime_ns
    assert (
        zenodo.download_file(_record_file(server, "1", "x.tar"), dest, zenodo.RetryPolicy(**_policy()))
        is False
    )
    assert server.file_requests("x.tar") == []
    assert dest.stat().st_mtime_ns == mtime


def test_present_but_corrupt_file_downloaded_again(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(10_000, seed=2)
    server.records["1"] = {"x.tar": ServedFile(data)}
    dest = tmp_path / "x.tar"
    dest.write_bytes(data[:-1] + b"\x00")  # same size, wrong content
    assert zenodo.download_file(_record_file(server, "1", "x.tar"), dest, zenodo.RetryPolicy(**_policy()))
    assert dest.read_bytes() == data


def test_transient_errors_retried_with_bounded_backoff(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(1000)
    server.records["1"] = {"x.tar": ServedFile(data, fail_first=2)}
    server.metadata_fail_first = 1
    rf = _record_file(server, "1", "x.tar")  # metadata: one 503, then OK
    assert zenodo.download_file(rf, tmp_path / "x.tar", zenodo.RetryPolicy(**_policy()))
    assert len(server.file_requests("x.tar")) == 3
    server.records["1"]["y.tar"] = ServedFile(data, fail_first=100)
    rf = _record_file(server, "1", "y.tar")
    with pytest.raises(MlpfError, match=r"download of y\.tar: giving up after 3 attempts \(HTTP 503\)"):
        zenodo.download_file(rf, tmp_path / "y.tar", zenodo.RetryPolicy(**_policy(retries=2)))
    assert len(server.file_requests("y.tar")) == 3
    assert not (tmp_path / "y.tar").exists()


def test_backoff_doubles_and_is_capped() -> None:
    policy = zenodo.RetryPolicy(retries=6, backoff=2.0, max_backoff=10.0)
    assert [policy.delay(i) for i in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]


# ------------------------------------------------------------------------------------------------ shards


def _archive_with_real_root_files() -> tuple[bytes, list[bytes]]:
    """A tar shaped like the record's: p8_ee_tt_ecm380/reco_p8_ee_tt_ecm380_<seed>.root, seeds 10, 2, 1."""
    legacy, sim = LEGACY_CLIC.read_bytes(), CLIC_SIM.read_bytes()
    members = {
        "p8_ee_tt_ecm380/reco_p8_ee_tt_ecm380_10.root": sim,
        "p8_ee_tt_ecm380/reco_p8_ee_tt_ecm380_2.root": legacy,
        "p8_ee_tt_ecm380/reco_p8_ee_tt_ecm380_1.root": sim[:4] + b"-first-" + sim[11:],
        "p8_ee_tt_ecm380/README": b"not a ROOT file",
    }
    # Shard order: seeds 1, 2, 10 (numeric, not lexicographic 1, 10, 2); README ignored.
    order = [members[f"p8_ee_tt_ecm380/reco_p8_ee_tt_ecm380_{s}.root"] for s in (1, 2, 10)]
    return _tar(members), order


def test_cli_downloads_archive_and_places_shard(server: FakeZenodo, tmp_path: Path) -> None:
    archive, order = _archive_with_real_root_files()
    server.records["8260741"] = {"p8_ee_tt_ecm380_10files.tar": ServedFile(archive, drop_first=1)}
    settings = {"api_url": server.api_url, **FAST}
    for shard in (1, 2, 0):
        out = tmp_path / "edm4hep" / "ttbar" / f"{shard}.root"
        rc = main(["download", "--sample", "ttbar", "--shard", str(shard), "--output", str(out),
                   "--download-dir", str(tmp_path / "zen"), "--settings", json.dumps(settings)])  # fmt: skip
        assert rc == 0
        assert out.read_bytes() == order[shard]
    stored = tmp_path / "zen" / "8260741" / "p8_ee_tt_ecm380_10files.tar"
    assert stored.read_bytes() == archive
    # The archive was transferred once (plus one resumed remainder), then found present and skipped.
    assert server.file_requests("p8_ee_tt_ecm380_10files.tar") == [None, f"bytes={len(archive) // 2}-"]
    # The shard is the real EDM4HEP file, readable as such.
    uproot = pytest.importorskip("uproot")
    with uproot.open(tmp_path / "edm4hep" / "ttbar" / "1.root") as f:
        assert f["events"].num_entries == 3


def test_shard_out_of_range_is_clear(tmp_path: Path) -> None:
    archive, _ = _archive_with_real_root_files()
    (tmp_path / "a.tar").write_bytes(archive)
    with pytest.raises(
        MlpfError, match=r"shard 3 does not exist: a\.tar holds 3 ROOT files \(shards 0\.\.2\)"
    ):
        zenodo.place_shard([tmp_path / "a.tar"], 3, tmp_path / "out.root")
    assert not (tmp_path / "out.root").exists()


def test_shards_continue_across_archives(tmp_path: Path) -> None:
    legacy = LEGACY_CLIC.read_bytes()
    (tmp_path / "a.tar").write_bytes(_tar({"s/reco_5.root": legacy}))
    (tmp_path / "b.tar").write_bytes(_tar({"s/reco_1.root": CLIC_SIM.read_bytes()}))
    sources = [tmp_path / "a.tar", tmp_path / "b.tar"]
    assert [m for _, m in zenodo.list_shards(sources)] == ["s/reco_5.root", "s/reco_1.root"]
    zenodo.place_shard(sources, 1, tmp_path / "out.root")
    assert (tmp_path / "out.root").read_bytes() == CLIC_SIM.read_bytes()


def test_non_root_member_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.tar").write_bytes(_tar({"s/fake.root": b"<html>error page</html>"}))
    with pytest.raises(InputFileError, match="not a ROOT file"):
        zenodo.place_shard([tmp_path / "a.tar"], 0, tmp_path / "out.root")
    assert not (tmp_path / "out.root").exists()


def test_local_copy_of_archives_needs_no_network(tmp_path: Path) -> None:
    archive, order = _archive_with_real_root_files()
    local = tmp_path / "mirror"
    local.mkdir()
    (local / "p8_ee_tt_ecm380_10files.tar").write_bytes(archive)
    # An API URL nobody listens on: any network access would fail the test.
    settings = {"api_url": "http://127.0.0.1:9/api", "local_dir": str(local), **FAST}
    sources = zenodo.fetch_sample_files(settings, "ttbar")
    assert sources == [local / "p8_ee_tt_ecm380_10files.tar"]
    zenodo.place_shard(sources, 2, tmp_path / "2.root")
    assert (tmp_path / "2.root").read_bytes() == order[2]


@pytest.mark.parametrize("mode", ["hardlink", "symlink", "copy"])
def test_local_unpacked_copy_linked(tmp_path: Path, mode: str) -> None:
    unpacked = tmp_path / "mirror" / "p8_ee_WW_fullhad_ecm380"
    unpacked.mkdir(parents=True)
    for seed in (300001, 300002):
        shutil.copyfile(LEGACY_CLIC, unpacked / f"reco_p8_ee_WW_fullhad_ecm380_{seed}.root")
    settings = {"local_dir": str(tmp_path / "mirror")}
    sources = zenodo.fetch_sample_files(settings, "ww_fullhad")
    assert sources == [unpacked]
    out = tmp_path / "out" / "1.root"
    _, member = zenodo.place_shard(sources, 1, out, link=mode)
    assert member == "reco_p8_ee_WW_fullhad_ecm380_300002.root"
    assert out.read_bytes() == LEGACY_CLIC.read_bytes()
    assert out.is_symlink() == (mode == "symlink")
    if mode == "hardlink":
        assert out.stat().st_ino == (unpacked / member).stat().st_ino


def test_local_copy_missing_sample_names_both_candidates(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"neither p8_ee_qq_ecm380_10files\.tar nor .*p8_ee_qq_ecm380/"):
        zenodo.fetch_sample_files({"local_dir": str(tmp_path)}, "qq")


def test_unpacked_name_and_natural_sort() -> None:
    assert zenodo.unpacked_name("p8_ee_tt_ecm380_10files.tar") == "p8_ee_tt_ecm380"
    assert zenodo.unpacked_name("x.tar.gz") == "x"
    names = ["r_10.root", "r_9.root", "r_100.root", "r_1.root"]
    assert sorted(names, key=zenodo.natural_key) == ["r_1.root", "r_9.root", "r_10.root", "r_100.root"]


def test_schema_defaults_match_built_in_sample_files() -> None:
    from mlpf.config import validate_section

    settings = validate_section("zenodo", {})
    assert {k: tuple(v) for k, v in settings["samples"].items()} == zenodo.DEFAULT_SAMPLE_FILES
    assert settings["api_url"] == zenodo.DEFAULT_API_URL
    assert settings["record"] == zenodo.DEFAULT_RECORD
    assert zenodo.sample_files({"samples": {"qq": ["mine.tar"]}}, "qq") == ["mine.tar"]


# ---------------------------------------------------------------------------------------------- workflow

REPO = Path(__file__).resolve().parents[2]


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_snakemake("--directory", str(workdir), "--cores", "1", *args, cwd=workdir)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return workdir_with_default_config(tmp_path)


@pytest.mark.slow
@pytest.mark.workflow
def test_workflow_downloads_and_places_shards(server: FakeZenodo, workdir: Path) -> None:
    """The zenodo rules end to end: a local download rule, then per-shard extraction, against the server."""
    archive, order = _archive_with_real_root_files()
    server.records["8260741"] = {"p8_ee_tt_ecm380_10files.tar": ServedFile(archive, drop_first=1)}
    extra = workdir / "zenodo.yaml"
    extra.write_text(f"source: zenodo\nzenodo:\n  api_url: {server.api_url}\n  backoff_seconds: 0.01\n")
    targets = [f"resources/edm4hep/ttbar/{k}.root" for k in (0, 2)]
    result = _snakemake(workdir, *targets, "--configfile", "config/config.yaml", str(extra))
    assert result.returncode == 0, result.stderr[-3000:]
    for k in (0, 2):
        assert (workdir / f"resources/edm4hep/ttbar/{k}.root").read_bytes() == order[k]
    assert (workdir / "resources/zenodo/8260741/p8_ee_tt_ecm380_10files.tar").read_bytes() == archive
    assert (
        "resuming at byte" in (workdir / "logs/download/8260741/p8_ee_tt_ecm380_10files.tar.log").read_text()
    )
    # Downloaded once for both shards (first transfer dropped, then resumed).
    assert server.file_requests("p8_ee_tt_ecm380_10files.tar") == [None, f"bytes={len(archive) // 2}-"]


@pytest.mark.slow
@pytest.mark.workflow
def test_dry_run_with_local_copy_downloads_nothing(workdir: Path) -> None:
    local = workdir / "mirror"
    local.mkdir()
    (local / "p8_ee_tt_ecm380_10files.tar").write_bytes(b"")
    (local / "p8_ee_qq_ecm380").mkdir()  # an unpacked copy
    zen = f"zenodo={{'local_dir': '{local}'}}"
    samples = "samples={'train': ['ttbar', 'qq'], 'evaluate': ['ttbar', 'qq']}"  # the ones in the mirror
    result = _snakemake(workdir, "-n", "-p", "--config", "source=zenodo", zen, samples)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule zenodo_shard:" in result.stdout
    assert "rule plots:" in result.stdout  # the whole chain resolves
    assert "zenodo_download" not in result.stdout
    assert f"--archives {local}/p8_ee_tt_ecm380_10files.tar " in result.stdout
    assert f"--archives {local}/p8_ee_qq_ecm380 " in result.stdout


def test_download_rule_settings_ignore_content_unrelated_keys() -> None:
    from mlpf.config import validate_section

    base = validate_section("zenodo", {})
    other = validate_section("zenodo", {"samples": {"qq": ["x.tar"]}, "local_link": "copy"})
    assert zenodo.transfer_settings_json(base) == zenodo.transfer_settings_json(other)
    assert json.loads(zenodo.transfer_settings_json(base))["api_url"] == "https://zenodo.org/api"
    moved = validate_section("zenodo", {"api_url": "https://mirror.example/api"})
    assert zenodo.transfer_settings_json(moved) != zenodo.transfer_settings_json(base)
