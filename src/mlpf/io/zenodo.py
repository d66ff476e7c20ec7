"""Download of the published CLIC EDM4HEP files from Zenodo, and placement of one shard per ROOT file.

The records API (`GET {api_url}/records/<id>`, the endpoint `zenodo_get` also reads) lists each file with its
`key`, `size`, `checksum` ("md5:<hex>") and `links.self` (the download URL). On top of that API this module
adds what a workflow needs and `zenodo_get` 3.1 lacks: a base-URL override (a mirror, or a loopback server in
tests), resume of interrupted transfers with HTTP Range requests, bounded exponential backoff, md5
verification, and atomic placement: bytes go to a stable hidden `.<name>.part` file (stable so that a later
run can resume it) and are renamed onto the final name only after the md5 matched, so a failed or corrupt
download never leaves a file that looks complete.

Shards: the record ships each sample as tar archives of ROOT files (`p8_ee_tt_ecm380_10files.tar` holds
`p8_ee_tt_ecm380/reco_p8_ee_tt_ecm380_<seed>.root`). Shard k of a sample is the k-th ROOT file of the sample's
archives, taken in the configured archive order and, within an archive, sorted by name with digit runs
compared as numbers (`..._2.root` before `..._10.root`). A shard is extracted alone, streamed from the
archive into `resources/edm4hep/{sample}/{shard}.root`.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import tarfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3

from mlpf.atomic import atomic_output
from mlpf.errors import ConfigError, InputFileError, MlpfError
from mlpf.progress import progress_bar

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://zenodo.org/api"
# Raw EDM4HEP files of the MLPF CLIC dataset, v1.1 (Pata et al. 2023; jpata/particleflow README).
DEFAULT_RECORD = 8260741
# Downloads go under resources/ (workflow convention: downloads in resources/, results in results/).
DEFAULT_DOWNLOAD_DIR = "resources/zenodo"

# Record file(s) per sample. The tt and WW archive names are confirmed by public download scripts
# (jpata/particleflow README, `wget .../records/8260741/files/p8_ee_tt_ecm380_10files.tar`); the others follow
# the same pattern with the Pythia card names of the production and are *unverified* (the record's full file
# listing could not be checked). `mlpf download --list` prints the real listing; override in config
# (`zenodo.samples`).
DEFAULT_SAMPLE_FILES: dict[str, tuple[str, ...]] = {
    "ttbar": ("p8_ee_tt_ecm380_10files.tar",),
    "qq": ("p8_ee_qq_ecm380_10files.tar",),
    "zh_tautau": ("p8_ee_ZH_Htautau_ecm380_10files.tar",),
    "ww_fullhad": ("p8_ee_WW_fullhad_ecm380_10files.tar",),
    "z_tautau": ("p8_ee_Z_Ztautau_ecm380_10files.tar",),
    "ttbar_pu10": ("p8_ee_tt_ecm380_PU10_10files.tar",),
    "gun_e": ("e-_10files.tar",),
    "gun_mu": ("mu-_10files.tar",),
    "gun_pi": ("pi-_10files.tar",),
    "gun_pi0": ("pi0_10files.tar",),
    "gun_kl": ("kaon0L_10files.tar",),
    "gun_n": ("neutron_10files.tar",),
    "gun_gamma": ("gamma_10files.tar",),
}

# Transient failures worth another attempt: rate limiting and server-side errors (Zenodo answers 429 under
# load and 502/503/504 behind its proxy). Other 4xx are the user's problem (wrong record, private file).
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
CHUNK_BYTES = 1 << 20  # 1 MiB: large enough for throughput, small enough for a responsive progress bar
ROOT_MAGIC = b"root"  # every ROOT file starts with these four bytes
# A Range reply is trusted only if its Content-Range starts where the partial file ends.
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class RecordFile:
    """One file of a Zenodo record, as the records API lists it."""

    key: str
    size: int
    md5: str | None
    url: str


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: attempt i (0-based) waits min(backoff * 2**i, max_backoff) seconds."""

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


# What a dropped, reset or stalled connection raises, at each layer (requests, urllib3, http.client, socket).
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


class _Transient(Exception):
    """A failure that another attempt may cure (dropped connection, 5xx, timeout)."""


def _records_url(api_url: str, record: int | str) -> str:
    return f"{api_url.rstrip('/')}/records/{record}"


