"""Element features X: 17 float32 columns per track, cluster or calorimeter hit, defined once.

The column order is upstream's `get_edm4hep_x_features` (identical in the paper, v2.x and HEAD; jpata/particleflow
mlpf/conf.py); tracks and clusters (`dataset.elements: clusters`) or tracks and calorimeter hits
(`dataset.elements: hits`) share the matrix, each with its own meaning per column, zero-padded to 17. Columns 1
(pt / et) and 5 (p / energy) mean the same for every type, as the model's log-ratio targets need. All functions
here work on flat numpy arrays (one row per element across many events), so they are vectorised over events.
"""

from __future__ import annotations

import numpy as np

# Element types (upstream ELEM_TYPES): 0 padding, 1 track, 2 cluster; 3 calorimeter hit (the hit level's own
# type: upstream's hit datasets keep hits in separate arrays, X_hit_calo, so they need no shared code).
ELEM_TYPE_TRACK = 1
ELEM_TYPE_CLUSTER = 2
ELEM_TYPE_HIT = 3
# What the non-track elements of an event are (`dataset.elements`).
ELEMENT_LEVELS = ("clusters", "hits")
CALORIMETER_ELEMENT_TYPE = {"clusters": ELEM_TYPE_CLUSTER, "hits": ELEM_TYPE_HIT}

TRACK_FEATURES = (
    "type", "pt", "eta", "sin_phi", "cos_phi", "p", "chi2", "ndf", "dEdx", "dEdxError",
    "radiusOfInnermostHit", "tanLambda", "D0", "omega", "Z0", "time", "pad",
)  # fmt: skip
CLUSTER_FEATURES = (
    "type", "et", "eta", "sin_phi", "cos_phi", "energy", "position.x", "position.y", "position.z", "iTheta",
    "energy_ecal", "energy_hcal", "energy_other", "num_hits", "sigma_x", "sigma_y", "sigma_z",
)  # fmt: skip
# Calorimeter hits: upstream's 12 hit features (jpata/particleflow mlpf/conf.py, hit datasets: elemtype, et, eta,
# sin_phi, cos_phi, energy, position.x/y/z, time, subdetector, type) in their order, then the layer decoded from
# the hit type; eta, phi and et from the hit position seen from the origin. `hit_type` is the CalorimeterHit
# `type`, the LCIO CalorimeterHitType code that DDCaloDigi writes.
HIT_FEATURES = (
    "type", "et", "eta", "sin_phi", "cos_phi", "energy", "position.x", "position.y", "position.z", "time",
    "subdetector", "hit_type", "layer", "pad", "pad", "pad", "pad",
)  # fmt: skip
# LCIO CalorimeterHitType: type = caloType + 10 caloID + 1000 layout + 10000 layer (iLCSoft/LCIO
# src/cpp/include/UTIL/CalorimeterHitType.h, fLayer = 10000); the layer counts from the calorimeter front.
HIT_TYPE_LAYER_FACTOR = 10000
CALORIMETER_FEATURES = {"clusters": CLUSTER_FEATURES, "hits": HIT_FEATURES}


def element_features(elements: str = "clusters") -> tuple[str, ...]:
    """Column names of X at an element level: shared names where tracks and the calorimeter elements agree,
    `track/other` where they differ."""
    return tuple(
        t if t == c else f"{t}/{c}"
        for t, c in zip(TRACK_FEATURES, CALORIMETER_FEATURES[elements], strict=True)
    )


ELEMENT_FEATURES = element_features("clusters")
N_FEATURES = len(ELEMENT_FEATURES)  # 17
# Indices of the columns that mean the same for every element type; the only names code uses for them
# (X_PT: track pt, cluster or hit et; X_ENERGY: track p, cluster or hit energy).
X_TYPE, X_PT, X_ETA, X_SIN_PHI, X_COS_PHI, X_ENERGY = (
    TRACK_FEATURES.index(name) for name in ("type", "pt", "eta", "sin_phi", "cos_phi", "p")
)

# Helix curvature -> transverse momentum: pt [GeV] = 3e-4 * |B [T] / omega [1/mm]| (upstream track_pt).
PT_PER_TESLA_MM = 3e-4
# Cluster position spread (sigma_x/y/z) per dataset definition (`dataset.target`): the paper's dataset takes the
# plain standard deviation of the hit positions, upstream from v2.2.0 (PR #345) the energy-weighted one.
ENERGY_WEIGHTED_SPREAD = {"paper": False, "v2": True}
# Solenoid field per detector (upstream mlpf/conf.py EDM4HEP.DETECTORS; CLIC_o3_v14 4 T, CLD_o2 2 T).
DETECTOR_BFIELD_TESLA = {"clic": 4.0, "cld": 2.0}


def _finite(x: np.ndarray) -> np.ndarray:
    """NaN/inf -> 0, as upstream does for every feature."""
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def _eta_from_theta(theta: np.ndarray) -> np.ndarray:
    """eta = -ln tan(theta/2), 0 where tan(theta/2) <= 0 (upstream)."""
    tan_half = np.tan(theta / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tan_half > 0, -np.log(np.where(tan_half > 0, tan_half, 1.0)), 0.0)


