"""constraints.txt, the exact versions of a tested install: it pins everything the README's install brings in."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, Version]:
    pins = {}
    for raw in (REPO / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line)
            assert match, f"constraints.txt: not an exact pin: {line!r}"
            pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    return pins


def _declared() -> list[Requirement]:
    """What the README's install asks for: the dependencies, the workflow extra and the test group."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = [*project["project"]["dependencies"], *project["project"]["optional-dependencies"]["workflow"]]
    names += [r for r in project["dependency-groups"]["test"] if isinstance(r, str)]
    return [Requirement(r) for r in names]


def _closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution the requirements pull in, through the installed packages' metadata and extras."""
    seen: set[str] = set()
    todo = [(r, "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        for wanted in ["", *sorted(requirement.extras)]:
            key = f"{name}[{wanted}]"
            if key in seen:
                continue
            seen.add(key)
            for sub in metadata.requires(name) or []:
                todo.append((Requirement(sub), wanted))
    return {key.split("[", 1)[0] for key in seen}


def test_every_declared_requirement_is_pinned_to_a_version_it_accepts():
    pins = _pins()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared in pyproject.toml but not pinned: run bash .ci/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside {requirement}: run bash .ci/lock"
        )


def test_everything_the_install_brings_in_is_pinned():
    missing = sorted(_closure(_declared()) - set(_pins()))
    assert not missing, f"not pinned in constraints.txt: {missing}; run bash .ci/lock"


def test_the_reports_extra_is_part_of_the_workflow_extra():
    # `snakemake --report` needs pygments; the README's main install must bring it
    assert "pygments" in _closure([r for r in _declared() if canonicalize_name(r.name) == "snakemake"])