def _with_retries(what: str, policy: RetryPolicy, fn, *args, **kwargs):
    """Call `fn` until it succeeds or the retries are spent; only `_Transient` failures are retried."""
    for attempt in range(policy.retries + 1):
        try:
            return fn(*args, **kwargs)
        except _Transient as exc:
            if attempt == policy.retries:
                raise MlpfError(f"{what}: giving up after {attempt + 1} attempts ({exc})") from None
            wait = policy.delay(attempt)
            log.warning("%s: %s; retrying in %.1f s (%d/%d)", what, exc, wait, attempt + 1, policy.retries)
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _get_json(session: requests.Session, url: str, timeout: float, record: int | str) -> dict[str, Any]:
    try:
        response = session.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except _NETWORK_ERRORS as exc:
        raise _Transient(type(exc).__name__) from None
    if response.status_code in RETRY_STATUS:
        raise _Transient(f"HTTP {response.status_code}")
    if response.status_code == 404:
        raise MlpfError(f"Zenodo record {record} not found (HTTP 404 from {url}); check zenodo.record")
    if response.status_code != 200:
        raise MlpfError(f"Zenodo record {record}: HTTP {response.status_code} from {url}")
    try:
        return response.json()
    except ValueError:
        raise MlpfError(f"Zenodo record {record}: {url} did not return JSON") from None


def fetch_record(
    record: int | str,
    api_url: str = DEFAULT_API_URL,
    policy: RetryPolicy | None = None,
    session: requests.Session | None = None,
) -> list[RecordFile]:
    """List the files of a record (key, size, md5, download URL), sorted by key."""
    policy = policy or RetryPolicy()
    url = _records_url(api_url, record)
    with _session(session) as sess:
        meta = _with_retries(
            f"Zenodo record {record} ({url})", policy, _get_json, sess, url, policy.timeout, record
        )
    entries = meta.get("files")
    if not isinstance(entries, list):
        raise MlpfError(f"Zenodo record {record}: no file list in the reply from {url} (restricted record?)")
    files = []
    for entry in entries:
        key = entry.get("key") or entry.get("filename")
        links = entry.get("links") or {}
        link = links.get("self") or links.get("content") or links.get("download")
        if not key or not link:
            raise MlpfError(f"Zenodo record {record}: a file entry lacks 'key' or 'links.self' ({url})")
        checksum = str(entry.get("checksum") or "")
        md5 = checksum.removeprefix("md5:") if checksum.startswith("md5:") else None
        files.append(RecordFile(key=str(key), size=int(entry.get("size", -1)), md5=md5, url=str(link)))
    return sorted(files, key=lambda f: f.key)


