"""Parametric tracking: which charged particles become tracks, their hits, fitted helices and track states.

Efficiency and pT resolution follow the Delphes CLICdet tables; hits are counted from the crossings of the
true helix with the CLIC_o3_v14 barrel layers and endcap disks (at least MIN_TRACK_HITS needed, which also
removes particles born outside the tracker); impact parameters and angles are smeared with the CLIC
requirement-level resolutions. A small fraction of fake tracks (hits of two particles combined) is added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlpf.io.edm4hep import collections as names
from mlpf.sim import constants as C
from mlpf.sim.geometry import Helix, wrap_angle

# The four states every track carries, in this order (edm4hep::TrackState locations).
STATE_LOCATIONS = (
    names.TRACK_STATE_AT_IP,
    names.TRACK_STATE_AT_FIRST_HIT,
    names.TRACK_STATE_AT_LAST_HIT,
    names.TRACK_STATE_AT_CALORIMETER,
)


@dataclass
class Tracks:
    """Reconstructed tracks, flat over events (sorted by event)."""

    evt: np.ndarray
    params: dict[str, np.ndarray]  # IP state: D0, phi, omega, Z0, tanLambda
    chi2: np.ndarray
    ndf: np.ndarray
    hit_numbers: np.ndarray  # (n, 6) hits per tracker subdetector
    states: dict[str, np.ndarray]  # (n, 4) per field, locations AtIP, AtFirstHit, AtLastHit, AtCalorimeter
    calo_point: (
        np.ndarray
    )  # (n, 3) fitted helix at the ECAL front face (the AtCalorimeter state; nan if missed)
    hit_s: np.ndarray  # (n, 2) turning angle of the first and last hit along the particle's helix
    p: np.ndarray  # measured momentum magnitude
    momentum: np.ndarray  # (n, 3) measured momentum at the IP
    charge: np.ndarray
    sigma_p: np.ndarray  # momentum resolution (absolute, GeV)
    link_mc: np.ndarray  # (n, 2) global truth index of contributing particles (-1 = none)
    link_weight: np.ndarray  # (n, 2) fraction of the track's hits from each


def _eta(pt: np.ndarray, pz: np.ndarray) -> np.ndarray:
    return np.arcsinh(pz / np.where(pt > 0, pt, 1e-12))


def efficiency(abs_pdg: np.ndarray, energy: np.ndarray, abs_eta: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """Tracking efficiency per particle from the Delphes CLICdet tables."""
    eff = np.zeros(len(abs_pdg))
    for table, mask_kind, e_low, e_high in (
        (C.ELECTRON_EFF, abs_pdg == 11, 5.0, 80.0),
        (C.MUON_EFF, abs_pdg == 13, 5.0, 80.0),
        (C.PION_EFF, (abs_pdg != 11) & (abs_pdg != 13), 3.0, 80.0),
    ):
        for band, in_band in (
            ("low", energy < e_low),
            ("mid", (energy >= e_low) & (energy < e_high)),
            ("high", energy >= e_high),
        ):
            edges, values = table[band]
            sel = mask_kind & in_band
            idx = np.clip(np.searchsorted(edges, abs_eta[sel], side="right") - 1, 0, len(values) - 1)
            eff[sel] = np.asarray(values)[idx]
    eff[(pt <= C.TRACK_MIN_PT) | (abs_eta > C.TRACK_MAX_ABS_ETA)] = 0.0
    return eff


def pt_resolution(abs_pdg: np.ndarray, abs_eta: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """Relative pT resolution sqrt((a pT)^2 + b^2) from the Delphes CLICdet tables."""
    idx = np.clip(
        np.searchsorted(C.PT_RES_ETA_EDGES, abs_eta, side="right") - 1, 0, len(C.PT_RES_ETA_EDGES) - 2
    )
    kind = np.where(abs_pdg == 11, "electron", np.where(abs_pdg == 13, "muon", "pion"))
    a = np.select(
        [kind == "electron", kind == "muon"],
        [C.PT_RES_A["electron"][idx], C.PT_RES_A["muon"][idx]],
        C.PT_RES_A["pion"][idx],
    )
    b = np.select(
        [kind == "electron", kind == "muon"],
        [C.PT_RES_B["electron"][idx], C.PT_RES_B["muon"][idx]],
        C.PT_RES_B["pion"][idx],
    )
    return np.hypot(a * pt, b)


def tracker_crossings(helix: Helix) -> tuple[np.ndarray, np.ndarray]:
    """Path parameter of each layer/disk crossing (n, n_layers + n_disks), inf where not crossed; subdetectors.

    A loop over the 25 layers and disks; each step is vectorised over all particles.
    """
    columns = []
    for radius, half_z in zip(C.TRACKER_BARREL_RADII, C.TRACKER_BARREL_HALF_Z, strict=True):
        s = helix.to_cylinder(radius)
        _, _, z, _ = helix_at_column(helix, s)
        columns.append(np.where(np.abs(z) <= half_z, s, np.inf))
    for z_disk, rmin, rmax in zip(C.TRACKER_DISK_Z, C.TRACKER_DISK_RMIN, C.TRACKER_DISK_RMAX, strict=True):
        s = helix.to_plane(z_disk)
        x, y, _, _ = helix_at_column(helix, s)
        r = np.hypot(x, y)
        columns.append(np.where((r >= rmin) & (r <= rmax), s, np.inf))
    s_all = np.stack(columns, axis=1) if columns else np.zeros((len(helix.pt), 0))
    # a charged particle that has turned by more than half a circle has curled back (looper): no more hits
    s_all = np.where(helix.charged[:, None] & (s_all > np.pi), np.inf, s_all)
    subdet = np.concatenate([C.BARREL_LAYER_SUBDET, C.DISK_SUBDET])
    return s_all, subdet


def helix_at_column(helix: Helix, s: np.ndarray):
    finite = np.isfinite(s)
    x, y, z, phi = helix.at(np.where(finite, s, 0.0))
    nan = np.nan
    return (
        np.where(finite, x, nan),
        np.where(finite, y, nan),
        np.where(finite, z, nan),
        np.where(finite, phi, nan),
    )


def fitted_helix(params: dict[str, np.ndarray]) -> Helix:
    """The helix of fitted IP track parameters (D0, phi, omega, Z0, tanLambda; reference point at the origin).

    This is all a reconstruction knows of a track beyond its hits, so everything derived from a track (its
    states and, through the AtCalorimeter state, the baseline's track-cluster link) starts from it, never from
    the particle's true trajectory. LCIO conventions: the PCA is (-D0 sin phi, D0 cos phi, Z0), the charge has
    the sign of omega and pT = C B / |omega|.
    """
    omega, phi = params["omega"], params["phi"]
    pt = C.C_LIGHT_GEV * C.B_FIELD_T / np.abs(omega)
    return Helix(
        -params["D0"] * np.sin(phi),
        params["D0"] * np.cos(phi),
        params["Z0"],
        pt * np.cos(phi),
        pt * np.sin(phi),
        pt * params["tanLambda"],
        np.sign(omega),
    )


def fitted_states(
    params: dict[str, np.ndarray], hit_s: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Track states AtIP, AtFirstHit, AtLastHit and AtCalorimeter of the fitted helix, and its calorimeter point.

    The hit states sit at the first and last hit's turning angle `hit_s` (from the particle's helix, which the
    fit follows to well within a cell); the AtCalorimeter state where the fitted helix meets the ECAL front face
    (barrel cylinder, else endcap disk), as the reconstruction extrapolates it (nan point if it never does).
    Each state refers to its own position (D0 = Z0 = 0) with the momentum direction there; AtIP to the origin.
    """
    n = len(params["omega"])
    helix = fitted_helix(params)
    s_calo, _ = helix.to_box(C.ECAL_BARREL_RMIN, C.ECAL_ENDCAP_ZMIN)
    xs, ys, zs, phis = [], [], [], []
    for s in (np.zeros(n), hit_s[:, 0], hit_s[:, 1], s_calo):
        x, y, z, phi = helix_at_column(helix, s)
        xs.append(x)
        ys.append(y)
        zs.append(z)
        phis.append(phi)
    ref = np.stack([np.stack(xs, 1), np.stack(ys, 1), np.stack(zs, 1)], axis=2)  # (n, 4, 3)
    ref[:, 0, :] = 0.0  # the IP state refers to the origin
    calo_point = ref[:, 3, :].copy()
    ref = np.nan_to_num(ref)
    state_phi = np.stack(phis, 1)
    state_phi[:, 0] = params["phi"]
    state_phi = np.where(np.isfinite(state_phi), state_phi, params["phi"][:, None])
    states = {
        "location": np.tile(np.array(STATE_LOCATIONS, dtype=np.int32), (n, 1)),
        "D0": np.column_stack([params["D0"], np.zeros((n, 3))]),
        "phi": state_phi,
        "omega": np.tile(params["omega"][:, None], (1, 4)),
        "Z0": np.column_stack([params["Z0"], np.zeros((n, 3))]),
        "tanLambda": np.tile(params["tanLambda"][:, None], (1, 4)),
        "time": np.zeros((n, 4)),
        "referencePoint.x": ref[:, :, 0],
        "referencePoint.y": ref[:, :, 1],
        "referencePoint.z": ref[:, :, 2],
    }
    return states, calo_point


def reconstruct_tracks(
    evt: np.ndarray,
    mc_index: np.ndarray,
    pdg: np.ndarray,
    charge: np.ndarray,
    vertex: np.ndarray,
    momentum: np.ndarray,
    energy: np.ndarray,
    rng: np.random.Generator,
    fake_rate: float = C.FAKE_TRACK_RATE,
) -> Tracks:
    """Tracks for the charged final-state particles given (flat arrays, global MC indices)."""
    helix = Helix(
        vertex[:, 0], vertex[:, 1], vertex[:, 2], momentum[:, 0], momentum[:, 1], momentum[:, 2], charge
    )
    abs_pdg = np.abs(pdg)
    abs_eta = np.abs(_eta(helix.pt, helix.pz))
    s_hits, subdet = tracker_crossings(helix)
    n_hits = np.isfinite(s_hits).sum(axis=1)
    eff = efficiency(abs_pdg, energy, abs_eta, helix.pt)
    found = (rng.random(len(eff)) < eff) & (n_hits >= C.MIN_TRACK_HITS)
    helix = Helix(
        *(
            a[found]
            for a in (
                vertex[:, 0],
                vertex[:, 1],
                vertex[:, 2],
                momentum[:, 0],
                momentum[:, 1],
                momentum[:, 2],
                charge,
            )
        )
    )
    sel = np.flatnonzero(found)
    n = len(sel)
    s_hits = s_hits[sel]
    n_hits = n_hits[sel]
    abs_pdg, abs_eta = abs_pdg[sel], abs_eta[sel]

    # --- measured helix at the IP
    true = helix.perigee()
    pt = helix.pt
    p = np.sqrt(pt**2 + helix.pz**2)
    sin_theta = pt / np.where(p > 0, p, 1)
    rel = pt_resolution(abs_pdg, abs_eta, pt)
    # log-normal smearing with mean 1 (as Delphes), relative width capped at 1
    rel = np.minimum(rel, 1.0)
    sig_ln = np.sqrt(np.log1p(rel**2))
    pt_meas = pt * np.exp(rng.normal(size=n) * sig_ln - 0.5 * sig_ln**2)
    ang = np.hypot(C.ANGLE_RES_A, C.ANGLE_RES_B / (p * np.sqrt(sin_theta)))
    d0_res = np.hypot(C.D0_RES_A, C.D0_RES_B / (p * sin_theta**1.5))
    theta = np.arctan2(pt, helix.pz) + rng.normal(size=n) * ang
    theta = np.clip(theta, 1e-4, np.pi - 1e-4)
    params = {
        "D0": true["D0"] + rng.normal(size=n) * d0_res,
        "phi": wrap_angle(true["phi"] + rng.normal(size=n) * ang),
        "omega": true["omega"] * pt / pt_meas,
        "Z0": true["Z0"] + rng.normal(size=n) * d0_res * C.Z0_RES_SCALE,
        "tanLambda": 1.0 / np.tan(theta),
    }
    ndf = np.maximum(2 * n_hits - 5, 1)
    chi2 = rng.chisquare(ndf).astype(np.float64)
    hit_numbers = np.zeros((n, 6), dtype=np.int32)
    for k in range(6):
        hit_numbers[:, k] = (np.isfinite(s_hits) & (subdet[None, :] == k)).sum(axis=1)

    # --- states: IP, first hit, last hit, calorimeter face, all from the fitted parameters
    s_first = np.min(s_hits, axis=1)
    s_last = np.max(np.where(np.isfinite(s_hits), s_hits, -np.inf), axis=1)
    hit_s = np.column_stack([s_first, s_last])
    states, calo_point = fitted_states(params, hit_s)
    q = np.sign(params["omega"])
    pt_m = C.C_LIGHT_GEV * C.B_FIELD_T / np.abs(params["omega"])
    mom = np.column_stack(
        [pt_m * np.cos(params["phi"]), pt_m * np.sin(params["phi"]), pt_m * params["tanLambda"]]
    )
    p_meas = np.linalg.norm(mom, axis=1)
    tracks = Tracks(
        evt=evt[sel],
        params=params,
        chi2=chi2,
        ndf=ndf.astype(np.int32),
        hit_numbers=hit_numbers,
        states=states,
        calo_point=calo_point,
        hit_s=hit_s,
        p=p_meas,
        momentum=mom,
        charge=q,
        sigma_p=rel * p_meas,
        link_mc=np.column_stack([mc_index[sel], np.full(n, -1)]),
        link_weight=np.column_stack([np.ones(n), np.zeros(n)]),
    )
    if fake_rate > 0 and n > 1:
        tracks = _add_fakes(tracks, rng, fake_rate)
    return tracks


def _add_fakes(tracks: Tracks, rng: np.random.Generator, rate: float) -> Tracks:
    """Fake tracks: a wrong combination of the hits of a true track with another particle's hits.

    Each fake copies a random reconstructed track of the same event with a wrong curvature (x U(0.3, 3)) and a
    rotated direction; its truth links give half of the hits to each of the two particles.
    """
    n = len(tracks.evt)
    n_fake = rng.poisson(rate * n)
    if n_fake == 0:
        return tracks
    src = rng.integers(0, n, n_fake)
    # partner: the next track of the same event if any, otherwise none
    partner = np.minimum(src + 1, n - 1)
    partner = np.where(tracks.evt[partner] == tracks.evt[src], partner, -1)
    scale = np.exp(rng.uniform(np.log(0.3), np.log(3.0), n_fake))
    dphi = rng.normal(size=n_fake) * 0.05
    params = {k: v[src].copy() for k, v in tracks.params.items()}
    params["omega"] = params["omega"] * scale
    params["phi"] = wrap_angle(params["phi"] + dphi)
    params["D0"] = params["D0"] + rng.normal(size=n_fake) * 0.5
    params["Z0"] = params["Z0"] + rng.normal(size=n_fake) * 1.0
    pt_m = C.C_LIGHT_GEV * C.B_FIELD_T / np.abs(params["omega"])
    mom = np.column_stack(
        [pt_m * np.cos(params["phi"]), pt_m * np.sin(params["phi"]), pt_m * params["tanLambda"]]
    )
    # a fake's states follow its own (wrong) fit: its calorimeter point is where that helix goes
    states, calo_point = fitted_states(params, tracks.hit_s[src])
    ndf = np.maximum(tracks.ndf[src] - 4, 1).astype(np.int32)
    fake = Tracks(
        evt=tracks.evt[src],
        params=params,
        chi2=rng.chisquare(ndf) * 3.0,  # fakes fit badly
        ndf=ndf,
        hit_numbers=np.maximum(tracks.hit_numbers[src] - 1, 0),
        states=states,
        calo_point=calo_point,
        hit_s=tracks.hit_s[src],
        p=np.linalg.norm(mom, axis=1),
        momentum=mom,
        charge=np.sign(params["omega"]),
        sigma_p=tracks.sigma_p[src] * scale,
        link_mc=np.column_stack(
            [tracks.link_mc[src, 0], np.where(partner >= 0, tracks.link_mc[np.maximum(partner, 0), 0], -1)]
        ),
        # half of a fake's hits come from the source particle; the rest from the partner (or unmatched noise)
        link_weight=np.column_stack([np.full(n_fake, 0.5), np.where(partner >= 0, 0.5, 0.0)]),
    )
    merged = _concat(tracks, fake)
    order = np.argsort(merged.evt, kind="stable")
    return _take(merged, order)


def _concat(a: Tracks, b: Tracks) -> Tracks:
    def cat(x, y):
        if isinstance(x, dict):
            return {k: np.concatenate([x[k], y[k]]) for k in x}
        return np.concatenate([x, y])

    return Tracks(**{f: cat(getattr(a, f), getattr(b, f)) for f in Tracks.__dataclass_fields__})


def _take(t: Tracks, idx: np.ndarray) -> Tracks:
    def take(x):
        if isinstance(x, dict):
            return {k: v[idx] for k, v in x.items()}
        return x[idx]

    return Tracks(**{f: take(getattr(t, f)) for f in Tracks.__dataclass_fields__})
