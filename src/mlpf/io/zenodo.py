"""The published CLIC EDM4HEP files on Zenodo: the record's listing, the files of a sample, verified downloads,
and one shard per ROOT file.

What zenodo_get 3.1 (a dependency of this package) does, it does here, through its own functions:
- the HTTP client (`zenodo_get.downloader.create_configured_client`): connection errors and HTTP
  429/502/503/504 are retried with exponential backoff, honouring `Retry-After`;
- glob selection of a record's files (`zenodo_get.metadata.filter_files_from_metadata`);
- the download URL of a file entry, falling back to `<base>/records/<record>/files/<key>` when the entry has no
  `links` (`zenodo_get.workflow.file_url.file_url`);
- md5 verification (`zenodo_get.file_download.check_hash`).
This module adds only what zenodo_get lacks:
- a base-URL override (`zenodo.api_url`: a mirror, or a loopback server in tests; zenodo_get knows only
  zenodo.org and its sandbox), and the listing read through it;
- a reachability check before the first request, so that a machine without network fails at once with one
  line instead of after the client's retries;
- a pattern that matches no file is an error naming the record's files (zenodo_get logs a warning and goes on);
- resume of an interrupted transfer with HTTP Range requests, into a stable hidden `.<name>.part` file that is
  renamed onto the final name only after the md5 matched (zenodo_get writes to the final name directly, and its
  "continue" only skips files already complete);
- the shards: shard k of a sample is the k-th ROOT file of the sample's archives, taken in the order of the
  sample's patterns (within a pattern, record files sorted by name) and, within an archive, sorted by member
  name with digit runs compared as numbers (`..._2.root` before `..._10.root`). Archives may hold their ROOT
  files at the top level or in a folder (`p8_ee_tt_ecm380/reco_p8_ee_tt_ecm380_1302.root`). A shard is streamed
  out of its archive alone into `resources/edm4hep/{events}/{sample}/{shard}.root`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import logging
import os
import re
import shutil
import signal
import socket
import tarfile
import threading
import time
import types
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import httpx2

from mlpf.atomic import atomic_output, write_text_atomic
from mlpf.errors import ConfigError, InputFileError, MlpfError
from mlpf.progress import progress_bar
from mlpf.provenance import provenance

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://zenodo.org/api"
# Raw EDM4HEP files of the MLPF CLIC dataset, v1.1 (Pata et al. 2023; jpata/particleflow README).
DEFAULT_RECORD = 8260741
# Downloads go under resources/ (workflow convention: downloads in resources/, results in results/).
DEFAULT_DOWNLOAD_DIR = "resources/zenodo"

# Glob patterns selecting each sample's files in the record, in shard order (the schema repeats them as the
# defaults of zenodo.samples). They follow the production's sample names (jpata/particleflow
# mlpf/tallinn/postprocessing.sh: p8_ee_tt_ecm380, p8_ee_tt_ecm380_PU10, pi-, pi+, kaon0L, ...). Only
# p8_ee_tt_ecm380_10files.tar is named by a public source; the others are matched against the record's own
# listing, and a pattern that matches nothing fails with the record's file names (docs/data-sources.md).
DEFAULT_SAMPLE_PATTERNS: dict[str, tuple[str, ...]] = {
    "ttbar": ("p8_ee_tt_ecm380_[0-9]*.tar",),  # a digit after the underscore: not the PU10 archive
    "qq": ("p8_ee_qq_ecm380*.tar",),
    "zh_tautau": ("p8_ee_ZH_Htautau_ecm380*.tar",),
    "ww_fullhad": ("p8_ee_WW_fullhad_ecm380*.tar",),
    "z_tautau": ("p8_ee_Z_Ztautau_ecm380*.tar",),
    "ttbar_pu10": ("p8_ee_tt_ecm380_PU10*.tar",),
    "gun_e": ("e-*.tar", "e+*.tar"),
    "gun_mu": ("mu-*.tar", "mu+*.tar"),
    "gun_pi": ("pi-*.tar", "pi+*.tar"),
    "gun_pi0": ("pi0*.tar",),
    "gun_kl": ("kaon0L*.tar",),
    "gun_n": ("neutron*.tar",),
    "gun_gamma": ("gamma*.tar",),
}

CHUNK_BYTES = 1 << 20  # 1 MiB: large enough for throughput, small enough for a responsive progress bar
ROOT_MAGIC = b"root"  # every ROOT file starts with these four bytes
# A Range reply is trusted only if its Content-Range starts where the partial file ends.
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
# The reachability check waits at most this long for a TCP connection (a dead network answers within it).
REACH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RecordFile:
    """One file of a Zenodo record, as the records API lists it."""

    key: str
    size: int
    md5: str | None
    url: str


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of requests (by zenodo_get's client) and of interrupted transfers (resumed here).

    Attempt i (0-based) waits min(backoff * 2**i, max_backoff) seconds, or what `Retry-After` asks for.
    """

    retries: int = 5
    backoff: float = 2.0
    max_backoff: float = 60.0
    timeout: float = 60.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            retries=int(settings.get("retries", cls.retries)),
            backoff=float(settings.get("backoff_seconds", cls.backoff)),
            max_backoff=float(settings.get("max_backoff_seconds", cls.max_backoff)),
            timeout=float(settings.get("timeout_seconds", cls.timeout)),
        )

    def delay(self, attempt: int) -> float:
        return min(self.backoff * 2**attempt, self.max_backoff)


