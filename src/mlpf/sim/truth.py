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
    sel = _select(gen)
    tree = _kept_tree(gen, sel)
    kept_idx, kept_evt = tree.kept_idx, tree.kept_evt
    gen_status = sel.gen_status[kept_idx]
    px, py, pz, e, vx, vy, vz, vt = _beam_effects(
        gen, kept_idx, kept_evt, rng, vertex_sigma_mm, crossing_angle
    )
    ex, ey, ez = _endpoints(tree, vx, vy, vz)
    pdg = a["pdg"][kept_idx]
    overlay = a["overlay"][kept_idx]
    return Truth(
        counts=tree.counts,
        evt=kept_evt,
        pdg=pdg,
        gen_status=gen_status.astype(np.int32),
        sim_status=_sim_status(gen_status, overlay, ex, ey, ez),
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
        parent=tree.parent.astype(np.int64),
        overlay=overlay,
    )


@dataclass
class _Selection:
    """Which generator entries are stored, and their status as stored (over the whole record)."""

    evt: np.ndarray  # event of every entry
    offsets: np.ndarray  # first entry of every event
    keep: np.ndarray
    gen_status: np.ndarray


def _select(gen: GenRecord) -> _Selection:
    """Keep final-state particles, decayed hadrons and taus and the hard process; relabel the status as
    the Key4HEP chain stores it (1 final state, 2 decayed, 4 beam, else |Pythia status|)."""
    a = gen.arrays
    off = np.concatenate([[0], np.cumsum(gen.counts)])
    evt = np.repeat(np.arange(gen.n_events), gen.counts)
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
    gen_status = np.where(status > 0, 1, np.where(decayed, 2, np.where(status == -12, 4, abs_status)))
    return _Selection(evt, off, keep, gen_status)


@dataclass
class _KeptTree:
    """The stored entries and their parents (index within the event among stored entries, -1 = none)."""

    kept_idx: np.ndarray
    kept_evt: np.ndarray
    counts: np.ndarray
    kept_off: np.ndarray
    parent: np.ndarray


def _kept_tree(gen: GenRecord, sel: _Selection) -> _KeptTree:
    """Each stored entry's parent: its nearest stored ancestor along the first-mother chain."""
    mother = np.where(gen.arrays["mother1"] > 0, gen.arrays["mother1"] + sel.offsets[sel.evt], -1)
    anc = mother.copy()
    for _ in range(10000):  # pointer jumping over dropped entries
        pending = (anc >= 0) & ~sel.keep[np.maximum(anc, 0)]
        if not pending.any():
            break
        anc[pending] = mother[anc[pending]]
    new_index = np.cumsum(sel.keep) - 1  # global index among kept entries
    kept_idx = np.flatnonzero(sel.keep)
    kept_evt = sel.evt[kept_idx]
    counts = np.bincount(kept_evt, minlength=gen.n_events).astype(np.int64)
    kept_off = np.concatenate([[0], np.cumsum(counts)])
    anc_k = anc[kept_idx]
    parent = np.where(anc_k >= 0, new_index[np.maximum(anc_k, 0)] - kept_off[kept_evt], -1)
    return _KeptTree(kept_idx, kept_evt, counts, kept_off, parent)


def _beam_effects(
    gen: GenRecord,
    kept_idx: np.ndarray,
    kept_evt: np.ndarray,
    rng: np.random.Generator,
    vertex_sigma_mm: tuple[float, float, float],
    crossing_angle: float,
) -> tuple[np.ndarray, ...]:
    """Momenta and production 4-positions (px, py, pz, E, vx, vy, vz, vt in mm/c) after a per-event vertex
    offset and the crossing-angle boost along x (ddsim crossingAngleBoost, beta = tan(alpha))."""
    a = gen.arrays
    sig = np.asarray(vertex_sigma_mm, dtype=np.float64)
    shift = rng.normal(size=(gen.n_events, 3)) * sig
    shift_t = rng.normal(size=gen.n_events) * (sig[2] / C.C_MM_PER_NS)
    px, py, pz, e = (a[k][kept_idx] for k in ("px", "py", "pz", "e"))
    vx = a["vx"][kept_idx] + shift[kept_evt, 0]
    vy = a["vy"][kept_idx] + shift[kept_evt, 1]
    vz = a["vz"][kept_idx] + shift[kept_evt, 2]
    vt = a["vt"][kept_idx] + shift_t[kept_evt] * C.C_MM_PER_NS  # mm/c
    beta = np.tan(crossing_angle)
    gamma = 1.0 / np.sqrt(1.0 - beta**2)
    px, e = gamma * (px + beta * e), gamma * (e + beta * px)
    vx, vt = gamma * (vx + beta * vt), gamma * (vt + beta * vx)
    return px, py, pz, e, vx, vy, vz, vt


def _endpoints(
    tree: _KeptTree, vx: np.ndarray, vy: np.ndarray, vz: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Endpoint: the production vertex of the first stored daughter (decayed particles), else the vertex."""
    parent, kept_off, kept_evt = tree.parent, tree.kept_off, tree.kept_evt
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
    return ex, ey, ez


def _sim_status(
    gen_status: np.ndarray, overlay: np.ndarray, ex: np.ndarray, ey: np.ndarray, ez: np.ndarray
) -> np.ndarray:
    """Simulator status bits: overlay (pile-up) particles, and decays inside the tracker volume."""
    sim_status = np.zeros(len(gen_status), dtype=np.int32)
    sim_status |= overlay.astype(np.int32) << BIT_OVERLAY
    decay_r = np.hypot(ex, ey)
    in_tracker = (
        (gen_status == 2)
        & (decay_r < C.ECAL_BARREL_RMIN)
        & (np.abs(ez) < C.ECAL_ENDCAP_ZMIN)
        & ((decay_r > 1.0) | (np.abs(ez) > 1.0))
    )
    return sim_status | (in_tracker.astype(np.int32) << BIT_DECAYED_IN_TRACKER)