def md5sum(path: str | Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_complete(path: str | Path, rf: RecordFile) -> bool:
    """Whether `path` already holds this record file (size and md5 match; md5 skipped if none is listed)."""
    path = Path(path)
    if not path.is_file() or (rf.size >= 0 and path.stat().st_size != rf.size):
        return False
    return rf.md5 is None or md5sum(path) == rf.md5


def partial_path(dest: Path) -> Path:
    """The stable staging name of a download: hidden, with a `.part` suffix, next to the destination."""
    return dest.with_name(f".{dest.name}.part")


def _transfer(
    session: requests.Session, rf: RecordFile, part: Path, timeout: float, spliced: list[bool]
) -> None:
    """One HTTP attempt: append to `part` from its current length (Range), or start over if refused.

    `spliced` records whether bytes were appended to an earlier attempt's (for the md5-mismatch policy).
    """
    offset = part.stat().st_size if part.exists() else 0
    if rf.size >= 0 and offset >= rf.size:
        return  # already all there; the md5 check decides whether it is right
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with session.get(rf.url, stream=True, timeout=timeout, headers=headers) as response:
            if response.status_code in RETRY_STATUS:
                raise _Transient(f"HTTP {response.status_code}")
            if response.status_code == 416:  # the partial file is longer than the remote one: start over
                part.unlink(missing_ok=True)
                raise _Transient("HTTP 416 on resume; restarting from byte 0")
            if response.status_code not in (200, 206):
                raise MlpfError(f"{rf.key}: HTTP {response.status_code} from {rf.url}")
            mode = "wb"
            if response.status_code == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if match and int(match.group(1)) == offset:
                    mode = "ab"
                else:  # a range we did not ask for: do not splice it in
                    part.unlink(missing_ok=True)
                    raise _Transient("unexpected Content-Range on resume; restarting from byte 0")
            elif offset:
                log.info("%s: server ignored the Range request; downloading from byte 0", rf.key)
            else:
                log.info("%s: downloading %s bytes", rf.key, rf.size if rf.size >= 0 else "?")
            if mode == "ab":
                log.info("%s: resuming at byte %d of %d", rf.key, offset, rf.size)
                spliced.append(True)
            total = rf.size if rf.size >= 0 else None
            with part.open(mode) as fh, progress_bar(rf.key, total=total, unit="B") as bar:
                bar.unit_scale = True
                bar.update(offset if mode == "ab" else 0)
                # read1 hands over bytes as they arrive, so a dropped connection loses nothing already
                # received (iter_content would discard its partly filled chunk).
                while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
                    fh.write(chunk)
                    bar.update(len(chunk))
    except _NETWORK_ERRORS as exc:
        raise _Transient(f"transfer interrupted ({type(exc).__name__})") from None
    got = part.stat().st_size if part.exists() else 0
    if rf.size >= 0 and got < rf.size:
        raise _Transient(f"transfer ended at byte {got} of {rf.size}")


def download_file(
    rf: RecordFile,
    dest: str | Path,
    policy: RetryPolicy | None = None,
    session: requests.Session | None = None,
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
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    spliced = [True] if part.exists() and part.stat().st_size > 0 else []
    with _session(session) as sess:
        for fresh_try in (False, True):
            _with_retries(f"download of {rf.key}", policy, _transfer, sess, rf, part, policy.timeout, spliced)
            got_md5 = md5sum(part)
            if rf.md5 is None or got_md5 == rf.md5:
                break
            part.unlink(missing_ok=True)
            if fresh_try or not spliced:
                raise InputFileError(
                    f"md5 mismatch for {rf.key} from {rf.url}: expected {rf.md5}, got {got_md5}; "
                    "the corrupt download was removed",
                    path=dest,
                )
            log.warning("%s: md5 mismatch after resume; downloading again from byte 0", rf.key)
    if rf.size >= 0 and part.stat().st_size != rf.size:  # only reachable without an md5 in the record
        part.unlink(missing_ok=True)
        raise InputFileError(f"size mismatch for {rf.key}: expected {rf.size} bytes", path=dest)
    part.replace(dest)  # atomic on one filesystem: the final name appears only when verified
    log.info("%s: downloaded and verified (md5 %s)", dest, rf.md5)
    return True


@contextlib.contextmanager
def _session(session: requests.Session | None) -> Iterator[requests.Session]:
    """Use the caller's session, or open (and close) one of our own."""
    if session is not None:
        yield session
        return
    with requests.Session() as own:
        own.headers["User-Agent"] = "mlpf-workflow (Zenodo records API)"
        yield own


# ---------------------------------------------------------------------------------------------- samples


def sample_files(settings: Mapping[str, Any], sample: str) -> list[str]:
    """Record file keys holding `sample` (config `zenodo.samples`, else the defaults above)."""
    configured = (settings.get("samples") or {}).get(sample)
    if configured is not None:
        return list(configured)
    if sample not in DEFAULT_SAMPLE_FILES:
        raise ConfigError(f"no Zenodo files known for sample '{sample}'; set zenodo.samples.{sample}")
    return list(DEFAULT_SAMPLE_FILES[sample])


def archive_dir(settings: Mapping[str, Any], download_dir: str | Path = DEFAULT_DOWNLOAD_DIR) -> Path:
    """Where downloaded record files live: `<download_dir>/<record>` (the workflow's download rule layout)."""
    return Path(download_dir) / str(settings.get("record", DEFAULT_RECORD))


def local_sources(settings: Mapping[str, Any], sample: str) -> list[Path]:
    """The sample's files or unpacked directories in an existing local copy (`zenodo.local_dir`).

    A record file is looked up as `<local_dir>/<key>`; an archive may also be present unpacked, as the
    directory its name stands for (`p8_ee_tt_ecm380_10files.tar` -> `<local_dir>/p8_ee_tt_ecm380/`).
    """
    root = Path(settings["local_dir"])
    if not root.is_dir():
        raise InputFileError("zenodo.local_dir is not a directory", path=root)
    found = []
    for key in sample_files(settings, sample):
        candidates = [root / key, root / unpacked_name(key)]
        hit = next((c for c in candidates if c.exists()), None)
        if hit is None:
            raise InputFileError(
                f"sample {sample}: neither {key} nor the unpacked directory {unpacked_name(key)}/ is in "
                "zenodo.local_dir",
                path=root,
            )
        found.append(hit)
    return found


def unpacked_name(key: str) -> str:
    """The directory an archive unpacks to: `p8_ee_tt_ecm380_10files.tar` -> `p8_ee_tt_ecm380`."""
    stem = re.sub(r"\.(tar(\.gz|\.bz2|\.xz)?|tgz)$", "", key)
    return re.sub(r"_\d+files$", "", stem)


def natural_key(name: str) -> tuple:
    """Sort key comparing digit runs as numbers, so `reco_2.root` sorts before `reco_10.root`."""
    return tuple(int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name))


def _root_members(source: Path) -> Iterator[tuple[Path, str]]:
    """(source, member) for every ROOT file of one source, naturally sorted; member '' = the file itself."""
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


def list_shards(sources: list[Path]) -> list[tuple[Path, str]]:
    """All ROOT files of a sample in shard order: sources in the given order, members naturally sorted."""
    return [item for source in sources for item in _root_members(source)]


def place_shard(sources: list[Path], shard: int, output: str | Path, link: str = "copy") -> tuple[Path, str]:
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
    output = Path(output)
    if source.is_dir() or not member:
        src = source / member if member else source
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
    else:
        with tarfile.open(source, "r:*") as tar:
            stream = tar.extractfile(member)
            if stream is None:  # pragma: no cover - members were filtered to regular files
                raise InputFileError(f"{member} is not a regular file", path=source)
            with stream, atomic_output(output) as tmp, tmp.open("wb") as out:
                head = stream.read(4)
                _check_root_magic(head, f"{source}:{member}")
                out.write(head)
                shutil.copyfileobj(stream, out, CHUNK_BYTES)
    log.info("shard %d <- %s%s", shard, source, f":{member}" if member else "")
    return source, member


def _check_root_magic(head: bytes, where: str | Path) -> None:
    if head != ROOT_MAGIC:
        raise InputFileError("not a ROOT file (missing 'root' header)", path=where)


def fetch_sample_files(
    settings: Mapping[str, Any],
    sample: str,
    session: requests.Session | None = None,
    download_dir: str | Path = DEFAULT_DOWNLOAD_DIR,
) -> list[Path]:
    """Make the sample's record files available locally and return their paths.

    With `zenodo.local_dir` set, nothing is downloaded: the files (or their unpacked directories) are taken
    from there. Otherwise missing files are downloaded into `archive_dir(settings, download_dir)`.
    """
    if settings.get("local_dir"):
        return local_sources(settings, sample)
    wanted = sample_files(settings, sample)
    policy = RetryPolicy.from_settings(settings)
    record = settings.get("record", DEFAULT_RECORD)
    target = archive_dir(settings, download_dir)
    paths = []
    with _session(session) as sess:
        listing = {
            f.key: f for f in fetch_record(record, settings.get("api_url", DEFAULT_API_URL), policy, sess)
        }
        for key in wanted:
            if key not in listing:
                raise MlpfError(
                    f"Zenodo record {record} has no file '{key}' (sample {sample}); it has: "
                    f"{', '.join(sorted(listing)) or 'no files'}; fix zenodo.samples.{sample}"
                )
            dest = target / key
            download_file(listing[key], dest, policy, sess)
            paths.append(dest)
    return paths


# ---------------------------------------------------------------------------------------------- workflow


def workflow_sources(settings: Mapping[str, Any], download_dir: str = DEFAULT_DOWNLOAD_DIR):
    """An input function for the shard rule: wildcards -> the sample's record files, as paths.

    Without `local_dir` these are the download rule's outputs (`<download_dir>/<record>/<key>`); with it, the
    files in the local copy, or their unpacked directories where only those exist.
    """

    def sources(wildcards: Any) -> list[str]:
        keys = sample_files(settings, wildcards.sample)
        local = settings.get("local_dir") or ""
        if not local:
            return [f"{download_dir}/{settings.get('record', DEFAULT_RECORD)}/{key}" for key in keys]
        paths = []
        for key in keys:
            archive, unpacked = Path(local) / key, Path(local) / unpacked_name(key)
            paths.append(str(unpacked if not archive.exists() and unpacked.is_dir() else archive))
        return paths

    return sources


# Keys that change how a record file is fetched but never its content (the md5 pins that).
TRANSFER_KEYS = ("record", "api_url", "retries", "backoff_seconds", "max_backoff_seconds", "timeout_seconds")


def transfer_settings_json(settings: Mapping[str, Any]) -> str:
    """The download rule's settings: only the transfer keys, so that editing other zenodo keys does not
    trigger a rerun (and with it a new download) of large, already verified files."""
    return json.dumps(
        {k: settings[k] for k in TRANSFER_KEYS if k in settings}, sort_keys=True, separators=(",", ":")
    )
