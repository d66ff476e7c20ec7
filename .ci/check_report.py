#!/usr/bin/env python3
"""Open a Snakemake HTML report in a real headless browser and check that every figure is listed and loads.

The report is a single page rendered by React from data embedded in it. A copy of it gets a small driver
script that uses the page as a user would: it opens every category and subcategory, clicks each figure's view
button and waits for the image the page then shows. Chromium runs the copy headless (`--dump-dom`, virtual
time so that the clicks and image decoding finish) and the driver writes what it saw into the DOM it prints.

The figures on disk decide what must be there: every PNG under FIGURES/<sample>/ (the model's figures,
results/figures/<model>/, which the report shows) must appear in the report's subcategory <sample>, and its
image must decode to a non-empty picture.

    python .ci/check_report.py .test/results/report.html --figures .test/results/figures/ci

Exit status 0 when every figure is listed and loads, 1 otherwise (one line per problem), 2 when no browser.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RESULT_ID = "mlpf-report-check"
# Virtual time the page gets (ms): rendering every subcategory and decoding every figure takes far less.
VIRTUAL_TIME_MS = 120_000
TIMEOUT_S = 300

# Runs in the page after the report's own scripts. `app`, `categories` and `results` are the report's globals
# (snakemake/report/html_reporter/template); the checks go through the rendered DOM, not through them.
DRIVER = """
<script>
(async () => {
  const seen = {};
  const errors = [];
  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const entry = (text) => Array.from(document.querySelectorAll("#app nav a")).find(
    (a) => a.textContent.trim() === text);
  const click = async (text, required) => {
    const target = entry(text);
    if (!target && required) throw new Error("no menu entry " + JSON.stringify(text));
    if (target) {
      target.click();
      await pause(100);
    }
  };
  const loaded = async (img) => {
    for (let i = 0; i < 100 && !img.complete; i++) await pause(20);
    return img.complete && img.naturalWidth > 0 && img.naturalHeight > 0;
  };
  const figuresShown = async () => {
    const figures = {};
    for (const row of document.querySelectorAll("tbody tr")) {
      const cells = row.querySelectorAll("td");
      const view = cells.length ? cells[cells.length - 1].querySelector("a") : null;
      if (!view) continue;
      const name = cells[0].textContent.trim().split("/").pop();
      view.click();
      await pause(100);
      const imgs = Array.from(document.querySelectorAll("#app img")).filter((img) => img.src !== logo_uri);
      figures[name] = imgs.length === 1 && (await loaded(imgs[0]))
        ? { loads: true, width: imgs[0].naturalWidth, height: imgs[0].naturalHeight }
        : { loads: false, images: imgs.length };
    }
    return figures;
  };
  try {
    for (let i = 0; i < 200 && typeof app === "undefined"; i++) await pause(50);
    await pause(100);
    for (const category of Object.keys(categories)) {
      for (const subcategory of Object.keys(categories[category])) {
        // as a reader: from the main menu to the category, then to the subcategory. The report folds levels
        // with a single entry: few categories are listed in the main menu itself (else behind "Results"), and
        // a category with one subcategory opens it at once, so only the clicks whose entry is there happen.
        app.setView({ navbarMode: "menu" });
        await pause(100);
        if (!entry(category)) await click("Results", false);
        await click(category, Object.keys(categories).length > 1);
        await click(subcategory, Object.keys(categories[category]).length > 1);
        seen[category + "/" + subcategory] = await figuresShown();
      }
    }
  } catch (err) {
    errors.push(String(err));
  }
  const out = document.createElement("pre");
  out.id = "RESULT_ID";
  out.textContent = JSON.stringify({ seen: seen, errors: errors });
  document.body.appendChild(out);
})();
</script>
""".replace("RESULT_ID", RESULT_ID)


def find_browser(explicit: str | None) -> str | None:
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def with_driver(report: Path, directory: Path) -> Path:
    """A copy of the report with the driver script appended to its body."""
    html = report.read_text(encoding="utf-8")
    if "</body>" not in html:
        raise SystemExit(f"{report}: not an HTML report (no </body>)")
    copy = directory / report.name
    head, _, tail = html.rpartition("</body>")
    copy.write_text(head + DRIVER + "</body>" + tail, encoding="utf-8")
    return copy


def run_browser(browser: str, page: Path) -> dict:
    """Load `page` headless and return what the driver recorded."""
    with tempfile.TemporaryDirectory(prefix="check-report-profile-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",  # CI runs as root in a container, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={VIRTUAL_TIME_MS}",
            "--dump-dom",
            page.as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    match = re.search(rf'<pre id="{RESULT_ID}">(.*?)</pre>', done.stdout, re.DOTALL)
    if match is None:
        tail = " ".join(done.stderr.split()[-40:])
        raise SystemExit(f"{page.name}: the page did not finish its checks in the browser ({tail})")
    return json.loads(match.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def expected_figures(figures: Path) -> dict[str, set[str]]:
    """PNG names per sample directory (the report shows PNGs; PDFs are the same figures for papers)."""
    return {d.name: {p.name for p in d.glob("*.png")} for d in sorted(figures.iterdir()) if d.is_dir()}


def problems(seen: dict[str, dict], expected: dict[str, set[str]]) -> list[str]:
    by_sample = {key.split("/", 1)[1]: figures for key, figures in seen.items()}
    found = []
    for sample, names in expected.items():
        listed = by_sample.get(sample)
        if listed is None:
            found.append(f"sample {sample}: no subcategory in the report")
            continue
        found += [f"sample {sample}: {name} is not listed" for name in sorted(names - set(listed))]
        found += [
            f"sample {sample}: {name} does not load ({listed[name]})"
            for name in sorted(names & set(listed))
            if not listed[name].get("loads")
        ]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the HTML report (snakemake --report X.html)")
    parser.add_argument(
        "--figures",
        "--plots",
        dest="figures",
        type=Path,
        required=True,
        help="the figures directory the report shows (results/figures/<model>)",
    )
    parser.add_argument("--browser", help=f"browser executable (default: the first of {', '.join(BROWSERS)})")
    args = parser.parse_args(argv)
    browser = find_browser(args.browser)
    if browser is None:
        sys.stderr.write("check_report: no Chromium found (apt-get install chromium)\n")
        return 2
    expected = expected_figures(args.figures)
    if not any(expected.values()):
        sys.stderr.write(f"check_report: {args.figures}: no figures to look for\n")
        return 1
    with tempfile.TemporaryDirectory(prefix="check-report-") as tmp:
        record = run_browser(browser, with_driver(args.report, Path(tmp)))
    found = [f"page error: {e}" for e in record["errors"]] + problems(record["seen"], expected)
    for problem in found:
        sys.stderr.write(f"check_report: {args.report}: {problem}\n")
    if not found:
        n = sum(len(v) for v in expected.values())
        sys.stdout.write(
            f"check_report: {args.report}: {n} figures in {len(expected)} groups (samples, training, ...) listed and loaded\n"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
