"""The report check of CI (.ci/check_report.py) in a real headless Chromium: it passes a good report and names
a figure that is missing or does not load. Skipped where no Chromium is installed; CI installs one."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / ".ci" / "check_report.py"
BROWSER = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable") if shutil.which(b)),
    None,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BROWSER is None, reason="no Chromium here (CI installs Debian's chromium)"),
]

# The figures rule of workflow/rules/evaluate.smk in small: a directory of PNGs per sample, reported by pattern
# with the sample as subcategory.
SNAKEFILE = textwrap.dedent(
    """
    report: "workflow.rst"

    rule figures:
        output:
            figures=report(
                directory("results/figures/ci"),
                patterns=["{group}/{name}.png"],
                caption="figures.rst",
                category="Figures",
                subcategory="{group}",
            ),
        run:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from pathlib import Path
            for group in ("ttbar", "gun_pi", "training"):
                Path(output.figures, group).mkdir(parents=True)
                for name in ("jet_response", "met_response"):
                    plt.figure(figsize=(3, 2))
                    plt.plot([1, 2, 3])
                    plt.savefig(f"{output.figures}/{group}/{name}.png")
                    plt.close()
    """
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report")
    (root / "Snakefile").write_text(SNAKEFILE)
    (root / "workflow.rst").write_text("A test workflow.\n")
    (root / "figures.rst").write_text(
        "Figure {{ snakemake.wildcards.name }} of {{ snakemake.wildcards.group }}.\n"
    )
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "1", "--workflow-profile", "none"]
    for extra in ([], ["--report", "report.html"]):
        done = subprocess.run([*snakemake, *extra], cwd=root, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
    return root / "report.html", root / "results" / "figures" / "ci"


def check(report: Path, figures: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(CHECK), str(report), "--figures", str(figures), "--browser", BROWSER]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_every_figure_of_every_sample_is_listed_and_loads(report: tuple[Path, Path]) -> None:
    done = check(*report)
    assert done.returncode == 0, done.stderr
    assert "6 figures in 3 groups (samples, training, ...) listed and loaded" in done.stdout


def test_a_figure_that_does_not_decode_is_named(report: tuple[Path, Path], tmp_path: Path) -> None:
    html, figures = report
    text = html.read_text()
    # replace the gun_pi met_response picture with bytes that are no PNG, as a damaged report would hold
    pattern = (
        r"(\"results/figures/ci/gun_pi/met_response.png\": \{.*?\"data_uri\": \"data:image/png;[^,]*,)[^\"]+"
    )
    broken = base64.b64encode(b"not a png").decode()
    damaged, n = re.subn(pattern, lambda m: m.group(1) + broken, text, count=1, flags=re.DOTALL)
    assert n == 1
    copy = tmp_path / "report.html"
    copy.write_text(damaged)
    done = check(copy, figures)
    assert done.returncode == 1
    assert "sample gun_pi: met_response.png does not load" in done.stderr
    assert "ttbar" not in done.stderr


def test_a_figure_missing_from_the_report_is_named(report: tuple[Path, Path], tmp_path: Path) -> None:
    html, figures = report
    extra = tmp_path / "figures"
    shutil.copytree(figures, extra)
    shutil.copy(extra / "ttbar" / "met_response.png", extra / "ttbar" / "energy_response.png")
    done = check(html, extra)
    assert done.returncode == 1
    assert "sample ttbar: energy_response.png is not listed" in done.stderr