class _Interrupted(Exception):
    """A transfer that stopped before its end (dropped connection, stall); another attempt resumes it."""


# ------------------------------------------------------------------------------------------- zenodo_get


@functools.cache
def _zenodo_get() -> types.SimpleNamespace:
    """zenodo_get's building blocks, imported once.

    Importing the package installs a SIGINT handler meant for its own command line (zenodo_get/zget.py): the
    first Ctrl+C only sets a flag that nothing here reads. The previous handler is put back, so Ctrl+C still
    stops `mlpf download`. Its loguru messages are switched off: the errors raised here say the same in one line.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main_thread else None
    try:  # imported here, not at the top: importing zenodo_get replaces the SIGINT handler (see above)
        from loguru import logger  # noqa: PLC0415
        from zenodo_get.downloader import create_configured_client  # noqa: PLC0415
        from zenodo_get.file_download import check_hash  # noqa: PLC0415
        from zenodo_get.metadata import filter_files_from_metadata  # noqa: PLC0415
        from zenodo_get.workflow.file_url import file_url  # noqa: PLC0415
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    logger.disable("zenodo_get")
    return types.SimpleNamespace(
        create_client=create_configured_client,
        check_hash=check_hash,
        filter_files=filter_files_from_metadata,
        file_url=file_url,
        version=importlib.metadata.version("zenodo-get"),
    )


@contextlib.contextmanager
def _client(policy: RetryPolicy, client: httpx2.Client | None = None) -> Iterator[httpx2.Client]:
    """The caller's client, or one of zenodo_get's retrying clients configured by `policy` (closed after)."""
    if client is not None:
        yield client
        return
    own = _zenodo_get().create_client(
        retry_total=policy.retries,
        backoff_factor=policy.backoff,
        max_backoff_wait=policy.max_backoff,
        verbosity=0,
    )
    own.headers["User-Agent"] = "mlpf-workflow (Zenodo records API)"
    with own:
        yield own


# ---------------------------------------------------------------------------------------------- listing


def records_url(api_url: str, record: int | str) -> str:
    return f"{api_url.rstrip('/')}/records/{record}"


def download_url_base(api_url: str) -> str:
    """Base of the files' download URLs for an API base, in zenodo_get's form (`https://zenodo.org/records/`)."""
    return f"{api_url.rstrip('/').removesuffix('/api')}/records/"


def check_reachable(url: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """Fail at once, in one line, when the server of `url` (or the proxy to it) takes no TCP connection."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxied.hostname or "", proxied.port or 80
    try:
        socket.create_connection((host, port), timeout=min(timeout, REACH_TIMEOUT_S)).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MlpfError(
            f"cannot reach {host}:{port} for {url} ({reason}): no network to Zenodo here? Download on a machine "
            "with network (the download rules are local rules) or set zenodo.local_dir to a copy"
        ) from None


