"""Event generation with Pythia8 (`pythia8mc`): physics processes, particle guns and pile-up overlay.

The output is the full Pythia event record of every event as flat numpy arrays plus per-event counts
(`GenRecord`); `mlpf.sim.truth` turns it into the stored MCParticles table.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import pythia8mc

from mlpf.errors import ConfigError
from mlpf.sim import constants as C

# Pythia cards per sample, after the MLPF CLIC production cards (jpata/particleflow `mlpf/data/clic/`,
# HEP-KBFI/key4hep-sim `clic/pythia/`), all e+e- with ISR and FSR on (Pythia defaults).
PROCESS_CARDS: dict[str, list[str]] = {
    "ttbar": ["Top:ffbar2ttbar(s:gmZ) = on"],
    "qq": ["WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 1 2 3 4 5"],
    "zh_tautau": ["HiggsSM:ffbar2HZ = on", "25:m0 = 125.0", "25:onMode = off", "25:onIfAny = 15"],
    "ww_fullhad": ["WeakDoubleBoson:ffbar2WW = on", "24:onMode = off", "24:onIfAny = 1 2 3 4 5 6"],
    "z_tautau": ["WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 15"],
    "ttbar_pu10": ["Top:ffbar2ttbar(s:gmZ) = on"],
}
# gamma gamma -> hadrons pile-up source (upstream p8_ee_gg_ecm380: photon collisions from the lepton beams).
PILEUP_CARD = [
    "PDF:lepton2gamma = on",
    "Photon:ProcessType = 4",
    "PhotonCollision:gmgm2qqbar = on",
    "PhotonCollision:gmgm2ccbar = on",
    "PhotonCollision:gmgm2bbbar = on",
    "PhaseSpace:pTHatMin = 2.0",
]
PILEUP_MEAN = 10.0  # Poisson mean of gamma gamma -> hadrons interactions (MLPF PU10 sample)
# Pythia status codes used to take the beams out of an overlaid interaction: -12 marks an incoming beam, and a
# final-state particle whose mother is a beam is the beam remnant (status 63; with PDF:lepton2gamma the
# scattered e+ and e-, ~165 GeV each at |eta| > 3). The CLIC overlay adds the hadronic products of the
# photon-photon interactions to the signal (CLIC CDR vol. 2, arXiv:1202.5940, section 12.2: pre-generated
# gamma gamma -> hadrons events overlaid per bunch crossing), not the beam particles, which leave along the beam
# pipe. Entries set to REMOVED_STATUS are dropped from the stored MC truth and never reach the detector.
PYTHIA_BEAM_STATUS = -12
REMOVED_STATUS = 0
PILEUP_SAMPLES = {"ttbar_pu10"}
# CLIC bunch spacing 0.5 ns (CDR); the MLPF PU10 sample shifts interaction i by i x 0.5 (run_sim_pu.sh, main19.cc)
PILEUP_BUNCH_SPACING_NS = 0.5
# Particle guns: PDG code (a random sign is drawn for charged ones), E uniform in [gun_emin, gun_emax].
GUNS: dict[str, int] = {
    "gun_e": 11,
    "gun_mu": 13,
    "gun_pi": 211,
    "gun_pi0": 111,
    "gun_kl": 130,
    "gun_n": 2112,
    "gun_gamma": 22,
}
SAMPLES = tuple(PROCESS_CARDS) + tuple(GUNS)
GUN_MAX_ABS_COS_THETA = 0.98  # guns cover the tracker acceptance (|eta| < 2.3)

FIELDS = (
    "pdg",
    "status",
    "mother1",
    "daughter1",
    "px",
    "py",
    "pz",
    "e",
    "m",
    "vx",
    "vy",
    "vz",
    "vt",
    "overlay",
)


@dataclass
class GenRecord:
    """The generator record of a batch of events: flat arrays (one entry per Pythia particle) and counts."""

    counts: np.ndarray  # particles per event (Pythia entries including the system entry 0)
    arrays: dict[str, np.ndarray]  # FIELDS; mother1/daughter1 are per-event local indices (0 = none)

    @property
    def n_events(self) -> int:
        return len(self.counts)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Pythia prints banners and error summaries to the C stdout; keep the job log clean."""
    saved = os.dup(1)
    with Path(os.devnull).open("w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _make_pythia(lines: list[str], seed: int):
    with _quiet_stdout():
        pythia = pythia8mc.Pythia("", False)
        for line in [
            "Print:quiet = on",
            "Next:numberCount = 0",
            "Random:setSeed = on",
            f"Random:seed = {int(seed)}",
            # Decay long-lived particles only inside the tracker volume, as the production cards do.
            "ParticleDecays:limitCylinder = on",
            f"ParticleDecays:xyMax = {C.DECAY_XY_MAX}",
            f"ParticleDecays:zMax = {C.DECAY_Z_MAX}",
            *lines,
        ]:
            if not pythia.readString(line):
                raise ConfigError(f"Pythia rejected the setting '{line}'")
        if not pythia.init():
            raise ConfigError(
                "Pythia cannot initialise this process (kinematically impossible at this sqrt_s?): "
                + "; ".join(lines)
            )
    return pythia


def _beam_lines(sqrt_s: float) -> list[str]:
    return ["Beams:idA = 11", "Beams:idB = -11", f"Beams:eCM = {float(sqrt_s)}", "PDF:lepton = on"]


def _batch_to_record(batch: ak.Array, overlay: bool = False) -> GenRecord:
    prt = batch.prt
    counts = ak.to_numpy(ak.num(prt)).astype(np.int64)
    flat = ak.flatten(prt)
    arrays = {
        "pdg": ak.to_numpy(flat.id).astype(np.int32),
        "status": ak.to_numpy(flat.status).astype(np.int32),
        "mother1": ak.to_numpy(flat.mother1).astype(np.int64),
        "daughter1": ak.to_numpy(flat.daughter1).astype(np.int64),
        "px": ak.to_numpy(flat.p.px).astype(np.float64),
        "py": ak.to_numpy(flat.p.py).astype(np.float64),
        "pz": ak.to_numpy(flat.p.pz).astype(np.float64),
        "e": ak.to_numpy(flat.p.e).astype(np.float64),
        "m": ak.to_numpy(flat.m).astype(np.float64),
    }
    vprod = flat.vProd
    for axis, name in (("px", "vx"), ("py", "vy"), ("pz", "vz"), ("e", "vt")):
        arrays[name] = ak.to_numpy(ak.fill_none(vprod[axis], 0.0)).astype(np.float64)
    arrays["overlay"] = np.full(len(arrays["pdg"]), overlay, dtype=bool)
    return GenRecord(counts, arrays)


def _generate_process(lines: list[str], n_events: int, seed: int, bar=None) -> GenRecord:
    pythia = _make_pythia(lines, seed)
    parts: list[GenRecord] = []
    done = 0
    batch_size = 50
    with _quiet_stdout():
        while done < n_events:
            want = min(batch_size, n_events - done)
            batch = pythia.nextBatch(want, errorMode="skip")
            if len(batch) == 0:
                raise ConfigError("Pythia produced no events (check the process settings)")
            parts.append(_batch_to_record(batch))
            done += len(batch)
            if bar is not None:
                bar.update(len(batch))
    return concat_records(parts)


def concat_records(parts: list[GenRecord]) -> GenRecord:
    """Events of several records one after the other."""
    return GenRecord(
        np.concatenate([p.counts for p in parts]),
        {k: np.concatenate([p.arrays[k] for p in parts]) for k in FIELDS},
    )


def _generate_gun(pdg: int, n_events: int, seed: int, emin: float, emax: float, bar=None) -> GenRecord:
    """Single particles, E uniform in [emin, emax], isotropic within the tracker acceptance; Pythia decays them."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    pythia = _make_pythia(["ProcessLevel:all = off"], seed)
    mass = pythia.particleData.m0(pdg)
    charged = pythia.particleData.charge(pdg) != 0
    sign = np.where(rng.random(n_events) < 0.5, -1, 1) if charged else np.ones(n_events, dtype=int)
    energy = rng.uniform(emin, emax, n_events)
    energy = np.maximum(energy, mass * 1.0001)
    cos_theta = rng.uniform(-GUN_MAX_ABS_COS_THETA, GUN_MAX_ABS_COS_THETA, n_events)
    phi = rng.uniform(-math.pi, math.pi, n_events)
    pmag = np.sqrt(energy**2 - mass**2)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    rows: dict[str, list] = {k: [] for k in FIELDS}
    counts = np.zeros(n_events, dtype=np.int64)
    event = pythia.event
    with _quiet_stdout():
        # A handful of particles per event: reading the Pythia record entry by entry is cheap here.
        for i in range(n_events):
            px = pmag[i] * sin_theta[i] * math.cos(phi[i])
            py = pmag[i] * sin_theta[i] * math.sin(phi[i])
            pz = pmag[i] * cos_theta[i]
            e = math.sqrt(px * px + py * py + pz * pz + mass * mass)
            event.reset()
            event.append(int(sign[i] * pdg), 1, 0, 0, px, py, pz, e, mass)
            pythia.next()
            counts[i] = event.size()
            for j in range(event.size()):
                p = event[j]
                rows["pdg"].append(p.id())
                rows["status"].append(p.status())
                rows["mother1"].append(p.mother1())
                rows["daughter1"].append(p.daughter1())
                rows["px"].append(p.px())
                rows["py"].append(p.py())
                rows["pz"].append(p.pz())
                rows["e"].append(p.e())
                rows["m"].append(p.m())
                rows["vx"].append(p.xProd())
                rows["vy"].append(p.yProd())
                rows["vz"].append(p.zProd())
                rows["vt"].append(p.tProd())
                rows["overlay"].append(False)
            if bar is not None:
                bar.update(1)
    dtypes = {
        "pdg": np.int32,
        "status": np.int32,
        "mother1": np.int64,
        "daughter1": np.int64,
        "overlay": bool,
    }
    return GenRecord(counts, {k: np.asarray(v, dtype=dtypes.get(k, np.float64)) for k, v in rows.items()})


def without_beams(record: GenRecord) -> GenRecord:
    """The record with its incoming beams and their remnants marked REMOVED_STATUS (see PYTHIA_BEAM_STATUS).

    What remains of a pile-up interaction is what the CLIC overlay delivers: the photons' hadronic products.
    """
    a = record.arrays
    off = np.concatenate([[0], np.cumsum(record.counts)])
    evt = np.repeat(np.arange(record.n_events), record.counts)
    mother = np.where(a["mother1"] > 0, a["mother1"] + off[evt], 0)
    beam = a["status"] == PYTHIA_BEAM_STATUS
    remnant = (a["status"] > 0) & beam[mother] & (a["mother1"] > 0)
    status = np.where(beam | remnant, REMOVED_STATUS, a["status"]).astype(a["status"].dtype)
    return GenRecord(record.counts, {**a, "status": status})


def overlay_records(signal: GenRecord, pileup: GenRecord, n_pileup: np.ndarray) -> GenRecord:
    """Append n_pileup[i] consecutive pile-up events to signal event i (indices shifted, marked as overlay).

    Pile-up entries keep their own system entry, whose mother pointers are rebased so that their particles'
    ancestry stays inside their own sub-event.
    """
    n_events = signal.n_events
    sig_off = np.concatenate([[0], np.cumsum(signal.counts)])
    pu_off = np.concatenate([[0], np.cumsum(pileup.counts)])
    first_pu = np.concatenate([[0], np.cumsum(n_pileup)])
    # rows of the output event i: signal rows, then the rows of its pile-up events
    pu_rows_per_event = pu_off[first_pu[1:]] - pu_off[first_pu[:-1]]
    out_counts = signal.counts + pu_rows_per_event
    out_off = np.concatenate([[0], np.cumsum(out_counts)])
    total = int(out_off[-1])
    # Destination of each signal row and each used pile-up row
    sig_evt = np.repeat(np.arange(n_events), signal.counts)
    sig_dest = out_off[sig_evt] + (np.arange(len(sig_evt)) - sig_off[sig_evt])
    n_used = int(first_pu[-1])
    pu_rows = np.arange(pu_off[n_used])
    pu_sub = np.repeat(np.arange(n_used), pileup.counts[:n_used])  # pile-up sub-event of each row
    pu_evt = np.repeat(np.arange(n_events), n_pileup)[pu_sub] if n_used else np.zeros(0, dtype=np.int64)
    # offset of the pile-up sub-event inside the output event
    sub_start_in_evt = signal.counts[pu_evt] + (pu_off[pu_sub] - pu_off[first_pu[pu_evt]])
    pu_local = pu_rows - pu_off[pu_sub]
    pu_dest = out_off[pu_evt] + sub_start_in_evt + pu_local
    out = {}
    for key in FIELDS:
        arr = np.empty(total, dtype=signal.arrays[key].dtype)
        arr[sig_dest] = signal.arrays[key]
        vals = pileup.arrays[key][: len(pu_rows)]
        if key in ("mother1", "daughter1"):
            vals = np.where(vals > 0, vals + sub_start_in_evt, 0)
        if key == "overlay":
            vals = np.ones(len(pu_rows), dtype=bool)
        if key == "vt":
            # interaction k of the event comes k bunch crossings after the signal (as the MLPF PU10 sample)
            slot = pu_sub - first_pu[pu_evt] + 1
            vals = vals + slot * PILEUP_BUNCH_SPACING_NS * C.C_MM_PER_NS
        arr[pu_dest] = vals
        out[key] = arr
    # The pile-up system entries (local index 0 of each sub-event) have no mother; mark them so that
    # truth selection drops them like the signal system entry.
    sys_rows = pu_dest[pu_local == 0]
    out["status"][sys_rows] = -11
    out["mother1"][sys_rows] = -1
    return GenRecord(out_counts, out)


def generate(
    sample: str,
    n_events: int,
    seed: int,
    sqrt_s: float,
    gun_energy: tuple[float, float],
    pileup_mean: float = PILEUP_MEAN,
    bar=None,
) -> GenRecord:
    """Generate `n_events` events of `sample` with the given seed (the whole record, flat)."""
    if sample in GUNS:
        return _generate_gun(GUNS[sample], n_events, seed, gun_energy[0], gun_energy[1], bar)
    if sample not in PROCESS_CARDS:
        raise ConfigError(f"unknown sample '{sample}'; known: {', '.join(SAMPLES)}")
    signal = _generate_process(_beam_lines(sqrt_s) + PROCESS_CARDS[sample], n_events, seed, bar)
    if sample not in PILEUP_SAMPLES:
        return signal
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    n_pileup = rng.poisson(pileup_mean, n_events)
    total = int(n_pileup.sum())
    if total == 0:
        return signal
    pileup = _generate_process(_beam_lines(sqrt_s) + PILEUP_CARD, total, seed + 1)
    return overlay_records(signal, without_beams(pileup), n_pileup)
