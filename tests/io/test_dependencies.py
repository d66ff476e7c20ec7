"""The package's declared dependencies are the ones it imports, and `mlpf download` runs with those alone.

pyproject.toml is read directly (the installed metadata of an editable install can be older than the file).
The last test runs `mlpf download` in an interpreter that sees the standard library, the source tree and the
distributions of the declared dependencies with everything they require (links to this environment's copies),
nothing else: an import of an undeclared package fails there as it would in an environment made from
envs/mlpf.yaml, without the minutes and network a real installation would take.
"""

from __future__ import annotations

import ast
import http.server
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "src"


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _declared() -> list[Requirement]:
    """The runtime requirements of [project].dependencies (no extras, no dependency groups)."""
    return [Requirement(line) for line in _project()["dependencies"]]


def _declared_with_extras() -> list[Requirement]:
    """The runtime requirements and those of the extras ([project.optional-dependencies])."""
    extras = _project().get("optional-dependencies", {}).values()
    return _declared() + [Requirement(line) for lines in extras for line in lines]


def _imported_modules() -> set[str]:
    """Top-level names of the absolute imports in src/mlpf, at any depth (lazy imports included)."""
    names: set[str] = set()
    for path in (SOURCE / "mlpf").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"mlpf", "__future__"}


def _distributions_of(modules: set[str]) -> dict[str, set[str]]:
    """module -> the (canonical) names of the installed distributions that provide it."""
    providers = importlib.metadata.packages_distributions()
    return {m: {canonicalize_name(d) for d in providers.get(m, [])} for m in modules}


def test_every_imported_package_is_declared() -> None:
    """An import of a package in an extra is allowed (lazily, in the code that extra serves); the run with the
    dependencies alone below checks that `mlpf download` needs none."""
    declared = {canonicalize_name(r.name) for r in _declared_with_extras()}
    providers = _distributions_of(_imported_modules())
    undeclared = {m: sorted(d) for m, d in providers.items() if not d & declared}
    assert not undeclared, f"imported by src/mlpf but declared neither as dependency nor extra: {undeclared}"


def test_every_declared_package_is_imported() -> None:
    provided = set().union(*_distributions_of(_imported_modules()).values())
    unused = sorted(r.name for r in _declared() if canonicalize_name(r.name) not in provided)
    assert not unused, f"declared in [project].dependencies but never imported by src/mlpf: {unused}"


# ------------------------------------------------------------------------------------- declared-only run


def _closure(requirements: list[Requirement]) -> list[importlib.metadata.Distribution]:
    """The installed distributions these requirements need, with what they require in turn (markers and
    requested extras evaluated for this interpreter). A transitive requirement that is not installed here is
    left out (a platform-specific optional one); a declared one must be installed."""
    found: dict[str, importlib.metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(r, True) for r in requirements]
    while pending:
        req, declared = pending.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            if declared:
                raise
            continue
        found[key[0]] = dist
        extras = {""} | set(req.extras)
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                pending.append((sub, False))
    return list(found.values())


def _top_level_entries(dist: importlib.metadata.Distribution) -> set[Path]:
    """The paths at the top of site-packages that belong to a distribution (packages, modules, metadata)."""
    entries = set()
    for file in dist.files or []:
        parts = Path(file).parts
        if parts and parts[0] not in ("..", "__pycache__") and not parts[0].endswith(".pth"):
            entries.add(Path(dist.locate_file(parts[0])))
    return entries


def _declared_only_site(directory: Path) -> Path:
    """A directory of links to exactly the declared dependency closure."""
    directory.mkdir()
    for dist in _closure(_declared()):
        for entry in _top_level_entries(dist):
            link = directory / entry.name
            if entry.exists() and not link.exists():
                link.symlink_to(entry)
    return directory


@pytest.fixture
def listing_server() -> Iterator[str]:
    """A records API on 127.0.0.1 with one file in record 8260741."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            entry = {"key": "p8_ee_tt_ecm380_10files.tar", "size": 3, "checksum": "md5:" + "0" * 32}
            body = json.dumps({"files": [entry]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api"
    httpd.shutdown()
    httpd.server_close()


def _run_with_declared_only(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # -I -S: no environment variables, no user or system site-packages; only the links and the source tree.
    bootstrap = (
        f"import sys; sys.path[:0] = [{str(site)!r}, {str(SOURCE)!r}]; from mlpf.cli import main; "
        f"raise SystemExit(main({list(args)!r}))"
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", bootstrap], capture_output=True, text=True, env=env, check=False,
        timeout=120,
    )  # fmt: skip


def test_mlpf_download_runs_with_the_declared_dependencies_alone(tmp_path: Path, listing_server: str) -> None:
    site = _declared_only_site(tmp_path / "site")
    probe = _run_with_declared_only(
        site, "download", "--list", "--settings", json.dumps({"api_url": listing_server})
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout == f"p8_ee_tt_ecm380_10files.tar\t3\t{'0' * 32}\n"


def test_the_declared_only_interpreter_really_lacks_undeclared_packages(tmp_path: Path) -> None:
    """The check above can fail: a package outside the closure (pytest here) is not importable there."""
    site = _declared_only_site(tmp_path / "site")
    code = f"import sys; sys.path[:0] = [{str(site)!r}]; import pytest"
    probe = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False
    )
    assert probe.returncode != 0
    assert "No module named 'pytest'" in probe.stderr
