"""Jet clustering with fastjet and generator-to-reconstructed jet matching, vectorised over events.

Definitions follow upstream MLPF (reference section 9): FastJet `ee_genkt_algorithm` with radius R and
exponent p, jets above a pT threshold; each generator jet takes its nearest reconstructed jet in Delta R and
is matched if that distance is below `match_dr` (not one-to-one; `mlpf/jet_utils.py`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import awkward as ak
import fastjet
import numpy as np

# Algorithms accepted by the `evaluation.jets.algorithm` config key, by fastjet attribute name.
ALGORITHMS: dict[str, str] = {"ee_genkt": "ee_genkt_algorithm"}


@dataclass(frozen=True)
class JetDefinition:
    """Jet definition and matching radius (config section `evaluation.jets`)."""

    algorithm: str = "ee_genkt"
    radius: float = 0.7
    p: float = -1.0
    min_pt: float = 15.0
    match_dr: float = 0.1

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> JetDefinition:
        return cls(**{key: settings[key] for key in ("algorithm", "radius", "p", "min_pt", "match_dr")})


@cache
def _silence_banner() -> None:
    """Show fastjet's banner to nobody: it goes to the C stdout on the first clustering of the process, so one
    tiny clustering runs with file descriptor 1 pointed at /dev/null."""
    sys.stdout.flush()
    stdout = os.dup(1)
    try:
        with Path(os.devnull).open("w") as devnull:
            os.dup2(devnull.fileno(), 1)
            jet_def = fastjet.JetDefinition(fastjet.ee_genkt_algorithm, 0.4, -1.0)
            fastjet.ClusterSequence([fastjet.PseudoJet(1.0, 0.0, 0.0, 1.0)], jet_def).inclusive_jets()
    finally:
        os.dup2(stdout, 1)
        os.close(stdout)


def cluster(particles: ak.Array, definition: JetDefinition) -> ak.Array:
    """Inclusive jets of every event at once: `var * {pt, eta, phi, energy}` sorted by pT (descending).

    `particles` are `var * {px, py, pz, E}` records (GeV). Events without particles give no jets.
    """
    _silence_banner()
    jet_def = fastjet.JetDefinition(
        getattr(fastjet, ALGORITHMS[definition.algorithm]), definition.radius, definition.p
    )
    inputs = ak.zip(
        {name: ak.values_astype(particles[name], np.float64) for name in ("px", "py", "pz", "E")},
        with_name="Momentum4D",
    )
    jets = fastjet.ClusterSequence(inputs, jet_def).inclusive_jets(min_pt=definition.min_pt)
    counts = ak.to_numpy(ak.num(jets, axis=1))
    flat = ak.flatten(jets, axis=1)
    px, py, pz, energy = (
        np.asarray(ak.to_numpy(flat[name]), dtype=np.float64) for name in ("px", "py", "pz", "E")
    )
    pt = np.hypot(px, py)
    eta = np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pz), where=pt > 0))
    phi = np.arctan2(py, px)
    jets = ak.unflatten(ak.zip({"pt": pt, "eta": eta, "phi": phi, "energy": energy}), counts)
    return jets[ak.argsort(jets.pt, axis=1, ascending=False, stable=True)]


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """Delta R = sqrt(Delta eta^2 + Delta phi^2), Delta phi wrapped into [-pi, pi)."""
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.sqrt((eta1 - eta2) ** 2 + dphi**2)


def match(gen: ak.Array, reco: ak.Array, max_dr: float) -> tuple[ak.Array, ak.Array]:
    """For each generator jet, the index of its nearest reconstructed jet (or -1) and that Delta R.

    Returns (`var * int64` index, `var * float64` Delta R; inf where the event has no reconstructed jet).
    A generator jet is matched when Delta R < max_dr; several generator jets may share a reconstructed jet.
    """
    pairs = ak.cartesian({"g": gen, "r": reco}, axis=1, nested=True)
    dr = delta_r(pairs.g.eta, pairs.g.phi, pairs.r.eta, pairs.r.phi)
    nearest = ak.argmin(dr, axis=2, keepdims=True)
    best_dr = ak.fill_none(ak.firsts(dr[nearest], axis=2), np.inf)
    nearest = ak.fill_none(ak.firsts(nearest, axis=2), -1)
    index = ak.where(best_dr < max_dr, nearest, -1)
    return index, best_dr


def matched(reco: ak.Array, index: ak.Array, field: str) -> ak.Array:
    """`field` (pt, energy, ...) of the matched reconstructed jet for each generator jet, NaN where unmatched."""
    safe = ak.where(index >= 0, index, 0)
    padded = ak.pad_none(reco[field], 1, axis=1)
    value = padded[safe]
    return ak.where(index >= 0, ak.fill_none(value, np.nan), np.nan)


def matched_pt(reco: ak.Array, index: ak.Array) -> ak.Array:
    """pT of the matched reconstructed jet for each generator jet, NaN where unmatched."""
    return matched(reco, index, "pt")