def fetch_metadata(
    record: int | str, api_url: str, policy: RetryPolicy, client: httpx2.Client | None = None
) -> dict[str, Any]:
    """The record's JSON from the records API (`GET <api_url>/records/<record>`)."""
    url = records_url(api_url, record)
    check_reachable(url, policy.timeout)
    with _client(policy, client) as http:
        try:
            response = http.get(url, timeout=policy.timeout, headers={"Accept": "application/json"})
        except httpx2.TransportError as exc:
            raise MlpfError(f"Zenodo record {record}: no answer from {url} ({type(exc).__name__})") from None
    if response.status_code == 404:
        raise MlpfError(f"Zenodo record {record} not found (HTTP 404 from {url}); check zenodo.record")
    if response.status_code != 200:
        raise MlpfError(f"Zenodo record {record}: HTTP {response.status_code} from {url}")
    try:
        metadata = response.json()
    except ValueError:
        raise MlpfError(f"Zenodo record {record}: {url} did not return JSON") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("files"), list):
        raise MlpfError(f"Zenodo record {record}: no file list in the reply from {url} (restricted record?)")
    return metadata


@dataclass(frozen=True)
class Listing:
    """A record's file entries as the API gave them (`key`, `size`, `checksum`, `links`), and where from."""

    record: int | str
    api_url: str
    entries: tuple[dict[str, Any], ...]

    def files(self) -> list[RecordFile]:
        """Every file, sorted by key."""
        return sorted((self.record_file(e) for e in self.entries), key=lambda f: f.key)

    def keys(self) -> list[str]:
        return sorted(_entry_key(e) for e in self.entries)

    def record_file(self, entry: Mapping[str, Any]) -> RecordFile:
        key = _entry_key(entry)
        if not key:
            raise MlpfError(f"Zenodo record {self.record}: a file entry has no 'key' ({self.api_url})")
        # zenodo_get falls back to <base>/records/<record>/files/<key> where `links` is missing.
        entry = {**entry, "links": entry.get("links") or {}}
        url = _zenodo_get().file_url(entry, str(self.record), download_url_base(self.api_url))
        checksum = str(entry.get("checksum") or "")
        md5 = checksum.removeprefix("md5:") if checksum.startswith("md5:") else None
        return RecordFile(key=key, size=int(entry.get("size", -1)), md5=md5, url=url)

    def to_json(self) -> str:
        payload = {"record": self.record, "api_url": self.api_url, "files": list(self.entries)}
        return json.dumps(payload, indent=1, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> Listing:
        """A listing written by `to_json` (the workflow's `resources/zenodo/<record>.listing.json`)."""
        try:
            payload = json.loads(Path(path).read_text())
            return cls(payload["record"], payload["api_url"], tuple(payload["files"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputFileError(
                f"not a Zenodo listing written by mlpf download --list ({exc})", path=path
            ) from None


def _entry_key(entry: Mapping[str, Any]) -> str:
    return str(entry.get("key") or entry.get("filename") or "")


def fetch_listing(
    record: int | str,
    api_url: str = DEFAULT_API_URL,
    policy: RetryPolicy | None = None,
    client: httpx2.Client | None = None,
) -> Listing:
    metadata = fetch_metadata(record, api_url, policy or RetryPolicy(), client)
    return Listing(record, api_url, tuple(metadata["files"]))


def fetch_record(
    record: int | str,
    api_url: str = DEFAULT_API_URL,
    policy: RetryPolicy | None = None,
    client: httpx2.Client | None = None,
) -> list[RecordFile]:
    """The files of a record (key, size, md5, download URL), sorted by key."""
    return fetch_listing(record, api_url, policy, client).files()


# ------------------------------------------------------------------------------------------- selection


def sample_patterns(settings: Mapping[str, Any], sample: str) -> list[str]:
    """The glob patterns selecting `sample`'s files (config `zenodo.samples`, else the defaults above)."""
    configured = (settings.get("samples") or {}).get(sample)
    if configured is not None:
        return list(configured)
    if sample not in DEFAULT_SAMPLE_PATTERNS:
        raise ConfigError(f"no Zenodo file patterns known for sample '{sample}'; set zenodo.samples.{sample}")
    return list(DEFAULT_SAMPLE_PATTERNS[sample])


def select_files(listing: Listing, patterns: Sequence[str], sample: str) -> list[RecordFile]:
    """The record files of a sample: each pattern's matches (by zenodo_get's glob filter) sorted by key,
    patterns in order, each file once. A pattern that matches nothing is an error naming the record's files."""
    chosen: dict[str, RecordFile] = {}
    for pattern in patterns:
        matched = _zenodo_get().filter_files(
            {"files": list(listing.entries)}, (pattern,), str(listing.record)
        )
        if not matched:
            raise MlpfError(
                f"Zenodo record {listing.record}: pattern '{pattern}' of sample {sample} matches no file; the "
                f"record has: {', '.join(listing.keys()) or 'no files'}; fix zenodo.samples.{sample}"
            )
        for rf in sorted((listing.record_file(e) for e in matched), key=lambda f: natural_key(f.key)):
            chosen.setdefault(rf.key, rf)
    return list(chosen.values())


def select_local(root: str | Path, patterns: Sequence[str], sample: str) -> list[Path]:
    """The entries (archives, ROOT files or unpacked directories) of a local copy that make up a sample."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError("zenodo.local_dir is not a directory", path=root)
    names = sorted((p.name for p in root.iterdir() if not p.name.startswith(".")), key=natural_key)
    chosen: list[Path] = []
    for pattern in patterns:
        matched = [root / n for n in names if fnmatchcase(n, pattern)]
        if not matched:
            raise InputFileError(
                f"pattern '{pattern}' of sample {sample} matches nothing in zenodo.local_dir; it holds: "
                f"{', '.join(names) or 'nothing'}; fix zenodo.samples.{sample}",
                path=root,
            )
        chosen += [p for p in matched if p not in chosen]
    return chosen


def archive_dir(settings: Mapping[str, Any], download_dir: str | Path = DEFAULT_DOWNLOAD_DIR) -> Path:
    """Where downloaded record files live: `<download_dir>/<record>` (the workflow's download rule layout)."""
    return Path(download_dir) / str(settings.get("record", DEFAULT_RECORD))


def listing_path(record: int | str, download_dir: str | Path = DEFAULT_DOWNLOAD_DIR) -> str:
    """Where the workflow keeps a record's listing (next to, not inside, the directory of its files)."""
    return f"{download_dir}/{record}.listing.json"


def sample_manifest(
    settings: Mapping[str, Any],
    sample: str,
    listing: Listing | None = None,
    download_dir: str | Path = DEFAULT_DOWNLOAD_DIR,
) -> dict[str, Any]:
    """The sample's files as chosen from the record's listing (or from `zenodo.local_dir`): the provenance of
    its shards. Each file has its key, size, md5 and the local path it is (or will be) read from."""
    patterns = sample_patterns(settings, sample)
    record = settings.get("record", DEFAULT_RECORD)
    if settings.get("local_dir"):
        files = [_local_entry(p) for p in select_local(settings["local_dir"], patterns, sample)]
        where = {"local_dir": str(settings["local_dir"])}
    else:
        if listing is None:
            raise ConfigError(
                f"sample {sample}: the record's listing is needed (mlpf download --list --output)"
            )
        target = archive_dir(settings, download_dir)
        files = [
            {**_record_entry(rf), "path": str(target / rf.key)}
            for rf in select_files(listing, patterns, sample)
        ]
        where = {"api_url": listing.api_url}
    return {
        "sample": sample,
        "record": record,
        **where,
        "patterns": patterns,
        "files": files,
        "provenance": provenance(zenodo_get_version=_zenodo_get().version),
    }


def _record_entry(rf: RecordFile) -> dict[str, Any]:
    return {"key": rf.key, "size": rf.size, "md5": rf.md5, "url": rf.url}


def _local_entry(path: Path) -> dict[str, Any]:
    size = path.stat().st_size if path.is_file() else None
    return {"key": path.name, "size": size, "md5": None, "path": str(path)}


def manifest_paths(path: str | Path) -> list[str]:
    """The local paths of a sample manifest's files, in shard order (the shard rule's inputs)."""
    try:
        return [str(f["path"]) for f in json.loads(Path(path).read_text())["files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(
            f"not a sample manifest written by mlpf download --select ({exc})", path=path
        ) from None


def write_json(path: str | Path, payload: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------------------- download


def is_complete(path: str | Path, rf: RecordFile) -> bool:
    """Whether `path` already holds this record file (size and md5 match; md5 skipped if none is listed)."""
    path = Path(path)
    if not path.is_file() or (rf.size >= 0 and path.stat().st_size != rf.size):
        return False
    return rf.md5 is None or _md5_matches(path, rf.md5)


def _md5_matches(path: Path, md5: str) -> bool:
    expected, actual = _zenodo_get().check_hash(str(path), md5)
    return expected == actual


def partial_path(dest: Path) -> Path:
    """The stable staging name of a download: hidden, with a `.part` suffix, next to the destination."""
    return dest.with_name(f".{dest.name}.part")


def _transfer(http: httpx2.Client, rf: RecordFile, part: Path, timeout: float, spliced: list[bool]) -> None:
    """One GET: append to `part` from its current length (Range), or start over where the server refuses.

    `spliced` records whether bytes were appended to an earlier attempt's (for the md5-mismatch policy).
    HTTP 429/5xx were already retried by the client; what is left is the answer.
    """
    offset = part.stat().st_size if part.exists() else 0
    if rf.size >= 0 and offset >= rf.size:
        return  # already all there; the md5 check decides whether it is right
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with http.stream("GET", rf.url, headers=headers, timeout=timeout) as response:
            mode = _write_mode(response, rf, part, offset)
            if mode == "ab":
                log.info("%s: resuming at byte %d of %d", rf.key, offset, rf.size)
                spliced.append(True)
            _stream_into(response, part, mode, rf, offset if mode == "ab" else 0)
    except httpx2.TransportError as exc:
        raise _Interrupted(f"transfer interrupted ({type(exc).__name__})") from None
    got = part.stat().st_size if part.exists() else 0
    if rf.size >= 0 and got < rf.size:
        raise _Interrupted(f"transfer ended at byte {got} of {rf.size}")


def _write_mode(response: httpx2.Response, rf: RecordFile, part: Path, offset: int) -> str:
    """The file mode for this reply: "ab" to append a matching 206, "wb" to start over; else an error."""
    if response.status_code == 416:  # the partial file is longer than the remote one: start over
        part.unlink(missing_ok=True)
        raise _Interrupted("HTTP 416 on resume; restarting from byte 0")
    if response.status_code not in (200, 206):
        raise MlpfError(f"download of {rf.key}: HTTP {response.status_code} from {rf.url}")
    if response.status_code == 200:
        if offset:
            log.info("%s: server ignored the Range request; downloading from byte 0", rf.key)
        return "wb"
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if not match or int(match.group(1)) != offset:  # a range we did not ask for: do not splice it in
        part.unlink(missing_ok=True)
        raise _Interrupted("unexpected Content-Range on resume; restarting from byte 0")
    return "ab"


def _stream_into(response: httpx2.Response, part: Path, mode: str, rf: RecordFile, start: int) -> None:
    total = rf.size if rf.size >= 0 else None
    with part.open(mode) as fh, progress_bar(rf.key, total=total, unit="B") as bar:
        bar.unit_scale = True
        bar.update(start)
        # iter_raw hands over bytes as they arrive, so a dropped connection loses nothing already received.
        for chunk in response.iter_raw():
            fh.write(chunk)
            bar.update(len(chunk))


def _transfer_with_resume(
    http: httpx2.Client, rf: RecordFile, part: Path, policy: RetryPolicy, spliced: list[bool]
) -> None:
    """Transfer until complete, resuming after interruptions; at most `policy.retries` resumptions."""
    for attempt in range(policy.retries + 1):
        try:
            _transfer(http, rf, part, policy.timeout, spliced)
            return
        except _Interrupted as exc:
            if attempt == policy.retries:
                raise MlpfError(
                    f"download of {rf.key}: giving up after {attempt + 1} attempts ({exc})"
                ) from None
            wait = policy.delay(attempt)
            log.warning("%s: %s; retrying in %.1f s (%d/%d)", rf.key, exc, wait, attempt + 1, policy.retries)
            time.sleep(wait)


def download_file(
    rf: RecordFile, dest: str | Path, policy: RetryPolicy | None = None, client: httpx2.Client | None = None
) -> bool:
    """Download one record file to `dest`, verified; return False if a good copy was already there.

    An interrupted transfer is resumed (also by a later call: the `.part` file persists). On an md5 mismatch
    the partial file is deleted and an `InputFileError` raised; if the bytes came partly from an earlier
    attempt or transfer, one fresh download is tried first, since a bad splice is the likeliest culprit.
    """
    policy = policy or RetryPolicy()
    dest = Path(dest)
    if is_complete(dest, rf):
        log.info("%s: already present and verified, skipped", dest)
        return False
    check_reachable(rf.url, policy.timeout)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    spliced = [True] if part.exists() and part.stat().st_size > 0 else []
    with _client(policy, client) as http:
        for fresh_try in (False, True):
            _transfer_with_resume(http, rf, part, policy, spliced)
            if rf.md5 is None or _md5_matches(part, rf.md5):
                break
            part.unlink(missing_ok=True)
            if fresh_try or not spliced:
                raise InputFileError(
                    f"md5 mismatch for {rf.key} from {rf.url}: expected {rf.md5}; the corrupt download was removed",
                    path=dest,
                )
            log.warning("%s: md5 mismatch after resume; downloading again from byte 0", rf.key)
    if rf.size >= 0 and part.stat().st_size != rf.size:  # only reachable without an md5 in the record
        part.unlink(missing_ok=True)
        raise InputFileError(f"size mismatch for {rf.key}: expected {rf.size} bytes", path=dest)
    part.replace(dest)  # atomic on one filesystem: the final name appears only when verified
    log.info("%s: downloaded and verified (md5 %s)", dest, rf.md5)
    return True


# ------------------------------------------------------------------------------------------------ shards


def natural_key(name: str) -> tuple:
    """Sort key comparing digit runs as numbers, so `reco_2.root` sorts before `reco_10.root`."""
    return tuple(int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name))


def _root_members(source: Path) -> Iterator[tuple[Path, str]]:
    """(source, member) for every ROOT file of one source, naturally sorted; member '' = the file itself.

    Archives and directories are searched at every depth, so ROOT files at the top level and ROOT files in a
    folder are found alike."""
    if source.is_dir():
        names = sorted((str(p.relative_to(source)) for p in source.rglob("*.root")), key=natural_key)
        yield from ((source, n) for n in names)
    elif source.name.endswith(".root"):
        yield source, ""
    else:
        try:
            with tarfile.open(source, "r:*") as tar:
                names = [m.name for m in tar.getmembers() if m.isfile() and m.name.endswith(".root")]
        except (tarfile.TarError, OSError) as exc:
            raise InputFileError(f"not a readable tar archive ({exc})", path=source) from None
        yield from ((source, n) for n in sorted(names, key=natural_key))


def list_shards(sources: Sequence[Path]) -> list[tuple[Path, str]]:
    """All ROOT files of a sample in shard order: sources in the given order, members naturally sorted."""
    return [item for source in sources for item in _root_members(source)]


def place_shard(
    sources: Sequence[Path], shard: int, output: str | Path, link: str = "copy"
) -> tuple[Path, str]:
    """Write the `shard`-th ROOT file of `sources` to `output` atomically; return (source, member).

    `link` applies to plain files (a local unpacked copy): `hardlink` (falls back to a copy across
    filesystems), `symlink` or `copy`. Archive members are always streamed out.
    """
    shards = list_shards(sources)
    if not 0 <= shard < len(shards):
        names = ", ".join(s.name for s in sources)
        raise MlpfError(
            f"shard {shard} does not exist: {names} hold{'s' if len(sources) == 1 else ''} {len(shards)} ROOT "
            f"files (shards 0..{len(shards) - 1}); lower shards.train/shards.test"
        )
    source, member = shards[shard]
    if source.is_dir() or not member:
        _place_file(source / member if member else source, Path(output), link)
    else:
        _extract_member(source, member, Path(output))
    log.info("shard %d <- %s%s", shard, source, f":{member}" if member else "")
    return source, member


def _place_file(src: Path, output: Path, link: str) -> None:
    with src.open("rb") as fh:
        _check_root_magic(fh.read(4), src)
    with atomic_output(output) as tmp:
        if link == "symlink":
            tmp.unlink()
            tmp.symlink_to(src.resolve())
        elif link == "hardlink":
            tmp.unlink()
            try:
                os.link(src, tmp)
            except OSError:  # other filesystem or no hard links: copy instead
                shutil.copyfile(src, tmp)
        else:
            shutil.copyfile(src, tmp)


def _extract_member(source: Path, member: str, output: Path) -> None:
    with tarfile.open(source, "r:*") as tar:
        stream = tar.extractfile(member)
        if stream is None:  # pragma: no cover - members were filtered to regular files
            raise InputFileError(f"{member} is not a regular file", path=source)
        with stream, atomic_output(output) as tmp, tmp.open("wb") as out:
            head = stream.read(4)
            _check_root_magic(head, f"{source}:{member}")
            out.write(head)
            shutil.copyfileobj(stream, out, CHUNK_BYTES)


def _check_root_magic(head: bytes, where: str | Path) -> None:
    if head != ROOT_MAGIC:
        raise InputFileError("not a ROOT file (missing 'root' header)", path=where)


def fetch_sample_files(
    settings: Mapping[str, Any],
    sample: str,
    client: httpx2.Client | None = None,
    download_dir: str | Path = DEFAULT_DOWNLOAD_DIR,
) -> list[Path]:
    """Make the sample's files available locally and return their paths, in shard order.

    With `zenodo.local_dir` set, nothing is downloaded: the files (or unpacked directories) matching the
    sample's patterns are taken from there. Otherwise the record is listed and the matching files are
    downloaded into `archive_dir(settings, download_dir)` (files already there and verified are kept).
    """
    patterns = sample_patterns(settings, sample)
    if settings.get("local_dir"):
        return select_local(settings["local_dir"], patterns, sample)
    policy = RetryPolicy.from_settings(settings)
    record = settings.get("record", DEFAULT_RECORD)
    target = archive_dir(settings, download_dir)
    with _client(policy, client) as http:
        listing = fetch_listing(record, settings.get("api_url", DEFAULT_API_URL), policy, http)
        chosen = select_files(listing, patterns, sample)
        for rf in chosen:
            download_file(rf, target / rf.key, policy, http)
    return [target / rf.key for rf in chosen]


# ---------------------------------------------------------------------------------------------- workflow

# Keys that change how a record file is fetched but never its content (the md5 pins that).
TRANSFER_KEYS = ("record", "api_url", "retries", "backoff_seconds", "max_backoff_seconds", "timeout_seconds")


def settings_subset_json(settings: Mapping[str, Any], keys: Sequence[str], **extra: Any) -> str:
    """Some keys of the zenodo section as compact JSON, for a rule's params: a rule reruns only when what it
    uses changes (a new retry count must not re-download verified multi-GB files, nor re-extract shards)."""
    subset = {k: settings[k] for k in keys if k in settings} | extra
    return json.dumps(subset, sort_keys=True, separators=(",", ":"))


def transfer_settings_json(settings: Mapping[str, Any]) -> str:
    """The listing and download rules' settings: only the transfer keys."""
    return settings_subset_json(settings, TRANSFER_KEYS)


def selection_settings_json(settings: Mapping[str, Any], sample: str) -> str:
    """The selection rule's settings for one sample: the record, the local copy and that sample's patterns."""
    return settings_subset_json(
        settings, ("record", "local_dir"), samples={sample: sample_patterns(settings, sample)}
    )
