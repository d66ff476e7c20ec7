"""The physics table of a run: jet and MET resolution of MLPF and the baseline PF per evaluated sample.

Reads the metrics JSON files that `mlpf evaluate` wrote (`results/metrics/<model>/<sample>.json`) and prints a
Markdown table of the response IQR/median with bootstrap errors, MLPF and PF side by side, and which is better
(the difference in units of the combined error). Optional tables: the jet resolution in bins of generator jet pT,
and the per-class efficiency and fake rate of the particle guns.

Usage:
    python benchmarks/physics_table.py results/metrics/mlpf [--bins ttbar] [--classes] [--json table.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

# Sample order of the tables: physics samples first, then the particle guns.
SAMPLE_ORDER = (
    "ttbar", "qq", "zh_tautau", "ww_fullhad", "ttbar_pu10", "z_tautau",
    "gun_pi", "gun_e", "gun_mu", "gun_kl", "gun_n", "gun_gamma", "gun_pi0",
)  # fmt: skip
RECOS = ("mlpf", "pf")
QUANTITIES = ("jet_response", "met_response")


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else math.nan


def _value_err(section: dict[str, Any] | None, key: str = "iqr_over_median") -> tuple[float, float]:
    section = section or {}
    return _number(section.get(key)), _number(section.get(f"{key}_err"))


def _fmt(value: float, err: float) -> str:
    if math.isnan(value):
        return ""
    digits = 3 if value < 1 else 2
    return f"{value:.{digits}f} +- {err:.{digits}f}" if not math.isnan(err) else f"{value:.{digits}f}"


def _verdict(mlpf: tuple[float, float], pf: tuple[float, float]) -> str:
    """Which reconstruction resolves better, with the difference in units of the combined error."""
    (a, ea), (b, eb) = mlpf, pf
    if math.isnan(a) or math.isnan(b):
        return ""
    sigma = math.hypot(ea, eb) if not (math.isnan(ea) or math.isnan(eb)) else math.nan
    pull = (b - a) / sigma if sigma and not math.isnan(sigma) else math.nan
    winner = "MLPF" if a < b else "PF" if b < a else "tie"
    return f"{winner} ({abs(pull):.1f} sigma)" if not math.isnan(pull) else winner


def read_metrics(directory: Path) -> dict[str, dict[str, Any]]:
    """Metrics JSON files of one model's directory, by sample, in the table's sample order."""
    found = {}
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "jet_response" in data:  # skip summaries such as replicas.json
            found[data.get("sample", path.stem)] = data
    rank = {name: i for i, name in enumerate(SAMPLE_ORDER)}
    return dict(sorted(found.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def summary_rows(metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for sample, data in metrics.items():
        row: dict[str, Any] = {"sample": sample, "n_events": data.get("n_events")}
        for quantity in QUANTITIES:
            for reco in RECOS:
                row[f"{quantity}_{reco}"] = _value_err(data.get(quantity, {}).get(reco))
        rows.append(row)
    return rows


def summary_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| sample | events | jet MLPF | jet PF | better jets | MET MLPF | MET PF | better MET |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        jet = (r["jet_response_mlpf"], r["jet_response_pf"])
        met = (r["met_response_mlpf"], r["met_response_pf"])
        lines.append(
            f"| {r['sample']} | {r['n_events']} | {_fmt(*jet[0])} | {_fmt(*jet[1])} | {_verdict(*jet)} | "
            f"{_fmt(*met[0])} | {_fmt(*met[1])} | {_verdict(*met)} |"
        )
    return "\n".join(lines)


def binned_table(sample: str, data: dict[str, Any]) -> str:
    """Jet IQR/median in bins of generator jet pT, MLPF vs PF."""
    sections = {reco: data["jet_response"][reco]["binned"] for reco in RECOS}
    edges = sections["mlpf"]["edges"]
    lines = [f"Jet pT resolution in bins of generator jet pT, {sample}:", "",
             "| gen jet pT [GeV] | jets | MLPF | PF | better |", "|---|---|---|---|---|"]  # fmt: skip
    for i in range(len(edges) - 1):
        pair = [
            (
                _number(sections[reco]["iqr_over_median"][i]),
                _number(sections[reco].get("iqr_over_median_err", [math.nan] * len(edges))[i]),
            )
            for reco in RECOS
        ]
        n = sections["mlpf"]["n"][i]
        if math.isnan(pair[0][0]) and math.isnan(pair[1][0]):
            continue
        lines.append(
            f"| {edges[i]:g}-{edges[i + 1]:g} | {n} | {_fmt(*pair[0])} | {_fmt(*pair[1])} | {_verdict(*pair)} |"
        )
    return "\n".join(lines)


def class_table(metrics: dict[str, dict[str, Any]]) -> str:
    """Per-class efficiency and fake rate of the particle guns, MLPF vs PF."""
    lines = [
        "| sample | class | targets | efficiency MLPF | efficiency PF | fake rate MLPF | fake rate PF |",
        "|---|---|---|---|---|---|---|",
    ]
    for sample, data in metrics.items():
        if not sample.startswith("gun_"):
            continue
        per_class = data.get("per_class", {})
        for name, mlpf in per_class.get("mlpf", {}).items():
            pf = per_class.get("pf", {}).get(name, {})
            if (mlpf.get("n_target") or 0) < 20:
                continue
            lines.append(
                f"| {sample} | {name} | {mlpf['n_target']} | {_number(mlpf.get('efficiency')):.3f} | "
                f"{_number(pf.get('efficiency')):.3f} | {_number(mlpf.get('fake_rate')):.3f} | "
                f"{_number(pf.get('fake_rate')):.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("metrics_dir", type=Path, help="results/metrics/<model>")
    parser.add_argument("--bins", nargs="*", default=[], metavar="SAMPLE", help="jet resolution vs pT tables")
    parser.add_argument(
        "--classes", action="store_true", help="per-class efficiency and fake rate of the guns"
    )
    parser.add_argument("--json", type=Path, help="also write the summary rows as JSON")
    args = parser.parse_args(argv)
    metrics = read_metrics(args.metrics_dir)
    if not metrics:
        print(f"{args.metrics_dir}: no metrics JSON files", file=sys.stderr)
        return 1
    rows = summary_rows(metrics)
    print(summary_table(rows))
    for sample in args.bins:
        print()
        print(binned_table(sample, metrics[sample]))
    if args.classes:
        print()
        print(class_table(metrics))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