def track_features(
    *,
    omega: np.ndarray,
    phi: np.ndarray,
    tan_lambda: np.ndarray,
    d0: np.ndarray,
    z0: np.ndarray,
    time: np.ndarray,
    chi2: np.ndarray,
    ndf: np.ndarray,
    dedx: np.ndarray,
    dedx_error: np.ndarray,
    radius_innermost_hit: np.ndarray,
    bfield_tesla: float,
) -> np.ndarray:
    """X rows of tracks from their state at the IP; shape [n, 17] float32."""
    omega = omega.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pt = PT_PER_TESLA_MM * np.abs(bfield_tesla / omega)
        px, py, pz = np.cos(phi) * pt, np.sin(phi) * pt, tan_lambda * pt
        p = np.sqrt(px**2 + py**2 + pz**2)
        theta = np.arccos(pz / p)
    eta = _eta_from_theta(theta)
    columns = [
        np.full(len(omega), ELEM_TYPE_TRACK, dtype=np.float64), pt, eta, np.sin(phi), np.cos(phi), p, chi2, ndf,
        dedx, dedx_error, radius_innermost_hit, tan_lambda, d0, omega, z0, time, np.zeros(len(omega)),
    ]  # fmt: skip
    return _finite(np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=1)).astype(np.float32)


def cluster_features(
    *,
    energy: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    itheta: np.ndarray,
    phi: np.ndarray,
    hit_cluster: np.ndarray,
    hit_energy: np.ndarray,
    hit_subdetector: np.ndarray,
    hit_position: np.ndarray,
    energy_weighted_spread: bool,
) -> np.ndarray:
    """X rows of clusters; hit arrays are flat (one row per cluster-hit pair, `hit_cluster` = cluster row).

    Subdetector energies and hit counts are sums over the cluster's hits; sigma_x/y/z are the standard
    deviations of the hit positions, energy-weighted if `energy_weighted_spread` (upstream from v2.2.0, PR #345)
    or plain (the paper's dataset: numpy std of the positions, jpata/particleflow v1.6.2
    scripts/fcc/postprocessing.py, `cluster_to_features`).
    """
    n = len(energy)
    energy = energy.astype(np.float64)
    itheta = itheta.astype(np.float64)
    et = np.sqrt(np.maximum(energy**2 - (energy * np.cos(itheta)) ** 2, 0.0))
    eta = _eta_from_theta(itheta)
    sub_e = np.zeros((n, 3))
    e_hit = hit_energy.astype(np.float64)
    np.add.at(sub_e, (hit_cluster, np.clip(hit_subdetector, 0, 2)), e_hit)
    num_hits = np.bincount(hit_cluster, minlength=n).astype(np.float64)
    weight = e_hit if energy_weighted_spread else np.ones_like(e_hit)
    w_sum = np.bincount(hit_cluster, weights=weight, minlength=n)
    sigmas = []
    for axis in range(3):
        pos = hit_position[:, axis].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.bincount(hit_cluster, weights=weight * pos, minlength=n) / w_sum
            var = (
                np.bincount(hit_cluster, weights=weight * (pos - mean[hit_cluster]) ** 2, minlength=n) / w_sum
            )
        sigmas.append(np.sqrt(np.maximum(var, 0.0)))
    columns = [
        np.full(n, ELEM_TYPE_CLUSTER, dtype=np.float64), et, eta, np.sin(phi), np.cos(phi), energy, x, y, z, itheta,
        sub_e[:, 0], sub_e[:, 1], sub_e[:, 2], num_hits, *sigmas,
    ]  # fmt: skip
    return _finite(np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=1)).astype(np.float32)


def hit_features(
    *,
    energy: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    time: np.ndarray,
    subdetector: np.ndarray,
    hit_type: np.ndarray,
) -> np.ndarray:
    """X rows of calorimeter hits (HIT_FEATURES); shape [n, 17] float32.

    Direction from the origin to the hit: eta = -ln tan(theta/2), et = E sin(theta), as for clusters.
    """
    # O(10^4) hits per event: computed in float32 (the stored precision), in blocks that stay in the cache.
    out = np.zeros((len(energy), N_FEATURES), dtype=np.float32)
    for lo in range(0, len(energy), _HIT_BLOCK):
        part = slice(lo, lo + _HIT_BLOCK)
        _hit_block(out[part], energy[part], x[part], y[part], z[part], time[part], subdetector[part],
                   np.asarray(hit_type[part]))  # fmt: skip
    return out


_HIT_BLOCK = 32768  # hits per block of hit_features: ~2 MB of output and temporaries, in L2/L3
_HIT_COLUMNS = {name: HIT_FEATURES.index(name) for name in HIT_FEATURES[:13]}


def _hit_block(out, energy, x, y, z, time, subdetector, hit_type) -> None:
    x, y, z = (np.asarray(a, dtype=np.float32) for a in (x, y, z))
    col = _HIT_COLUMNS
    rho = np.hypot(x, y)
    r = np.hypot(rho, z)
    axis = rho == 0
    safe_rho = np.where(axis, np.float32(1), rho)
    out[:, col["type"]] = ELEM_TYPE_HIT
    out[:, col["et"]] = energy * rho / np.where(r > 0, r, np.float32(1))
    # eta = -ln tan(theta / 2) = asinh(z / rho); 0 on the axis, as _eta_from_theta gives where tan <= 0
    out[:, col["eta"]] = np.where(axis, np.float32(0), np.arcsinh(z / safe_rho))
    out[:, col["sin_phi"]] = np.where(axis, np.float32(0), y / safe_rho)
    out[:, col["cos_phi"]] = np.where(axis, np.float32(1), x / safe_rho)
    for name, values in (("energy", energy), ("position.x", x), ("position.y", y), ("position.z", z),
                         ("time", time), ("subdetector", subdetector), ("hit_type", hit_type),
                         ("layer", hit_type // HIT_TYPE_LAYER_FACTOR)):  # fmt: skip
        out[:, col[name]] = values
    bad = ~np.isfinite(out)  # NaN/inf -> 0 as for every feature
    if bad.any():
        out[bad] = 0.0
