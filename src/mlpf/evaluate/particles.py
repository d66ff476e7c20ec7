"""Particle collections as Cartesian four-vectors, vectorised over all events.

Reconstructed particles (MLPF, PF, target) come as rows `class, charge, pt, eta, sin_phi, cos_phi, energy`
per element; only rows with class != 0 are particles (upstream MLPF convention, reference section 9).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from mlpf.data.targets import N_PARTICLE_COLUMNS, Y_CLASS, Y_COS_PHI, Y_ENERGY, Y_ETA, Y_PT, Y_SIN_PHI


def rows_matrix(rows: ak.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flatten jagged events of fixed-width rows into (n_rows, width) float64 and the per-event counts."""
    counts = ak.to_numpy(ak.num(rows, axis=1))
    flat = ak.flatten(rows, axis=1)
    if len(flat) == 0:
        return np.zeros((0, width)), counts
    matrix = ak.to_numpy(ak.to_regular(flat, axis=1)).astype(np.float64)
    return matrix.reshape(len(flat), width), counts


def _cartesian(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, energy: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "px": pt * np.cos(phi),
        "py": pt * np.sin(phi),
        "pz": pt * np.sinh(eta),
        "E": energy,
    }


def reco_particles(rows: ak.Array) -> ak.Array:
    """Particles (class != 0) of a `var * 7` collection as `var * {px, py, pz, E}` records (GeV)."""
    matrix, counts = rows_matrix(rows, N_PARTICLE_COLUMNS)
    keep = matrix[:, Y_CLASS] != 0
    event_index = np.repeat(np.arange(len(counts)), counts)
    new_counts = np.bincount(event_index[keep], minlength=len(counts))
    m = matrix[keep]
    phi = np.arctan2(m[:, Y_SIN_PHI], m[:, Y_COS_PHI])
    fields = _cartesian(m[:, Y_PT], m[:, Y_ETA], phi, m[:, Y_ENERGY])
    return ak.unflatten(ak.zip(fields), new_counts)


def truth_particles(truth: ak.Array) -> ak.Array:
    """Generator particles (`truth` field: pt, eta, phi, energy) as `var * {px, py, pz, E}` records (GeV)."""
    counts = ak.to_numpy(ak.num(truth, axis=1))
    flat = ak.flatten(truth, axis=1)
    columns = [
        np.asarray(ak.to_numpy(flat[name]), dtype=np.float64) for name in ("pt", "eta", "phi", "energy")
    ]
    return ak.unflatten(ak.zip(_cartesian(*columns)), counts)


def missing_pt(particles: ak.Array) -> np.ndarray:
    """MET per event: |sum of particle pT vectors| (GeV; upstream definition, reference section 9)."""
    px = ak.to_numpy(ak.sum(particles.px, axis=1))
    py = ak.to_numpy(ak.sum(particles.py, axis=1))
    return np.hypot(px, py)


def total_momentum(particles: ak.Array) -> np.ndarray:
    """Magnitude of the vector sum of all particle 3-momenta per event (GeV)."""
    px = ak.to_numpy(ak.sum(particles.px, axis=1))
    py = ak.to_numpy(ak.sum(particles.py, axis=1))
    pz = ak.to_numpy(ak.sum(particles.pz, axis=1))
    return np.sqrt(px**2 + py**2 + pz**2)
