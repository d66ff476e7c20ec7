"""Zenodo download against a Zenodo-shaped HTTP server on 127.0.0.1 (records API + files).

Only the network boundary is replaced: the server speaks the records API (`/api/records/<id>` with `files:
[{key, size, checksum: "md5:...", links: {self}}]`), serves the files with HTTP Range support at the `links`
URL and at Zenodo's own `/records/<id>/files/<key>`, and can leave out a file's `links`, corrupt a file, drop a
connection mid-transfer or answer 503 (with Retry-After), as the real service sometimes does.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edm4hep_fixtures import CLIC_LEGACY_FILE as LEGACY_CLIC
from edm4hep_fixtures import CLIC_SIM_FILE as CLIC_SIM
from mlpf.cli import main
from mlpf.errors import InputFileError, MlpfError
from mlpf.io import cli as io_cli
from mlpf.io import zenodo
from snakemake_runner import run_snakemake, workdir_with_default_config

FAST = {"retries": 3, "backoff_seconds": 0.01, "max_backoff_seconds": 0.02, "timeout_seconds": 5.0}


@dataclass
class ServedFile:
    data: bytes
    md5: str | None = None  # advertised checksum; None = the true one
    drop_first: int = 0  # this many transfers send half the bytes, then close the connection
    fail_first: int = 0  # this many requests get HTTP 503 (with Retry-After: 0)
    links: bool = True  # False: the listing entry has no `links`, as some Zenodo replies


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


def _handler(state: FakeZenodo) -> type[http.server.BaseHTTPRequestHandler]:  # noqa: C901 - every route
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _json(self, code: int, payload: dict, retry_after: bool = False) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if retry_after:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Range")))
            if m := re.fullmatch(r"/api/records/(\w+)", self.path):
                return self._record(m.group(1))
            # The `links.self` URLs, and Zenodo's own download path (what zenodo_get falls back to).
            if m := re.fullmatch(r"/files/(\w+)/(.+)|/records/(\w+)/files/(.+)", self.path):
                return self._file(m.group(1) or m.group(3), m.group(2) or m.group(4))
            return self._json(404, {"status": 404, "message": "not found"})

        def _record(self, record: str) -> None:
            if state.metadata_fail_first > 0:
                state.metadata_fail_first -= 1
                return self._json(503, {"status": 503}, retry_after=True)
            if record not in state.records:
                return self._json(404, {"status": 404, "message": "PID does not exist."})
            return self._json(200, {"id": int(record), "files": self._entries(record)})

        def _entries(self, record: str) -> list[dict]:
            entries = []
            for key, f in state.records[record].items():
                entry = {"key": key, "size": len(f.data), "checksum": "md5:" + (f.md5 or _md5(f.data))}
                if f.links:
                    entry["links"] = {"self": f"http://127.0.0.1:{state.port}/files/{record}/{key}"}
                entries.append(entry)
            return entries

        def _file(self, record: str, key: str) -> None:
            served = state.records.get(record, {}).get(key)
            if served is None:
                return self._json(404, {"status": 404})
            if served.fail_first > 0:
                served.fail_first -= 1
                return self._json(503, {"status": 503}, retry_after=True)
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


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


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


def _policy(**over: float) -> zenodo.RetryPolicy:
    base = {
        "retries": FAST["retries"],
        "backoff": FAST["backoff_seconds"],
        "max_backoff": FAST["max_backoff_seconds"],
        "timeout": FAST["timeout_seconds"],
    }
    return zenodo.RetryPolicy(**(base | over))


def _record_file(server: FakeZenodo, record: str, key: str) -> zenodo.RecordFile:
    return {f.key: f for f in zenodo.fetch_record(record, server.api_url, _policy())}[key]


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_error_line(err: str, command: str = "download") -> str:
    """The single error line of a failed `mlpf` command (above it at most log and progress lines)."""
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"mlpf {command}: error:"), err
    assert sum("error" in line for line in lines) == 1, err
    assert "Traceback" not in err
    return lines[-1]


# ------------------------------------------------------------------------------------------------ listing


def test_list_record_reports_keys_sizes_md5(server: FakeZenodo) -> None:
    data = _payload(5000)
    server.records["42"] = {"b.tar": ServedFile(data), "a.root": ServedFile(b"root" + data)}
    files = zenodo.fetch_record(42, server.api_url)
    assert [f.key for f in files] == ["a.root", "b.tar"]
    assert files[1].size == 5000
    assert files[1].md5 == _md5(data)
    assert files[1].url.endswith("/files/42/b.tar")


def test_cli_list_prints_key_size_md5(server: FakeZenodo, capsys: pytest.CaptureFixture[str]) -> None:
    data = _payload(123)
    server.records["8260741"] = {"p8_ee_tt_ecm380_10files.tar": ServedFile(data)}
    rc = main(["download", "--list", "--settings", json.dumps({"api_url": server.api_url})])
    assert rc == 0
    assert capsys.readouterr().out == f"p8_ee_tt_ecm380_10files.tar\t123\t{_md5(data)}\n"


def test_cli_list_kept_as_json_is_what_later_steps_read(server: FakeZenodo, tmp_path: Path) -> None:
    server.records["8260741"] = {"x.tar": ServedFile(b"abc")}
    out = tmp_path / "8260741.listing.json"
    assert (
        main(
            [
                "download",
                "--list",
                "--output",
                str(out),
                "--settings",
                json.dumps({"api_url": server.api_url}),
            ]
        )
        == 0
    )
    listing = zenodo.Listing.read(out)
    assert (listing.record, listing.api_url) == (8260741, server.api_url)
    assert [(f.key, f.size, f.md5) for f in listing.files()] == [("x.tar", 3, _md5(b"abc"))]


def test_missing_links_entry_falls_back_to_zenodo_download_path(server: FakeZenodo, tmp_path: Path) -> None:
    """A file entry without `links` is fetched from <base>/records/<id>/files/<key> (zenodo_get's fallback)."""
    data = _payload(3000, seed=4)
    server.records["9"] = {"nolink.tar": ServedFile(data, links=False)}
    rf = _record_file(server, "9", "nolink.tar")
    assert rf.url == f"http://127.0.0.1:{server.port}/records/9/files/nolink.tar"
    assert zenodo.download_file(rf, tmp_path / "nolink.tar", _policy())
    assert (tmp_path / "nolink.tar").read_bytes() == data


def test_missing_record_clear_error(server: FakeZenodo) -> None:
    with pytest.raises(MlpfError, match=r"Zenodo record 999 not found \(HTTP 404") as info:
        zenodo.fetch_record(999, server.api_url, _policy())
    assert "\n" not in str(info.value)
    assert len(server.requests) == 1  # a 404 is not retried


def test_no_network_fails_at_once_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listens: the run stops before any retry, with one line saying what to do."""
    settings = {"api_url": f"http://127.0.0.1:{_closed_port()}/api", "retries": 5, "backoff_seconds": 2.0}
    start = time.monotonic()
    rc = main(["download", "--list", "--settings", json.dumps(settings)])
    elapsed = time.monotonic() - start
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert elapsed < 2.0  # five retries with 2 s backoff would take a minute
    assert "cannot reach 127.0.0.1" in line
    assert "zenodo.local_dir" in line


def test_zenodo_get_leaves_ctrl_c_alone(server: FakeZenodo) -> None:
    """Importing zenodo_get installs its CLI's SIGINT handler; ours must stay in force."""
    before = signal.getsignal(signal.SIGINT)
    server.records["1"] = {"x.tar": ServedFile(b"x")}
    zenodo.fetch_record(1, server.api_url, _policy())
    assert signal.getsignal(signal.SIGINT) is before


# ---------------------------------------------------------------------------------------------- selection

GUN_PI = {
    "pi-_10files.tar": ServedFile(b"m"),
    "pi+_10files.tar": ServedFile(b"p"),
    "pi0_10files.tar": ServedFile(b"0"),
}


def test_patterns_choose_files_in_pattern_order(server: FakeZenodo) -> None:
    server.records["5"] = {
        "p8_ee_tt_ecm380_10files.tar": ServedFile(b"a"),
        "p8_ee_tt_ecm380_PU10_10files.tar": ServedFile(b"b"),
        "p8_ee_tt_ecm380_part10.tar": ServedFile(b"c"),
        "p8_ee_tt_ecm380_part2.tar": ServedFile(b"d"),
        **GUN_PI,
    }
    listing = zenodo.fetch_listing(5, server.api_url, _policy())
    ttbar = zenodo.select_files(listing, ["p8_ee_tt_ecm380_[0-9]*.tar", "p8_ee_tt_ecm380_part*.tar"], "ttbar")
    # The default ttbar pattern leaves the PU10 archive out; names sort with numbers compared as numbers;
    # a file matched by two patterns is taken once, where it first matched.
    assert [f.key for f in ttbar] == [
        "p8_ee_tt_ecm380_10files.tar", "p8_ee_tt_ecm380_part2.tar", "p8_ee_tt_ecm380_part10.tar",
    ]  # fmt: skip
    defaults = zenodo.sample_patterns({}, "gun_pi")
    assert [f.key for f in zenodo.select_files(listing, defaults, "gun_pi")] == [
        "pi-_10files.tar",
        "pi+_10files.tar",
    ]
    assert [f.md5 for f in zenodo.select_files(listing, ["pi0*"], "gun_pi0")] == [_md5(b"0")]


def test_pattern_matching_nothing_names_the_record_files(
    server: FakeZenodo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.records["8260741"] = {"p8_ee_tt_ecm380_10files.tar": ServedFile(b"a"), **GUN_PI}
    settings = {"api_url": server.api_url, **FAST}
    rc = main(["download", "--select", "z_tautau", "--output", str(tmp_path / "m.json"),
               "--settings", json.dumps(settings)])  # fmt: skip
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert "pattern 'p8_ee_Z_Ztautau_ecm380*.tar' of sample z_tautau matches no file" in line
    assert (
        "the record has: p8_ee_tt_ecm380_10files.tar, pi+_10files.tar, pi-_10files.tar, pi0_10files.tar"
        in line
    )
    assert "zenodo.samples.z_tautau" in line
    assert not (tmp_path / "m.json").exists()


def test_select_writes_manifest_with_sizes_and_md5s(server: FakeZenodo, tmp_path: Path) -> None:
    server.records["8260741"] = dict(GUN_PI)
    listing = tmp_path / "listing.json"
    base = ["--settings", json.dumps({"api_url": server.api_url, **FAST})]
    assert main(["download", "--list", "--output", str(listing), *base]) == 0
    manifest_path = tmp_path / "gun_pi" / "zenodo_files.json"
    assert main(["download", "--select", "gun_pi", "--listing", str(listing), "--output", str(manifest_path),
                 "--download-dir", str(tmp_path / "zen"), *base]) == 0  # fmt: skip
    manifest = json.loads(manifest_path.read_text())
    assert manifest["record"] == 8260741
    assert manifest["patterns"] == ["pi-*.tar", "pi+*.tar"]
    assert [(f["key"], f["size"], f["md5"]) for f in manifest["files"]] == [
        ("pi-_10files.tar", 1, _md5(b"m")), ("pi+_10files.tar", 1, _md5(b"p")),
    ]  # fmt: skip
    assert zenodo.manifest_paths(manifest_path) == [
        str(tmp_path / "zen" / "8260741" / "pi-_10files.tar"), str(tmp_path / "zen" / "8260741" / "pi+_10files.tar"),
    ]  # fmt: skip
    assert manifest["provenance"]["zenodo_get_version"].startswith("3.")
    requests_after_listing = len(server.requests)
    assert requests_after_listing == 1  # --select read the kept listing, not the API


def test_listing_of_another_record_is_refused(
    server: FakeZenodo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.records["3"] = {"x.tar": ServedFile(b"x")}
    listing = tmp_path / "3.listing.json"
    zenodo.write_text_atomic(listing, zenodo.fetch_listing(3, server.api_url, _policy()).to_json())
    rc = main(
        ["download", "--select", "ttbar", "--listing", str(listing), "--output", str(tmp_path / "m.json")]
    )
    assert rc == 2
    assert f"--listing {listing} is of record 3, not 8260741" in _one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------------------------- download


def test_normal_download_verified_and_placed(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(300_000)
    server.records["1"] = {"x.tar": ServedFile(data)}
    dest = tmp_path / "dl" / "x.tar"
    assert zenodo.download_file(_record_file(server, "1", "x.tar"), dest, _policy())
    assert dest.read_bytes() == data
    assert not zenodo.partial_path(dest).exists()
    assert server.file_requests("x.tar") == [None]  # one plain GET, no Range


def test_md5_mismatch_removes_file_with_clear_error(server: FakeZenodo, tmp_path: Path) -> None:
    server.records["1"] = {"bad.tar": ServedFile(_payload(10_000), md5="0" * 32)}
    dest = tmp_path / "bad.tar"
    with pytest.raises(InputFileError, match=r"md5 mismatch for bad\.tar.*expected 0{32}.*removed") as info:
        zenodo.download_file(_record_file(server, "1", "bad.tar"), dest, _policy())
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .part


def test_md5_mismatch_cli_one_line_exit_2(
    server: FakeZenodo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.records["7"] = {"bad.tar": ServedFile(_payload(1000), md5="f" * 32)}
    settings = json.dumps({"api_url": server.api_url, "record": 7, **FAST})
    rc = main(
        ["download", "--file", "bad.tar", "--output", str(tmp_path / "bad.tar"), "--settings", settings]
    )
    assert rc == 2
    assert "md5 mismatch" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "bad.tar").exists()


def test_dropped_connection_resumed_with_range(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(200_000, seed=3)
    server.records["1"] = {"big.tar": ServedFile(data, drop_first=1)}
    dest = tmp_path / "big.tar"
    assert zenodo.download_file(_record_file(server, "1", "big.tar"), dest, _policy())
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
        zenodo.download_file(rf, dest, _policy(retries=0))
    assert not dest.exists()  # nothing that looks complete
    part = zenodo.partial_path(dest)
    assert part.stat().st_size == len(data) // 2
    # A later run (e.g. the rerun of the job) continues from the partial file.
    assert zenodo.download_file(rf, dest, _policy(retries=0))
    assert dest.read_bytes() == data
    assert not part.exists()
    assert server.file_requests("big.tar")[-1] == f"bytes={len(data) // 2}-"


def test_stale_partial_file_replaced_after_md5_mismatch(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(50_000, seed=9)
    server.records["1"] = {"f.tar": ServedFile(data)}
    dest = tmp_path / "f.tar"
    zenodo.partial_path(dest).write_bytes(b"garbage from an older version of the file")
    assert zenodo.download_file(_record_file(server, "1", "f.tar"), dest, _policy())
    assert dest.read_bytes() == data
    assert server.file_requests("f.tar")[0] is not None  # first tried to resume, then started over
    assert server.file_requests("f.tar")[-1] is None


def test_already_present_file_skipped_without_transfer(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(10_000, seed=1)
    server.records["1"] = {"x.tar": ServedFile(data)}
    dest = tmp_path / "x.tar"
    dest.write_bytes(data)
    mtime = dest.stat().st_mtime_ns
    assert zenodo.download_file(_record_file(server, "1", "x.tar"), dest, _policy()) is False
    assert server.file_requests("x.tar") == []
    assert dest.stat().st_mtime_ns == mtime


def test_present_but_corrupt_file_downloaded_again(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(10_000, seed=2)
    server.records["1"] = {"x.tar": ServedFile(data)}
    dest = tmp_path / "x.tar"
    dest.write_bytes(data[:-1] + b"\x00")  # same size, wrong content
    assert zenodo.download_file(_record_file(server, "1", "x.tar"), dest, _policy())
    assert dest.read_bytes() == data


def test_503_retried_by_zenodo_get_client_then_one_line(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload(1000)
    server.records["1"] = {"x.tar": ServedFile(data, fail_first=2)}
    server.metadata_fail_first = 1
    rf = _record_file(server, "1", "x.tar")  # metadata: one 503, then OK
    assert zenodo.download_file(rf, tmp_path / "x.tar", _policy())
    assert len(server.file_requests("x.tar")) == 3
    server.records["1"]["y.tar"] = ServedFile(data, fail_first=100)
    rf = _record_file(server, "1", "y.tar")
    with pytest.raises(
        MlpfError, match=r"download of y\.tar: HTTP 503 from http://127\.0\.0\.1:\d+/files/1/y\.tar"
    ):
        zenodo.download_file(rf, tmp_path / "y.tar", _policy(retries=2))
    assert len(server.file_requests("y.tar")) == 3  # the first request and two retries
    assert not (tmp_path / "y.tar").exists()


def test_backoff_doubles_and_is_capped() -> None:
    policy = zenodo.RetryPolicy(retries=6, backoff=2.0, max_backoff=10.0)
    assert [policy.delay(i) for i in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]


# ------------------------------------------------------------------------------------------------ shards


def _archive_with_real_root_files(folder: str = "p8_ee_tt_ecm380/") -> tuple[bytes, list[bytes]]:
    """A tar shaped like the record's (files in a folder, `folder` "") or with ROOT files at the top level
    (`folder` ""): reco_p8_ee_tt_ecm380_<seed>.root for seeds 10, 2, 1, and a README."""
    legacy, sim = LEGACY_CLIC.read_bytes(), CLIC_SIM.read_bytes()
    members = {
        f"{folder}reco_p8_ee_tt_ecm380_10.root": sim,
        f"{folder}reco_p8_ee_tt_ecm380_2.root": legacy,
        f"{folder}reco_p8_ee_tt_ecm380_1.root": sim[:4] + b"-first-" + sim[11:],
        f"{folder}README": b"not a ROOT file",
    }
    # Shard order: seeds 1, 2, 10 (numeric, not lexicographic 1, 10, 2); README ignored.
    order = [members[f"{folder}reco_p8_ee_tt_ecm380_{s}.root"] for s in (1, 2, 10)]
    return _tar(members), order


@pytest.mark.parametrize("folder", ["p8_ee_tt_ecm380/", ""], ids=["files-in-a-folder", "files-at-top-level"])
def test_cli_downloads_archive_and_places_shard(server: FakeZenodo, tmp_path: Path, folder: str) -> None:
    archive, order = _archive_with_real_root_files(folder)
    server.records["8260741"] = {
        "p8_ee_tt_ecm380_10files.tar": ServedFile(archive, drop_first=1),
        "p8_ee_tt_ecm380_PU10_10files.tar": ServedFile(b"not this one"),
    }
    settings = {"api_url": server.api_url, **FAST}
    for shard in (1, 2, 0):
        out = tmp_path / "edm4hep" / "ttbar" / f"{shard}.root"
        rc = main(["download", "--sample", "ttbar", "--shard", str(shard), "--output", str(out),
                   "--download-dir", str(tmp_path / "zen"), "--settings", json.dumps(settings)])  # fmt: skip
        assert rc == 0
        assert out.read_bytes() == order[shard]
    stored = tmp_path / "zen" / "8260741"
    assert [p.name for p in stored.iterdir()] == ["p8_ee_tt_ecm380_10files.tar"]
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
    (tmp_path / "b.tar").write_bytes(_tar({"reco_1.root": CLIC_SIM.read_bytes()}))  # the other layout
    sources = [tmp_path / "a.tar", tmp_path / "b.tar"]
    assert [m for _, m in zenodo.list_shards(sources)] == ["s/reco_5.root", "reco_1.root"]
    zenodo.place_shard(sources, 1, tmp_path / "out.root")
    assert (tmp_path / "out.root").read_bytes() == CLIC_SIM.read_bytes()


def test_non_root_member_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.tar").write_bytes(_tar({"s/fake.root": b"<html>error page</html>"}))
    with pytest.raises(InputFileError, match="not a ROOT file"):
        zenodo.place_shard([tmp_path / "a.tar"], 0, tmp_path / "out.root")
    assert not (tmp_path / "out.root").exists()


def test_shard_from_manifest(server: FakeZenodo, tmp_path: Path) -> None:
    """The workflow's path: listing, selection (manifest), download of the named file, shard from manifest."""
    archive, order = _archive_with_real_root_files("")
    server.records["8260741"] = {"p8_ee_WW_fullhad_ecm380_10files.tar": ServedFile(archive)}
    base = [
        "--settings",
        json.dumps({"api_url": server.api_url, **FAST}),
        "--download-dir",
        str(tmp_path / "zen"),
    ]
    listing, manifest = tmp_path / "listing.json", tmp_path / "ww" / "zenodo_files.json"
    assert main(["download", "--list", "--output", str(listing), *base]) == 0
    assert (
        main(
            [
                "download",
                "--select",
                "ww_fullhad",
                "--listing",
                str(listing),
                "--output",
                str(manifest),
                *base,
            ]
        )
        == 0
    )
    [path] = zenodo.manifest_paths(manifest)
    assert (
        main(["download", "--file", Path(path).name, "--listing", str(listing), "--output", path, *base]) == 0
    )
    out = tmp_path / "ww" / "2.root"
    assert main(["download", "--sample", "ww_fullhad", "--shard", "2", "--manifest", str(manifest),
                 "--output", str(out), *base]) == 0  # fmt: skip
    assert out.read_bytes() == order[2]
    assert len([p for p, _ in server.requests if p.startswith("/api/")]) == 1  # the listing was read once


def test_local_copy_of_archives_needs_no_network(tmp_path: Path) -> None:
    archive, order = _archive_with_real_root_files()
    local = tmp_path / "mirror"
    local.mkdir()
    (local / "p8_ee_tt_ecm380_10files.tar").write_bytes(archive)
    (local / "p8_ee_tt_ecm380_PU10_10files.tar").write_bytes(b"")
    # An API URL nobody listens on: any network access would fail the test.
    settings = {"api_url": f"http://127.0.0.1:{_closed_port()}/api", "local_dir": str(local), **FAST}
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
    settings = {"local_dir": str(tmp_path / "mirror"), "samples": {"ww_fullhad": ["p8_ee_WW_fullhad_ecm380"]}}
    sources = zenodo.fetch_sample_files(settings, "ww_fullhad")
    assert sources == [unpacked]
    out = tmp_path / "out" / "1.root"
    _, member = zenodo.place_shard(sources, 1, out, link=mode)
    assert member == "reco_p8_ee_WW_fullhad_ecm380_300002.root"
    assert out.read_bytes() == LEGACY_CLIC.read_bytes()
    assert out.is_symlink() == (mode == "symlink")
    if mode == "hardlink":
        assert out.stat().st_ino == (unpacked / member).stat().st_ino


def test_local_copy_pattern_matching_nothing_names_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "p8_ee_qq_ecm380").mkdir()
    with pytest.raises(InputFileError, match=r"pattern 'p8_ee_qq_ecm380\*\.tar' of sample qq matches nothing.*"
                       r"it holds: p8_ee_qq_ecm380; fix zenodo\.samples\.qq") as info:  # fmt: skip
        zenodo.fetch_sample_files({"local_dir": str(tmp_path)}, "qq")
    assert "\n" not in str(info.value)


def test_natural_sort() -> None:
    names = ["r_10.root", "r_9.root", "r_100.root", "r_1.root"]
    assert sorted(names, key=zenodo.natural_key) == ["r_1.root", "r_9.root", "r_10.root", "r_100.root"]


def test_schema_defaults_match_built_in_patterns() -> None:
    from mlpf.config import validate_section

    settings = validate_section("zenodo", {})
    assert {k: tuple(v) for k, v in settings["samples"].items()} == zenodo.DEFAULT_SAMPLE_PATTERNS
    assert settings["api_url"] == zenodo.DEFAULT_API_URL
    assert settings["record"] == zenodo.DEFAULT_RECORD
    assert io_cli.DEFAULT_DOWNLOAD_DIR == zenodo.DEFAULT_DOWNLOAD_DIR
    assert zenodo.sample_patterns({"samples": {"qq": ["mine*.tar"]}}, "qq") == ["mine*.tar"]


def test_rule_settings_hold_only_what_each_rule_uses() -> None:
    from mlpf.config import validate_section

    base = validate_section("zenodo", {})
    other = validate_section("zenodo", {"samples": {"qq": ["x*.tar"]}, "local_link": "copy"})
    assert zenodo.transfer_settings_json(base) == zenodo.transfer_settings_json(other)
    assert json.loads(zenodo.transfer_settings_json(base))["api_url"] == "https://zenodo.org/api"
    moved = validate_section("zenodo", {"api_url": "https://mirror.example/api"})
    assert zenodo.transfer_settings_json(moved) != zenodo.transfer_settings_json(base)
    # A sample's selection changes with its own patterns only, not with another sample's or the retries.
    assert zenodo.selection_settings_json(base, "ttbar") == zenodo.selection_settings_json(other, "ttbar")
    assert zenodo.selection_settings_json(base, "qq") != zenodo.selection_settings_json(other, "qq")
    assert json.loads(zenodo.selection_settings_json(other, "qq"))["samples"] == {"qq": ["x*.tar"]}


# ---------------------------------------------------------------------------------------------- workflow


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_snakemake("--directory", str(workdir), "--cores", "1", *args, cwd=workdir)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return workdir_with_default_config(tmp_path)


@pytest.mark.slow
@pytest.mark.workflow
def test_workflow_lists_selects_downloads_and_places_shards(server: FakeZenodo, workdir: Path) -> None:
    """The zenodo rules end to end against the server: listing, selection, one download, shards."""
    archive, order = _archive_with_real_root_files()
    server.records["8260741"] = {
        "p8_ee_tt_ecm380_10files.tar": ServedFile(archive, drop_first=1),
        "p8_ee_tt_ecm380_PU10_10files.tar": ServedFile(b"never downloaded"),
    }
    extra = workdir / "zenodo.yaml"
    extra.write_text(f"source: zenodo\nzenodo:\n  api_url: {server.api_url}\n  backoff_seconds: 0.01\n")
    targets = [f"resources/edm4hep/zenodo/ttbar/{k}.root" for k in (0, 2)]
    result = _snakemake(workdir, *targets, "--configfile", "config/config.yaml", str(extra))
    assert result.returncode == 0, result.stderr[-3000:]
    for k in (0, 2):
        assert (workdir / f"resources/edm4hep/zenodo/ttbar/{k}.root").read_bytes() == order[k]
    assert (workdir / "resources/zenodo/8260741/p8_ee_tt_ecm380_10files.tar").read_bytes() == archive
    assert not (workdir / "resources/zenodo/8260741/p8_ee_tt_ecm380_PU10_10files.tar").exists()
    log = (workdir / "logs/download/8260741/p8_ee_tt_ecm380_10files.tar.log").read_text()
    assert "resuming at byte" in log
    manifest = json.loads((workdir / "resources/edm4hep/zenodo/ttbar/zenodo_files.json").read_text())
    assert [(f["key"], f["size"], f["md5"]) for f in manifest["files"]] == [
        ("p8_ee_tt_ecm380_10files.tar", len(archive), _md5(archive))
    ]
    # The record was listed once; the archive transferred once (a dropped first try, then resumed).
    assert [p for p, _ in server.requests if p.startswith("/api/")] == ["/api/records/8260741"]
    assert server.file_requests("p8_ee_tt_ecm380_10files.tar") == [None, f"bytes={len(archive) // 2}-"]


@pytest.mark.slow
@pytest.mark.workflow
def test_workflow_pattern_matching_nothing_fails_in_one_line(server: FakeZenodo, workdir: Path) -> None:
    server.records["8260741"] = {"p8_ee_tt_ecm380_10files.tar": ServedFile(b"x")}
    extra = workdir / "zenodo.yaml"
    extra.write_text(f"source: zenodo\nzenodo:\n  api_url: {server.api_url}\n")
    result = _snakemake(
        workdir, "resources/edm4hep/zenodo/qq/0.root", "--configfile", "config/config.yaml", str(extra)
    )
    assert result.returncode != 0
    log = (workdir / "logs/acquire/zenodo/qq/zenodo_files.log").read_text().strip().splitlines()
    assert log[-1] == (
        "mlpf download: error: Zenodo record 8260741: pattern 'p8_ee_qq_ecm380*.tar' of sample qq matches no "
        "file; the record has: p8_ee_tt_ecm380_10files.tar; fix zenodo.samples.qq"
    )
    assert not (workdir / "resources/zenodo/8260741/p8_ee_tt_ecm380_10files.tar").exists()


@pytest.mark.slow
@pytest.mark.workflow
def test_workflow_without_network_stops_at_the_listing_in_one_line(workdir: Path) -> None:
    port = _closed_port()
    extra = workdir / "zenodo.yaml"
    extra.write_text(f"source: zenodo\nzenodo:\n  api_url: http://127.0.0.1:{port}/api\n  retries: 5\n")
    start = time.monotonic()
    result = _snakemake(
        workdir, "resources/edm4hep/zenodo/ttbar/0.root", "--configfile", "config/config.yaml", str(extra)
    )
    assert result.returncode != 0
    assert time.monotonic() - start < 60  # no minutes of retries
    log = (workdir / "logs/download/8260741.listing.log").read_text().strip().splitlines()
    assert len(log) == 1
    assert log[0].startswith(
        f"mlpf download: error: cannot reach 127.0.0.1:{port} for http://127.0.0.1:{port}/api"
    )


@pytest.mark.slow
@pytest.mark.workflow
def test_dry_run_shows_the_whole_chain(workdir: Path) -> None:
    result = _snakemake(workdir, "-n", "-p", "--config", "source=zenodo")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for rule in ("rule zenodo_listing:", "checkpoint zenodo_select:", "rule zenodo_shard:", "rule figures:"):
        assert rule in out, rule
    assert "mlpf download --list --record 8260741 --output resources/zenodo/8260741.listing.json" in out
    assert "--manifest resources/edm4hep/zenodo/ttbar/zenodo_files.json" in out


@pytest.mark.slow
@pytest.mark.workflow
def test_local_copy_lists_and_downloads_nothing(workdir: Path) -> None:
    archive, order = _archive_with_real_root_files()
    local = workdir / "mirror"
    (local / "p8_ee_qq_ecm380").mkdir(parents=True)  # an unpacked copy: its pattern names the directory
    (local / "p8_ee_tt_ecm380_10files.tar").write_bytes(archive)
    shutil.copyfile(LEGACY_CLIC, local / "p8_ee_qq_ecm380" / "reco_p8_ee_qq_ecm380_7.root")
    extra = workdir / "local.yaml"
    extra.write_text(
        f"source: zenodo\nzenodo:\n  local_dir: {local}\n  samples:\n    qq: [p8_ee_qq_ecm380]\n"
    )
    targets = ["resources/edm4hep/zenodo/ttbar/1.root", "resources/edm4hep/zenodo/qq/0.root"]
    result = _snakemake(workdir, *targets, "--configfile", "config/config.yaml", str(extra))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "zenodo_listing" not in result.stdout + result.stderr
    assert "zenodo_download" not in result.stdout + result.stderr
    assert (workdir / "resources/edm4hep/zenodo/ttbar/1.root").read_bytes() == order[1]
    assert (workdir / "resources/edm4hep/zenodo/qq/0.root").read_bytes() == LEGACY_CLIC.read_bytes()
    manifest = json.loads((workdir / "resources/edm4hep/zenodo/qq/zenodo_files.json").read_text())
    assert manifest["local_dir"] == str(local)
    assert manifest["files"][0]["path"] == str(local / "p8_ee_qq_ecm380")


def test_mlpf_download_help_needs_no_network() -> None:
    result = subprocess.run([sys.executable, "-m", "mlpf", "download", "--help"], capture_output=True, text=True,
                            check=False, timeout=60)  # fmt: skip
    assert result.returncode == 0
    assert "--select SAMPLE" in result.stdout
