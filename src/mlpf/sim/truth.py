"""The stored MC truth: which Pythia entries become MCParticles, their status codes, ancestry and beam effects.

Stored: beams, the hard process and everything from hadronisation on (primary hadrons, decayed hadrons
and taus, all final-state particles), i.e. what the Key4HEP chain keeps for the target definition, without the
hundreds of parton-shower entries. A stored particle's parent is its nearest stored ancestor along Pythia's
first-mother chain; daughters are the inverse relation.

generatorStatus follows the HepMC codes that the Key4HEP chain stores for Pythia (Pythia8 `statusHepMC`):
1 final state, 2 decayed, 4 beam, otherwise |Pythia status| (e.g. 22 for the hard process).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pythia8mc

from mlpf.sim import constants as C
from mlpf.sim.generate import GenRecord, _quiet_stdout

# EDM4hep MCParticle simulatorStatus bits (edm4hep.yaml, MCParticle::BIT*).
BIT_OVERLAY = 23
BIT_STOPPED = 24
BIT_LEFT_DETECTOR = 25
BIT_DECAYED_IN_CALORIMETER = 26
BIT_DECAYED_IN_TRACKER = 27


@dataclass
class Truth:
    """Stored MC particles of all events, flat, with per-event counts. Indices are per-event local."""

    counts: np.ndarray
    evt: np.ndarray
    pdg: np.ndarray
    gen_status: np.ndarray
    sim_status: np.ndarray
    charge: np.ndarray
    mass: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray
    time: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    ez: np.ndarray
    parent: np.ndarray  # local index of the parent, -1 for none
    overlay: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)])

    @property
    def final(self) -> np.ndarray:
        return self.gen_status == 1


def _charges(pdg: np.ndarray) -> np.ndarray:
    """Electric charge per PDG code, from Pythia's particle table (looked up once per distinct code)."""
    with _quiet_stdout():
        table = pythia8mc.Pythia("", False).particleData
    unique, inverse = np.unique(pdg, return_inverse=True)
    values = np.array([table.charge(int(p)) for p in unique], dtype=np.float32)
    return values[inverse]


def build_truth(
    gen: GenRecord,
    rng: np.random.Generator,
    vertex_sigma_mm: tuple[float, float, float],
    crossing_angle: float,
) -> Truth:
    """Select, relabel and transform the generator record into the stored MC truth."""
    a = gen.arrays
    n_evt = gen.n_events
    off = np.concatenate([[0], np.cumsum(gen.counts)])
    evt = np.repeat(np.arange(n_evt), gen.counts)
    local = np.arange(len(evt)) - off[evt]
    status = a["status"]
    abs_status = np.abs(status)
    first_daughter = np.where(a["daughter1"] > 0, a["daughter1"] + off[evt], -1)
    has_daughter = first_daughter >= 0
    daughter_status = np.where(has_daughter, np.abs(status[np.maximum(first_daughter, 0)]), 0)
    decayed = (status < 0) & has_daughter & (daughter_status >= 91) & (daughter_status <= 99)

    keep = (local > 0) & (
        (status > 0)
        | decayed
        | (abs_status >= 81)
        | ((abs_status >= 11) & (abs_status <= 29) & (abs_status != 11))
    )
    # Nearest kept ancestor along the first-mother chain (pointer jumping over dropped entries).
    mother = np.where(a["mother1"] > 0, a["mother1"] + off[evt], -1)
    anc = mother.copy()
    for _ in range(10000):
        pending = (anc >= 0) & ~keep[np.maximum(anc, 0)]
        if not pending.any():
            break
        anc[pending] = mother[anc[pending]]
    new_index = np.cumsum(keep) - 1  # global index among kept entries
    kept_idx = np.flatnonzero(keep)
    kept_evt = evt[kept_idx]
    counts = np.bincount(kept_evt, minlength=n_evt).astype(np.int64)
    kept_off = np.concatenate([[0], np.cumsum(counts)])
    anc_k = anc[kept_idx]
    parent = np.where(anc_k >= 0, new_index[np.maximum(anc_k, 0)] - kept_off[kept_evt], -1)

    gen_status = np.where(status > 0, 1, np.where(decayed, 2, np.where(status == -12, 4, abs_status)))[
        kept_idx
    ]

    # Beam effects: per-event vertex offset, then the crossing-angle boost along x (ddsim crossingAngleBoost,
    # beta = tan(alpha)) applied to momenta and production 4-positions.
    sig = np.asarray(vertex_sigma_mm, dtype=np.float64)
    shift = rng.normal(size=(n_evt, 3)) * sig
    shift_t = rng.normal(size=n_evt) * (sig[2] / C.C_MM_PER_NS)
    px, py, pz, e = (a[k][kept_idx] for k in ("px", "py", "pz", "e"))
    vx = a["vx"][kept_idx] + shift[kept_evt, 0]
    vy = a["vy"][kept_idx] + shift[kept_evt, 1]
    vz = a["vz"][kept_idx] + shift[kept_evt, 2]
    vt = a["vt"][kept_idx] + shift_t[kept_evt] * C.C_MM_PER_NS  # mm/c
    beta = np.tan(crossing_angle)
    gamma = 1.0 / np.sqrt(1.0 - beta**2)
    px, e = gamma * (px + beta * e), gamma * (e + beta * px)
    vx, vt = gamma * (vx + beta * vt), gamma * (vt + beta * vx)

    # Endpoint: the production vertex of the first stored daughter (decayed particles), else the vertex.
    order = np.lexsort((np.arange(len(parent)), parent + kept_off[kept_evt]))
    has_parent = parent[order] >= 0
    child = order[has_parent]
    parent_global = parent[child] + kept_off[kept_evt[child]]
    first_child = np.full(len(parent), -1)
    # first child per parent: reverse assignment keeps the smallest child index
    first_child[parent_global[::-1]] = child[::-1]
    ex = np.where(first_child >= 0, vx[np.maximum(first_child, 0)], vx)
    ey = np.where(first_child >= 0, vy[np.maximum(first_child, 0)], vy)
    ez = np.where(first_child >= 0, vz[np.maximum(first_child, 0)], vz)

    pdg = a["pdg"][kept_idx]
    overlay = a["overlay"][kept_idx]
    sim_status = np.zeros(len(pdg), dtype=np.int32)
    sim_status |= overlay.astype(np.int32) << BIT_OVERLAY
    decay_r = np.hypot(ex, ey)
    in_tracker = (
        (gen_status == 2)
        & (decay_r < C.ECAL_BARREL_RMIN)
        & (np.abs(ez) < C.ECAL_ENDCAP_ZMIN)
        & ((decay_r > 1.0) | (np.abs(ez) > 1.0))
    )
    sim_status |= in_tracker.astype(np.int32) << BIT_DECAYED_IN_TRACKER
    return Truth(
        counts=counts,
        evt=kept_evt,
        pdg=pdg,
        gen_status=gen_status.astype(np.int32),
        sim_status=sim_status,
        charge=_charges(pdg),
        mass=a["m"][kept_idx],
        px=px,
        py=py,
        pz=pz,
        energy=e,
        vx=vx,
        vy=vy,
        vz=vz,
        time=(vt / C.C_MM_PER_NS).astype(np.float32),
        ex=ex,
        ey=ey,
        ez=ez,
        parent=parent.astype(np.int64),
        overlay=overlay,
    )
