"""Synthetic prediction files following docs/contracts.md section 4, for the evaluation tests.

Events hold a few collimated sprays of massless particles (so jets are well defined). Every truth particle
has one element whose target is that particle; extra noise elements have no target. The baseline PF smears
the target pT by 10% and mislabels 10% of classes; MLPF smears by 5% and mislabels 5%, so MLPF must come
out with the narrower response in every test that compares them.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

N_X = 17
PF_SMEAR, MLPF_SMEAR = 0.10, 0.05
PF_MISID, MLPF_MISID = 0.10, 0.05


def _rows(cls, charge, pt, eta, phi, energy) -> np.ndarray:
    return np.stack([cls, charge, pt, eta, np.sin(phi), np.cos(phi), energy], axis=1).astype(np.float32)


def make_events(
    n_events: int, seed: int = 1, sprays: tuple[int, int] = (2, 5), per_spray: tuple[int, int] = (3, 15)
) -> ak.Array:
    """`n_events` synthetic events with the fields of contract sections 2 and 4; `sprays` and `per_spray` are
    the [low, high) ranges of sprays per event and particles per spray."""
    rng = np.random.default_rng(seed)
    n_sprays = rng.integers(*sprays, size=n_events)
    spray_event = np.repeat(np.arange(n_events), n_sprays)
    n_sp = len(spray_event)
    spray_eta = rng.uniform(-1.5, 1.5, n_sp)
    spray_phi = rng.uniform(-np.pi, np.pi, n_sp)
    spray_n = rng.integers(*per_spray, size=n_sp)
    p_spray = np.repeat(np.arange(n_sp), spray_n)
    n_p = len(p_spray)
    pt = rng.exponential(8.0, n_p) + 0.5
    eta = spray_eta[p_spray] + rng.normal(0, 0.08, n_p)
    phi = (spray_phi[p_spray] + rng.normal(0, 0.08, n_p) + np.pi) % (2 * np.pi) - np.pi
    energy = pt * np.cosh(eta)
    cls = rng.choice([1, 2, 3, 4, 5], p=[0.55, 0.15, 0.22, 0.05, 0.03], size=n_p)
    charge = np.where(np.isin(cls, [1, 4, 5]), rng.choice([-1, 1], size=n_p), 0)
    event = spray_event[p_spray]
    counts_truth = np.bincount(event, minlength=n_events)

    # One element per particle plus ~20% noise elements without a target particle.
    n_noise = rng.poisson(0.2 * counts_truth)
    noise_event = np.repeat(np.arange(n_events), n_noise)
    elem_event = np.concatenate([event, noise_event])
    order = np.argsort(elem_event, kind="stable")
    n_e = len(elem_event)
    t_cls = np.concatenate([cls, np.zeros(len(noise_event))])[order]
    t_pt = np.concatenate([pt, np.zeros(len(noise_event))])[order]
    t_eta = np.concatenate([eta, rng.uniform(-2, 2, len(noise_event))])[order]
    t_phi = np.concatenate([phi, rng.uniform(-np.pi, np.pi, len(noise_event))])[order]
    t_e = t_pt * np.cosh(t_eta)
    t_q = np.concatenate([charge, np.zeros(len(noise_event))])[order]
    elem_event = elem_event[order]

    def reco(smear: float, misid: float) -> np.ndarray:
        r_cls = np.where(rng.random(n_e) < misid, rng.integers(0, 6, n_e), t_cls)
        scale = 1.0 + rng.normal(0, smear, n_e)
        r_pt = np.where(t_cls != 0, t_pt * scale, rng.exponential(1.0, n_e))
        r_pt = np.where(r_cls != 0, r_pt, 0.0)
        return _rows(r_cls, t_q, r_pt, t_eta, t_phi, r_pt * np.cosh(t_eta))

    ytarget = _rows(t_cls, t_q, t_pt, t_eta, t_phi, t_e)
    ycand = reco(PF_SMEAR, PF_MISID)
    ypred = reco(MLPF_SMEAR, MLPF_MISID)
    x = np.zeros((n_e, N_X), dtype=np.float32)
    x[:, 0] = np.where(t_q != 0, 1, 2)
    x[:, 1] = t_pt + (t_cls == 0) * 1.0
    x[:, 2] = t_eta
    x[:, 3], x[:, 4] = np.sin(t_phi), np.cos(t_phi)
    x[:, 5] = x[:, 1] * np.cosh(t_eta)
    proba = np.full((n_e, 6), 1 / 6, dtype=np.float32)
    counts_elem = np.bincount(elem_event, minlength=n_events)

    truth = ak.zip(
        {
            "pt": pt.astype(np.float32),
            "eta": eta.astype(np.float32),
            "phi": phi.astype(np.float32),
            "energy": energy.astype(np.float32),
            "pdg": np.where(cls == 3, 22, 211).astype(np.int32),
        }
    )
    px = np.bincount(event, weights=pt * np.cos(phi), minlength=n_events)
    py = np.bincount(event, weights=pt * np.sin(phi), minlength=n_events)

    def jag(a: np.ndarray) -> ak.Array:
        return ak.unflatten(ak.to_regular(ak.Array(a), axis=1), counts_elem)

    return ak.zip(
        {
            "X": jag(x),
            "ytarget": jag(ytarget),
            "ycand": jag(ycand),
            "truth": ak.unflatten(truth, counts_truth),
            "genmet": np.hypot(px, py).astype(np.float32),
            "ypred": jag(ypred),
            "ypred_proba": jag(proba),
        },
        depth_limit=1,
    )
