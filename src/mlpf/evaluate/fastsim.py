"""`mlpf fastsim-validate`: calibration numbers and figures of the fastsim detector and baseline PF.

Produces, from freshly simulated samples (fixed seeds):
- track pT resolution vs pT (pion gun + ttbar tracks) next to the Delphes CLICdet parametrisation;
- ECAL (photon gun) and HCAL (K0L / neutron gun) cluster energy resolution at fixed energies 2-100 GeV with
  stochastic/constant fits;
- baseline-PF jet energy resolution on qq and ttbar with the evaluation's jets (mlpf.evaluate.jets, the
  `evaluation.jets` defaults: ee_genkt R = 0.7, p = -1, matched to generator jets within Delta R < 0.1) and the
  parse stage's jet truth (mlpf.data.targets.jet_truth), median response and IQR/(1.349 median) plus RMS90 in
  bins of generator jet energy;
- tracks, clusters, calorimeter hits and PFOs per ttbar event, and target-matched tracks / clusters per event
  from the parse stage (same code that reads the real files).
Everything goes to one output directory: summary.json, summary.md and PNG figures. It runs the simulation, the
parse stage and the evaluation's jets, so it lives above all three.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import awkward as ak
import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np

from mlpf.atomic import atomic_directory
from mlpf.config import validate_section
from mlpf.data.parse import parse_file
from mlpf.data.targets import TRUTH_MAX_ABS_ETA, jet_truth
from mlpf.evaluate import jets
from mlpf.sim import constants as C
from mlpf.sim.calorimeter import resolution_em, resolution_had
from mlpf.sim.pipeline import SimResult, run_shard, simulate, visible_energy
from mlpf.sim.seeds import job_seed
from mlpf.sim.tracking import _concat, pt_resolution

log = logging.getLogger(__name__)
JET_E_BINS = np.array([20.0, 50.0, 80.0, 120.0, 200.0])
BARREL_MAX_ABS_COS_THETA = 0.7  # barrel jets only, as the Pandora CLICdet numbers


def rms90(x: np.ndarray) -> float:
    """RMS of the narrowest window holding 90% of the entries (the Pandora/CLIC JER convention)."""
    x = np.sort(np.asarray(x))
    n = len(x)
    if n < 10:
        return float("nan")
    k = int(np.ceil(0.9 * n))
    widths = x[k - 1 :] - x[: n - k + 1]
    i = int(np.argmin(widths))
    return float(np.std(x[i : i + k]))


def _robust(ratio: np.ndarray) -> dict[str, float]:
    q25, q50, q75 = np.percentile(ratio, [25, 50, 75]) if len(ratio) else (np.nan,) * 3
    return {
        "n": len(ratio),
        "median": float(q50),
        "iqr_sigma_over_median": float((q75 - q25) / 1.349 / q50) if len(ratio) else float("nan"),
        "rms90_over_mean90": float(rms90(ratio) / np.mean(ratio)) if len(ratio) >= 10 else float("nan"),
    }


# --- tracking ---------------------------------------------------------------------------------------------------
def track_resolution(result: SimResult) -> dict[str, Any]:
    """sigma(pT)/pT of tracks with a single truth particle, in pT bins, central |eta| < 0.88."""
    t, tr = result.truth, result.tracks
    pure = tr.link_weight[:, 0] == 1.0
    mc = tr.link_mc[pure, 0]
    pt_true = np.hypot(t.px[mc], t.py[mc])
    eta = np.arcsinh(t.pz[mc] / pt_true)
    pt_meas = C.C_LIGHT_GEV * C.B_FIELD_T / np.abs(tr.params["omega"][pure])
    central = np.abs(eta) < 0.88
    edges = np.array([1, 2, 5, 10, 20, 50, 100, 200], dtype=float)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        sel = central & (pt_true >= lo) & (pt_true < hi)
        if sel.sum() < 20:
            continue
        r = pt_meas[sel] / pt_true[sel] - 1
        centre = float(np.median(pt_true[sel]))
        rows.append(
            {
                "pt": centre,
                "n": int(sel.sum()),
                "sigma_rel": float(np.std(r)),
                "delphes": float(pt_resolution(np.array([211]), np.array([0.5]), np.array([centre]))[0]),
            }
        )
    return {"bins": rows}


# --- calorimeter --------------------------------------------------------------------------------------------------
def _fit_resolution(
    e: np.ndarray, sigma_rel: np.ndarray, noise: float = 0.0, n: np.ndarray | None = None
) -> dict[str, float]:
    """Weighted least-squares fit of (sigma/E)^2 = noise^2/E^2 + S^2/E + C^2 with the noise term fixed.

    Each bin is weighted by its statistical precision: var(sigma^2) ~ 2 sigma^4 / n.
    """
    w = np.sqrt(np.ones_like(e) if n is None else np.asarray(n, dtype=float)) / np.maximum(
        sigma_rel**2, 1e-12
    )
    a = np.column_stack([1.0 / e, np.ones_like(e)]) * w[:, None]
    coef, *_ = np.linalg.lstsq(a, (sigma_rel**2 - (noise / e) ** 2) * w, rcond=None)
    return {
        "stochastic": float(np.sqrt(max(coef[0], 0))),
        "constant": float(np.sqrt(max(coef[1], 0))),
        "noise_fixed": noise,
    }


SCAN_ENERGIES = (2.0, 5.0, 10.0, 20.0, 50.0, 100.0)  # GeV, mono-energetic guns for the calorimeter scans


def cluster_resolution(results: dict[float, SimResult], kind: str) -> dict[str, Any]:
    """Summed cluster energy over the visible energy of mono-energetic single particles, per gun energy.

    sigma is IQR / 1.349 of the ratio (barrel, |eta| < 0.78); the fit has the model's noise term fixed for hadrons
    so that the stochastic and constant terms compare with the Delphes CLICdet ones.
    """
    rows = []
    ref = resolution_em if kind == "ecal" else resolution_had
    for energy, result in sorted(results.items()):
        t, cl = result.truth, result.clusters
        n = len(t.counts)
        first = t.offsets[:-1]  # the gun particle is the first stored particle
        e_true = visible_energy(t.pdg[first], t.energy[first])
        eta = np.abs(np.arcsinh(t.pz[first] / np.maximum(np.hypot(t.px[first], t.py[first]), 1e-9)))
        e_reco = np.bincount(cl.evt, weights=cl.energy, minlength=n)
        sel = (eta < 0.78) & (e_reco > 0)
        r = e_reco[sel] / e_true[sel]
        q25, q50, q75 = np.percentile(r, [25, 50, 75])
        centre = float(np.median(e_true[sel]))
        rows.append(
            {
                "gun_energy": energy,
                "energy": centre,
                "n": int(sel.sum()),
                "response": float(q50),
                "sigma_rel": float((q75 - q25) / 1.349 / q50),
                "reference": float(ref(np.array([centre]), np.array([0.3]))[0] / centre),
            }
        )
    noise = C.HAD_NOISE if kind == "hcal" else 0.0
    fit = _fit_resolution(
        np.array([r["energy"] for r in rows]), np.array([r["sigma_rel"] for r in rows]), noise
    )
    return {"bins": rows, "fit": fit}


def _scan(sample: str, n_events: int, seed: int, settings: dict[str, Any]) -> dict[float, SimResult]:
    out = {}
    for energy in SCAN_ENERGIES:
        gun = {**settings, "gun_energy_min": energy * 0.999, "gun_energy_max": energy * 1.001}
        out[energy] = simulate(
            sample, n_events, job_seed(seed, sample, f"scan{energy}"), gun, show_progress=False
        )
    return out


# --- jets ----------------------------------------------------------------------------------------------------------
def jet_definition() -> jets.JetDefinition:
    """The evaluation's jets (`evaluation.jets` defaults) without their pT threshold: the resolution is binned in
    jet energy from 20 GeV, and every barrel jet of those bins counts."""
    return replace(jets.JetDefinition.from_settings(validate_section("evaluation", {})["jets"]), min_pt=0.0)


def _particles(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray, evt: np.ndarray, n_events: int
) -> ak.Array:
    """Flat particles sorted by event -> per-event `{px, py, pz, E}` records, the input of jets.cluster."""
    counts = np.bincount(evt, minlength=n_events)
    return ak.zip(
        {k: ak.unflatten(v, counts) for k, v in (("px", px), ("py", py), ("pz", pz), ("E", energy))}
    )


def _generator_particles(result: SimResult) -> ak.Array:
    """The generator particles jets are scored against, chosen as the parse stage chooses them."""
    t = result.truth
    pt = np.hypot(t.px, t.py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(t.pz / pt)  # +-inf along the beam: outside any acceptance
    keep = jet_truth(t.gen_status, t.pdg, eta, TRUTH_MAX_ABS_ETA)
    return _particles(t.px[keep], t.py[keep], t.pz[keep], t.energy[keep], t.evt[keep], len(t.counts))


def jet_response(result: SimResult) -> dict[str, Any]:
    """Baseline-PF jets matched to generator jets; response E_pf / E_gen and resolution per E_gen bin."""
    pf, n = result.pfos, len(result.truth.counts)
    definition = jet_definition()
    gen = jets.cluster(_generator_particles(result), definition)
    reco = jets.cluster(
        _particles(pf.momentum[:, 0], pf.momentum[:, 1], pf.momentum[:, 2], pf.energy, pf.evt, n), definition
    )
    index, _ = jets.match(gen, reco, definition.match_dr)
    barrel = np.abs(np.tanh(gen.eta)) < BARREL_MAX_ABS_COS_THETA  # |cos theta| = |tanh eta|
    ok = (index >= 0) & barrel
    eg = ak.to_numpy(ak.flatten(gen.energy[ok]))
    er = ak.to_numpy(ak.flatten(jets.matched(reco, index, "energy")[ok]))
    n_gen = int(ak.sum(barrel))
    rows = []
    for lo, hi in itertools.pairwise(JET_E_BINS):
        sel = (eg >= lo) & (eg < hi)
        if sel.sum() < 10:
            continue
        rows.append({"e_lo": float(lo), "e_hi": float(hi), **_robust(er[sel] / eg[sel])})
    sel = (eg >= 50) & (eg < 200)
    return {"bins": rows, "e50_200": _robust(er[sel] / eg[sel]), "matched_fraction": len(eg) / max(n_gen, 1)}


# --- multiplicities -------------------------------------------------------------------------------------------------
def multiplicities(result: SimResult) -> dict[str, float]:
    n = len(result.truth.counts)
    return {
        "tracks": len(result.tracks.evt) / n,
        "clusters": len(result.clusters.evt) / n,
        "calo_hits": float(np.sum(result.hits.collection < 5)) / n,
        "pfos": len(result.pfos.evt) / n,
        "mc_particles": len(result.truth.evt) / n,
        "final_state": float(result.truth.final.sum()) / n,
    }


def target_multiplicities(path: Path) -> dict[str, float]:
    """Target-matched tracks and clusters per event, from the parse stage (the code that reads real files)."""
    stats = parse_file(path, path.with_suffix(".parquet"), validate_section("dataset", {}))["stats"]
    n = stats["events_read"]
    return {
        "target_tracks": stats["matched_to_track"] / n,
        "target_clusters": stats["matched_to_cluster"] / n,
    }


# --- figures ----------------------------------------------------------------------------------------------------------
def _figures(out: Path, summary: dict[str, Any]) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    rows = summary["track_pt_resolution"]["bins"]
    ax.plot([r["pt"] for r in rows], [r["sigma_rel"] for r in rows], "o", label="fastsim tracks (|eta|<0.88)")
    ax.plot([r["pt"] for r in rows], [r["delphes"] for r in rows], "-", label="Delphes CLICdet")
    ax.set(xscale="log", yscale="log", xlabel="pT [GeV]", ylabel="sigma(pT)/pT")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "track_pt_resolution.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    for key, label in (
        ("ecal_photon", "photons (ECAL)"),
        ("hcal_kl", "K0L (HCAL)"),
        ("hcal_neutron", "neutrons"),
    ):
        rows = summary[key]["bins"]
        ax.plot([r["energy"] for r in rows], [r["sigma_rel"] for r in rows], "o", label=f"{label} fastsim")
        ax.plot([r["energy"] for r in rows], [r["reference"] for r in rows], "--", label=f"{label} CLICdet")
    ax.set(xscale="log", xlabel="E [GeV]", ylabel="sigma(E)/E (IQR)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "cluster_energy_resolution.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    for key in ("jets_qq", "jets_ttbar"):
        rows = summary[key]["bins"]
        x = [(r["e_lo"] + r["e_hi"]) / 2 for r in rows]
        ax.plot(x, [r["rms90_over_mean90"] for r in rows], "o-", label=f"{key[5:]} RMS90")
        ax.plot(x, [r["iqr_sigma_over_median"] for r in rows], "s--", label=f"{key[5:]} IQR/1.349")
    ax.axhspan(0.035, 0.06, color="grey", alpha=0.2, label="Pandora CLICdet 3.5-6%")
    ax.set(xlabel="generator jet E [GeV]", ylabel="baseline PF jet energy resolution")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "pf_jet_energy_resolution.png", dpi=120)
    plt.close(fig)


def _markdown(s: dict[str, Any]) -> str:
    lines = ["| quantity | fastsim | reference |", "|---|---|---|"]
    m = s["ttbar_multiplicities"]
    tm = s.get("ttbar_targets") or {}
    lines.append(f"| tracks / ttbar event | {m['tracks']:.1f} | ~48 target-matched (upstream) |")
    lines.append(f"| clusters / ttbar event | {m['clusters']:.1f} | |")
    if tm:
        lines.append(f"| target-matched tracks / ttbar event | {tm['target_tracks']:.1f} | ~48 |")
        lines.append(f"| target-matched clusters / ttbar event | {tm['target_clusters']:.1f} | ~49 |")
    lines.append(f"| calorimeter hits / ttbar event | {m['calo_hits']:.0f} | 8484 (full sim, finer cells) |")
    lines.append(f"| PFOs / ttbar event | {m['pfos']:.1f} | |")
    for key, ref in (
        ("ecal_photon", "15.6%/sqrt(E) + 1%"),
        ("hcal_kl", "30.8-34.1%/sqrt(E) + ~5% (Delphes)"),
        ("hcal_neutron", "30.8-34.1%/sqrt(E) + ~5% (Delphes)"),
    ):
        f = s[key]["fit"]
        if f:
            noise = f" + {f['noise_fixed']:.1f} GeV/E (fixed)" if f["noise_fixed"] else ""
            lines.append(
                f"| {key} fit | {100 * f['stochastic']:.1f}%/sqrt(E) + {100 * f['constant']:.1f}%{noise} | {ref} |"
            )
    for key in ("jets_qq", "jets_ttbar"):
        j = s[key]["e50_200"]
        lines.append(
            f"| PF JER {key[5:]} 50-200 GeV (RMS90 / IQR) | {100 * j['rms90_over_mean90']:.1f}% / "
            f"{100 * j['iqr_sigma_over_median']:.1f}% (median response {j['median']:.3f}) | 3.5-6% (Pandora) |"
        )
    for r in s["track_pt_resolution"]["bins"]:
        lines.append(
            f"| track sigma(pT)/pT at {r['pt']:.0f} GeV | {100 * r['sigma_rel']:.2f}% | "
            f"{100 * r['delphes']:.2f}% (Delphes) |"
        )
    lines.append(
        f"| throughput ttbar (gen + detector + write) | {s['throughput_ttbar_ev_per_s']:.0f} ev/s | |"
    )
    return "\n".join(lines) + "\n"


def run_validation(output: str | Path, settings: dict[str, Any], n_events: int = 400, seed: int = 1) -> dict:
    """Simulate the calibration samples and write summary.json, summary.md and figures into `output`."""
    settings = dict(settings)
    summary: dict[str, Any] = {"n_events": n_events, "seed": seed}
    with atomic_directory(output) as out:
        t0 = time.perf_counter()
        path = out / "ttbar.root"
        run_shard(
            "ttbar", "validate", seed, {**settings, "events_per_shard": n_events}, path, show_progress=False
        )
        summary["throughput_ttbar_ev_per_s"] = n_events / (time.perf_counter() - t0)
        ttbar = simulate(
            "ttbar", n_events, job_seed(seed, "ttbar", "validate"), settings, show_progress=False
        )
        summary["ttbar_multiplicities"] = multiplicities(ttbar)
        summary["ttbar_targets"] = target_multiplicities(path)
        path.unlink()
        path.with_suffix(".parquet").unlink(missing_ok=True)
        qq = simulate("qq", n_events, job_seed(seed, "qq", "validate"), settings, show_progress=False)
        pions = simulate(
            "gun_pi", n_events, job_seed(seed, "gun_pi", "validate"), settings, show_progress=False
        )
        summary["track_pt_resolution"] = track_resolution(_merge_for_tracks(pions, ttbar))
        for key, sample, kind in (
            ("ecal_photon", "gun_gamma", "ecal"),
            ("hcal_kl", "gun_kl", "hcal"),
            ("hcal_neutron", "gun_n", "hcal"),
        ):
            # single particles are cheap: 2 x n_events per energy point
            summary[key] = cluster_resolution(_scan(sample, 2 * n_events, seed, settings), kind)
        summary["jets_qq"] = jet_response(qq)
        summary["jets_ttbar"] = jet_response(ttbar)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
        (out / "summary.md").write_text(_markdown(summary), encoding="utf-8")
        _figures(out, summary)
    log.info("fastsim validation written to %s", output)
    return summary


def _merge_for_tracks(a: SimResult, b: SimResult) -> SimResult:
    """Tracks of two samples with truth indices into a concatenated truth (only the arrays tracks need)."""
    n_a = len(a.truth.evt)
    shifted = b.tracks.__class__(**{f: getattr(b.tracks, f) for f in b.tracks.__dataclass_fields__})
    shifted.link_mc = np.where(b.tracks.link_mc >= 0, b.tracks.link_mc + n_a, -1)
    tracks = _concat(a.tracks, shifted)

    class _T:  # minimal truth view
        px = np.concatenate([a.truth.px, b.truth.px])
        py = np.concatenate([a.truth.py, b.truth.py])
        pz = np.concatenate([a.truth.pz, b.truth.pz])

    return SimResult(_T(), tracks, None, None, None, None)  # type: ignore[arg-type]
