"""The snakemake commands the project documents are commands Snakemake accepts as written.

`--configfile` takes every word after it as a config file (and `--config` every word as KEY=VALUE), so a target
written after them is read as a file that does not exist: `snakemake --cores all --configfile config/paper.yaml
paper` fails. Targets go before them. Every documented command is checked for that order, and every command of
the README is planned (`-n`) in a copy of the workflow, as a user would type it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Where commands are documented: prose, config comments, rule comments, CI scripts, profiles, printed hints.
DOCUMENTED = (
    "README.md",
    "docs/**/*.md",
    "config/*.md",
    "config/*.yaml",
    ".test/config/*.yaml",
    "workflow/Snakefile",
    "workflow/rules/*.smk",
    "workflow/report/*.rst",
    "profiles/**/*.yaml",
    "profiles/**/*.md",
    ".ci/run",
    ".ci/**/*.sh",
    ".ci/*.py",
    "src/mlpf/**/*.py",
    "benchmarks/*.py",
)
CONFIG_FILE = re.compile(r"\.(ya?ml|json)$")
FENCED = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
# `snakemake` as a command word (not run_snakemake, not a path or a module name)
COMMAND = re.compile(r"(?<![\w/.-])snakemake(?=\s+-)")


def _cut(line: str) -> list[str]:
    """The snakemake commands of one shell line: each from `snakemake` to the end of its command."""
    commands = []
    for match in COMMAND.finditer(line):
        rest = line[match.start() :]
        rest = re.split(r"\s(?:&&|\|\||;|\|)\s|\s#\s|\s+#$", rest, maxsplit=1)[0]  # next command, a comment
        commands.append(" ".join(rest.split()))
    return commands


def _shell_lines(text: str) -> list[str]:
    return text.replace("\\\n", " ").splitlines()


def markdown_commands(text: str) -> list[str]:
    """Commands of a Markdown file: lines of its fenced code blocks, and its inline code spans."""
    commands = [c for block in FENCED.findall(text) for line in _shell_lines(block) for c in _cut(line)]
    prose = FENCED.sub("", text)
    spans = (" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose))
    return commands + [c for span in spans for c in _cut(span)]


def documented_commands(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return markdown_commands(text)
    return [c for line in _shell_lines(text) for c in _cut(line)]


def misplaced_words(command: str) -> list[str]:
    """Words that `--configfile` would read as config files, or `--config` as settings: targets after them."""
    for text in (command, command.rstrip("\"',)`")):  # as written, or without the quote of a string around it
        try:
            words = shlex.split(text)
            break
        except ValueError:
            continue
    else:
        words = command.split()
    wrong = []
    option = None
    for word in words:
        if word.startswith("-"):
            option = word if word in ("--configfile", "--configfiles", "--config") else None
            continue
        not_setting = option == "--config" and "=" not in word
        not_file = option in ("--configfile", "--configfiles") and not CONFIG_FILE.search(word)
        if not_setting or not_file:
            wrong.append(word)
    return wrong


def all_documented() -> dict[str, list[str]]:
    files = sorted({p for pattern in DOCUMENTED for p in REPO.glob(pattern) if p.is_file()})
    return {str(p.relative_to(REPO)): documented_commands(p) for p in files}


def test_the_checks_see_a_target_after_configfile():
    assert misplaced_words("snakemake --cores all --configfile config/paper.yaml paper") == ["paper"]
    assert misplaced_words("snakemake --cores all paper --configfile config/paper.yaml") == []
    # one --configfile with several files (the HPO overlay), and `--` before the targets, are fine
    assert misplaced_words("snakemake --cores all --configfile config/hpo.yaml results/hpo/best.yaml") == []
    assert misplaced_words("snakemake --cores 2 --configfile c.yaml --set-threads w=1 -- results/hpo") == []
    assert misplaced_words("snakemake --cores all --config source=zenodo results/plots") == ["results/plots"]
    text = (
        "Run `snakemake --cores all\n--configfile my.yaml plots` or:\n\n```bash\nsnakemake -n all  # x\n```\n"
    )
    assert markdown_commands(text) == ["snakemake -n all", "snakemake --cores all --configfile my.yaml plots"]
    printed = '        "#   snakemake --cores all --configfile config/hpo.yaml results/hpo/best.yaml",'
    assert [misplaced_words(c) for c in _cut(printed)] == [[]]
    assert (
        misplaced_words("""snakemake --cores all --config 'hpo={"n_workers": 32, "n_trials": 400}'""") == []
    )
    assert _cut("run_snakemake hpo 0 --configfile x.yaml results/hpo") == []


def test_targets_come_before_configfile_in_every_documented_command():
    commands = all_documented()
    assert len(commands["README.md"]) >= 8, commands["README.md"]
    assert "snakemake --cores all results/plots" in commands["README.md"]
    wrong = [
        f"{name}: {command} (read as config: {', '.join(misplaced_words(command))})"
        for name, found in commands.items()
        for command in found
        if misplaced_words(command)
    ]
    assert not wrong, "targets go before --configfile/--config:\n" + "\n".join(wrong)


def test_the_main_job_is_results_plots_everywhere():
    # the main target is the directory results/plots; `plots` alone is the rule's name, not what to document
    old = re.compile(r"snakemake( --\S+( \S+)?)* plots\b|results/plots/\{model\}|results/plots/<model")
    found = [
        f"{name}: {command}"
        for name, commands in all_documented().items()
        for command in commands
        if old.search(command)
    ]
    assert not found, "\n".join(found)


README_COMMANDS = sorted(set(markdown_commands((REPO / "README.md").read_text(encoding="utf-8"))))


@pytest.mark.slow
@pytest.mark.parametrize("command", README_COMMANDS)
def test_every_snakemake_command_of_the_readme_plans(command: str, tmp_path: Path) -> None:
    """Each `snakemake ...` of the README, as written, with `-n`, in a copy of the workflow and its configs."""
    for part in ("workflow", "config", "profiles"):
        shutil.copytree(REPO / part, tmp_path / part)
    words = shlex.split(command)
    for index, word in enumerate(words[:-1]):  # a config file of the reader's own (my.yaml): an empty overlay
        if word == "--configfile" and not (tmp_path / words[index + 1]).exists():
            (tmp_path / words[index + 1]).write_text("{}\n")
    argv = [sys.executable, "-m", "snakemake", *words[1:], "-n"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    if "--report" in words:
        # a report is of a finished run: planned, it stops at the first figure not made yet
        assert "marked for report but does not exist" in output, output[-3000:]
        return
    assert done.returncode == 0, output[-3000:]
    assert "Traceback" not in output
