"""Parametric calorimeter response: shower spots -> cell hits (with MC truth energies) for ECAL, HCAL and muon system.

Each particle that reaches the calorimeter front face deposits its (smeared) visible energy as a set of
"spots": electromagnetic showers with a Gamma longitudinal profile in X0 and a Moliere-scale lateral spread;
hadron showers starting at an exponentially distributed depth, sharing energy between ECAL and HCAL (PAPAS),
with a wider lateral core and a halo that can detach as split-off fragments; muons as MIP tracks through both
calorimeters plus hits in the yoke. Spots are summed into the physical cells of CLIC_o3_v14 (5.1 mm ECAL, 30 mm
HCAL, per layer), hits below the Pandora MIP thresholds are removed, and each hit keeps the energy every MC
particle contributed (CalohitMCTruthLink weights). All of it is vectorised over all particles of all events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlpf.sim import constants as C
from mlpf.sim.collections import HIT_COLLECTIONS

# Hit collection codes (index into HIT_COLLECTIONS)
ECAL_BARREL, ECAL_ENDCAP, HCAL_BARREL, HCAL_ENDCAP, HCAL_OTHER, MUON = range(6)
# LCIO CalorimeterHitType encoding, as DDCaloDigi writes it: caloType + 10 caloID + 1000 layout + 10000 layer,
# caloType em 0 / had 1 / muon 2; caloID ecal 1 / hcal 2 / yoke 3; layout barrel 1 / endcap 2 / ring 4.
_HIT_TYPE_BASE = np.array(
    [0 + 10 + 1000, 0 + 10 + 2000, 1 + 20 + 1000, 1 + 20 + 2000, 1 + 20 + 4000, 2 + 30 + 1000]
)
_ECAL_LAYER_T = (C.ECAL_BARREL_RMAX - C.ECAL_BARREL_RMIN) / C.ECAL_LAYERS
_HCAL_LAYER_T = (C.HCAL_BARREL_RMAX - C.HCAL_BARREL_RMIN) / C.HCAL_LAYERS
_EM_PDG = (11, 22)
_NEUTRINOS = (12, 14, 16)


@dataclass
class Hits:
    """Calorimeter and muon hits of all events, flat, sorted by (collection, event, cellID)."""

    collection: np.ndarray  # index into HIT_COLLECTIONS
    evt: np.ndarray
    cell_id: np.ndarray  # uint64
    energy: np.ndarray
    energy_error: np.ndarray
    time: np.ndarray
    position: np.ndarray  # (n, 3)
    type: np.ndarray
    # truth links, one row per (hit, contributing MC particle)
    link_hit: np.ndarray  # global hit row
    link_mc: np.ndarray  # global truth index
    link_energy: np.ndarray


@dataclass
class Spots:
    """Energy sub-deposits before readout."""

    mc: np.ndarray
    evt: np.ndarray
    energy: np.ndarray
    pos: np.ndarray  # (n, 3)
    region: np.ndarray  # 0 barrel, 1 endcap (entry region), 2 muon system
    time: np.ndarray


def resolution_em(energy: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
    """ECAL photon/electron resolution sigma(E) [GeV], CLICdet (Delphes card)."""
    stoch = np.where(abs_eta <= C.ECAL_ETA_SPLIT, C.ECAL_STOCH_BARREL, C.ECAL_STOCH_ENDCAP)
    e = np.maximum(energy, 0.0)
    return np.sqrt((C.ECAL_CONST * e) ** 2 + stoch**2 * e)


def resolution_had(energy: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
    """Hadron resolution sigma(E) [GeV]: Delphes CLICdet stochastic/constant terms, PAPAS noise term."""
    idx = np.clip(np.searchsorted(C.HAD_ETA_EDGES, abs_eta, side="right") - 1, 0, len(C.HAD_STOCH) - 1)
    e = np.maximum(energy, 0.0)
    return np.sqrt(C.HAD_NOISE**2 + C.HAD_STOCH[idx] ** 2 * e + (C.HAD_CONST[idx] * e) ** 2)


def _lognormal(mean: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Log-normal draw with the given mean and standard deviation (as Delphes smears calorimeter energies)."""
    mean = np.maximum(mean, 1e-9)
    s2 = np.log1p((sigma / mean) ** 2)
    return mean * np.exp(rng.normal(size=len(mean)) * np.sqrt(s2) - 0.5 * s2)


def _orthonormal(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to each row of u."""
    helper = np.where(np.abs(u[:, 2:3]) < 0.9, np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]))
    e1 = np.cross(u, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(u, e1)
    return e1, e2


def _spots_for(
    parent: np.ndarray,
    n_per: np.ndarray,
    depth: np.ndarray,
    lateral: np.ndarray,
    energy_per_parent: np.ndarray,
    entry: np.ndarray,
    axis: np.ndarray,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place spots: `depth` along the axis, `lateral` radius in a random transverse direction.

    `parent` indexes the particle arrays (entry, axis); `n_per` and `energy_per_parent` align with `parent`.
    """
    idx = np.repeat(parent, n_per)
    u = axis[idx]
    e1, e2 = _orthonormal(u)
    ang = rng.uniform(0, 2 * np.pi, len(idx))
    pos = (
        entry[idx]
        + u * depth[:, None]
        + lateral[:, None] * (np.cos(ang)[:, None] * e1 + np.sin(ang)[:, None] * e2)
    )
    w = rng.gamma(4.0, 1.0, len(idx)) if weights is None else weights
    # normalise the weights within each parent so that spot energies add up to the parent energy
    start = np.concatenate([[0], np.cumsum(n_per)])
    sums = np.add.reduceat(w, start[:-1]) if len(w) else np.zeros(0)
    sums = np.where(n_per > 0, sums, 1.0)
    energy = np.repeat(energy_per_parent, n_per) * w / np.repeat(sums, n_per)
    return idx, pos, energy


def _n_spots(energy: np.ndarray, params: tuple[float, float, int]) -> np.ndarray:
    n0, n1, nmax = params
    return np.clip(np.round(n0 + n1 * np.sqrt(np.maximum(energy, 0))), 2, nmax).astype(np.int64)


def make_spots(
    mc: np.ndarray,
    evt: np.ndarray,
    pdg: np.ndarray,
    energy: np.ndarray,
    entry: np.ndarray,
    axis: np.ndarray,
    barrel: np.ndarray,
    time: np.ndarray,
    rng: np.random.Generator,
) -> Spots:
    """Shower spots of the particles that reach the calorimeter front (entry point, direction, visible energy)."""
    abs_pdg = np.abs(pdg)
    eta = np.abs(np.arctanh(np.clip(axis[:, 2], -0.999999, 0.999999)))
    is_em = np.isin(abs_pdg, _EM_PDG)
    is_mu = abs_pdg == 13
    is_nu = np.isin(abs_pdg, _NEUTRINOS)
    is_had = ~(is_em | is_mu | is_nu)
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    # --- electromagnetic showers
    em = np.flatnonzero(is_em & (energy > 0))
    if len(em):
        e_meas = _lognormal(energy[em], resolution_em(energy[em], eta[em]), rng)
        n = _n_spots(e_meas, C.EM_SPOTS)
        tmax = np.maximum(np.log(np.maximum(energy[em], 2 * C.EM_EC_GEV) / C.EM_EC_GEV) - 0.5, 0.5)
        a = C.EM_B * tmax + 1.0
        depth = rng.gamma(np.repeat(a, n), 1.0 / C.EM_B) * C.ECAL_X0_MM
        lateral = 0.4 * C.EM_MOLIERE_MM * rng.exponential(1.0, n.sum())
        out.append(_spots_for(em, n, depth, lateral, e_meas, entry, axis, rng))

    # --- hadron showers with ECAL/HCAL sharing and MIP track before the shower start
    had = np.flatnonzero(is_had & (energy > 0))
    if len(had):
        e_meas = _lognormal(energy[had], resolution_had(energy[had], eta[had]), rng)
        start = rng.exponential(1.0, len(had))  # in lambda_I from the ECAL front; ECAL = 1 lambda_I
        in_ecal = start < 1.0
        f_ecal = np.where(in_ecal, rng.uniform(0, C.HAD_ECAL_FRACTION_MAX, len(had)), 0.0)
        mip = C.MIP_ECAL_GEV * np.minimum(start, 1.0)
        e_ecal = np.minimum(f_ecal * e_meas + mip, e_meas)
        e_hcal = e_meas - e_ecal
        # ECAL part: between the shower start and the ECAL back, plus MIP-like spots before it
        n_e = np.where(e_ecal > 0, _n_spots(e_ecal, C.HAD_SPOTS) // 2 + 1, 0)
        lo = np.repeat(np.minimum(start, 1.0), n_e) * C.ECAL_LAMBDA_MM
        depth = lo + rng.uniform(0, 1, n_e.sum()) * (C.ECAL_LAMBDA_MM - lo)
        lateral = 0.4 * C.HAD_CORE_MM_ECAL * rng.exponential(1.0, n_e.sum())
        out.append(_spots_for(had, n_e, depth, lateral, e_ecal, entry, axis, rng))
        # HCAL part: profile Gamma(2) in lambda after the HCAL front (or after the start if deeper)
        n_h = np.where(e_hcal > 0, _n_spots(e_hcal, C.HAD_SPOTS), 0)
        gap = C.HCAL_BARREL_RMIN - C.ECAL_BARREL_RMIN
        base = np.repeat(gap + np.maximum(start - 1.0, 0.0) * C.HCAL_LAMBDA_MM, n_h)
        depth = base + rng.gamma(2.0, 0.45, n_h.sum()) * C.HCAL_LAMBDA_MM
        halo = rng.random(n_h.sum()) < C.HAD_HALO_FRACTION
        scale = np.where(halo, C.HAD_HALO_SCALE, 1.0) * 0.4 * C.HAD_CORE_MM_HCAL
        lateral = scale * rng.exponential(1.0, n_h.sum())
        out.append(_spots_for(had, n_h, depth, lateral, e_hcal, entry, axis, rng))

    # --- muons: MIP spots every few layers through ECAL and HCAL (Landau-like fluctuations via Gamma weights)
    mu = np.flatnonzero(is_mu)
    if len(mu):
        for n_seg, total, lo, hi in (
            (10, C.MIP_ECAL_GEV, 0.0, C.ECAL_BARREL_RMAX - C.ECAL_BARREL_RMIN),
            (
                15,
                C.MIP_HCAL_GEV,
                C.HCAL_BARREL_RMIN - C.ECAL_BARREL_RMIN,
                C.HCAL_BARREL_RMAX - C.ECAL_BARREL_RMIN,
            ),
        ):
            n = np.full(len(mu), n_seg)
            frac = (np.arange(n_seg) + 0.5) / n_seg
            depth = np.tile(lo + frac * (hi - lo), len(mu))
            e_tot = np.minimum(np.full(len(mu), total), energy[mu])
            out.append(
                _spots_for(
                    mu,
                    n,
                    depth,
                    np.zeros(n.sum()),
                    e_tot,
                    entry,
                    axis,
                    rng,
                    weights=rng.gamma(8.0, 1.0, n.sum()),
                )
            )

    if out:
        idx = np.concatenate([o[0] for o in out])
        pos = np.concatenate([o[1] for o in out])
        e = np.concatenate([o[2] for o in out])
    else:
        idx, pos, e = np.zeros(0, dtype=np.int64), np.zeros((0, 3)), np.zeros(0)
    region = np.where(barrel[idx], 0, 1)
    spots = Spots(mc=mc[idx], evt=evt[idx], energy=e, pos=pos, region=region, time=time[idx])
    return concat_spots(spots, _muon_system_spots(mc, evt, pdg, energy, entry, axis, time, rng))


def _n_spots_full(energy: np.ndarray, per_gev: float) -> np.ndarray:
    return np.clip(np.round(per_gev * np.maximum(energy, 0)), 2, C.FULL_MAX_SPOTS).astype(np.int64)


def _layer_spots(
    parent: np.ndarray,
    n_layers: np.ndarray,
    first_depth: float,
    layer_mm: float,
    total: np.ndarray,
    entry: np.ndarray,
    axis: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One minimum-ionising spot per layer crossed: `n_layers[k]` spots at the layer centres from `first_depth`
    along the axis, sharing `total[k]` with Landau-like fluctuations."""
    some = n_layers > 0
    parent, n_layers, total = parent[some], n_layers[some], total[some]
    start = chunk_starts(n_layers)
    layer = np.arange(int(n_layers.sum())) - np.repeat(start, n_layers)
    depth = first_depth + (layer + 0.5) * layer_mm
    weights = rng.gamma(C.FULL_MIP_WEIGHT_SHAPE, 1.0, len(depth))
    return _spots_for(parent, n_layers, depth, np.zeros(len(depth)), total, entry, axis, rng, weights=weights)


def chunk_starts(counts: np.ndarray) -> np.ndarray:
    """Start of each group in a flat array of groups of `counts` rows."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else counts


def make_spots_full(
    mc: np.ndarray,
    evt: np.ndarray,
    pdg: np.ndarray,
    energy: np.ndarray,
    entry: np.ndarray,
    axis: np.ndarray,
    barrel: np.ndarray,
    time: np.ndarray,
    rng: np.random.Generator,
) -> Spots:
    """`make_spots` at full hit detail (`fastsim.hit_detail: full`): the same energies, sharing and profiles,
    sampled finely enough for full-simulation hit multiplicities and hit energies.

    Spot counts grow with the deposited energy (FULL_*_SPOTS_PER_GEV); electromagnetic showers get a wider halo;
    a hadron leaves one MIP spot per ECAL layer before its shower starts and a muon one per ECAL and HCAL layer;
    a spot's time is the entry time plus its depth / c.
    """
    abs_pdg = np.abs(pdg)
    eta = np.abs(np.arctanh(np.clip(axis[:, 2], -0.999999, 0.999999)))
    is_em = np.isin(abs_pdg, _EM_PDG)
    is_mu = abs_pdg == 13
    is_had = ~(is_em | is_mu | np.isin(abs_pdg, _NEUTRINOS))
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    depths: list[np.ndarray] = []

    def add(spots: tuple[np.ndarray, np.ndarray, np.ndarray], depth: np.ndarray) -> None:
        out.append(spots)
        depths.append(depth)

    em = np.flatnonzero(is_em & (energy > 0))
    if len(em):
        e_meas = _lognormal(energy[em], resolution_em(energy[em], eta[em]), rng)
        n = _n_spots_full(e_meas, C.FULL_EM_SPOTS_PER_GEV)
        tmax = np.maximum(np.log(np.maximum(energy[em], 2 * C.EM_EC_GEV) / C.EM_EC_GEV) - 0.5, 0.5)
        depth = rng.gamma(np.repeat(C.EM_B * tmax + 1.0, n), 1.0 / C.EM_B) * C.ECAL_X0_MM
        halo = rng.random(n.sum()) < C.FULL_EM_HALO_FRACTION
        lateral = (
            np.where(halo, C.FULL_EM_HALO_SCALE, 1.0) * 0.4 * C.EM_MOLIERE_MM * rng.exponential(1.0, n.sum())
        )
        weights = rng.gamma(C.FULL_SPOT_WEIGHT_SHAPE, 1.0, n.sum())
        add(_spots_for(em, n, depth, lateral, e_meas, entry, axis, rng, weights=weights), depth)

    had = np.flatnonzero(is_had & (energy > 0))
    if len(had):
        e_meas = _lognormal(energy[had], resolution_had(energy[had], eta[had]), rng)
        start = rng.exponential(1.0, len(had))  # in lambda_I from the ECAL front; ECAL = 1 lambda_I
        f_ecal = np.where(start < 1.0, rng.uniform(0, C.HAD_ECAL_FRACTION_MAX, len(had)), 0.0)
        e_ecal = np.minimum(f_ecal * e_meas + C.MIP_ECAL_GEV * np.minimum(start, 1.0), e_meas)
        e_hcal = e_meas - e_ecal
        # MIP track through the ECAL layers before the shower start, then the shower in the ECAL
        n_mip = np.floor(np.minimum(start, 1.0) * C.ECAL_LAYERS).astype(np.int64)
        e_mip = np.minimum(n_mip * (C.MIP_ECAL_GEV / C.ECAL_LAYERS), e_ecal)
        spots = _layer_spots(had, n_mip, 0.0, _ECAL_LAYER_T, e_mip, entry, axis, rng)
        add(spots, np.linalg.norm(spots[1] - entry[spots[0]], axis=1))
        e_shower = e_ecal - e_mip
        sh = e_shower > 0
        n_e = _n_spots_full(e_shower[sh], C.FULL_HAD_SPOTS_PER_GEV)
        lo = np.repeat(np.minimum(start[sh], 1.0), n_e) * C.ECAL_LAMBDA_MM
        depth = lo + rng.uniform(0, 1, n_e.sum()) * (C.ECAL_LAMBDA_MM - lo)
        lateral = 0.4 * C.HAD_CORE_MM_ECAL * rng.exponential(1.0, n_e.sum())
        weights = rng.gamma(C.FULL_SPOT_WEIGHT_SHAPE, 1.0, n_e.sum())
        add(_spots_for(had[sh], n_e, depth, lateral, e_shower[sh], entry, axis, rng, weights=weights), depth)
        sh = e_hcal > 0
        had, start, e_hcal = had[sh], start[sh], e_hcal[sh]
        n_h = _n_spots_full(e_hcal, C.FULL_HAD_SPOTS_PER_GEV)
        gap = C.HCAL_BARREL_RMIN - C.ECAL_BARREL_RMIN
        base = np.repeat(gap + np.maximum(start - 1.0, 0.0) * C.HCAL_LAMBDA_MM, n_h)
        depth = base + rng.gamma(2.0, 0.45, n_h.sum()) * C.HCAL_LAMBDA_MM
        halo = rng.random(n_h.sum()) < C.HAD_HALO_FRACTION
        lateral = (
            np.where(halo, C.HAD_HALO_SCALE, 1.0) * 0.4 * C.HAD_CORE_MM_HCAL * rng.exponential(1.0, n_h.sum())
        )
        weights = rng.gamma(C.FULL_SPOT_WEIGHT_SHAPE, 1.0, n_h.sum())
        add(_spots_for(had, n_h, depth, lateral, e_hcal, entry, axis, rng, weights=weights), depth)

    mu = np.flatnonzero(is_mu)
    if len(mu):
        for layers, total, first, thickness in (
            (C.ECAL_LAYERS, C.MIP_ECAL_GEV, 0.0, _ECAL_LAYER_T),
            (C.HCAL_LAYERS, C.MIP_HCAL_GEV, C.HCAL_BARREL_RMIN - C.ECAL_BARREL_RMIN, _HCAL_LAYER_T),
        ):
            n = np.full(len(mu), layers)
            spots = _layer_spots(mu, n, first, thickness, np.minimum(total, energy[mu]), entry, axis, rng)
            add(spots, np.linalg.norm(spots[1] - entry[spots[0]], axis=1))

    if out:
        idx = np.concatenate([o[0] for o in out])
        pos = np.concatenate([o[1] for o in out])
        e = np.concatenate([o[2] for o in out])
        depth = np.concatenate(depths)
    else:
        idx, pos, e, depth = np.zeros(0, dtype=np.int64), np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    region = np.where(barrel[idx], 0, 1)
    t = time[idx] + depth / C.C_MM_PER_NS
    spots = Spots(mc=mc[idx], evt=evt[idx], energy=e, pos=pos, region=region, time=t)
    return concat_spots(spots, _muon_system_spots(mc, evt, pdg, energy, entry, axis, time, rng))


def noise_spots(n_events: int, mean_per_event: float, rng: np.random.Generator) -> Spots:
    """Electronic-noise deposits without truth (`mc` = -1): Poisson(mean) per event in random ECAL/HCAL cells,
    in proportion to the cell counts of the barrels and endcaps, each above its cell's threshold."""
    n = rng.poisson(mean_per_event, n_events) if mean_per_event > 0 else np.zeros(n_events, dtype=np.int64)
    evt = np.repeat(np.arange(n_events), n)
    total = len(evt)
    # (region, calorimeter, front, back, inner, outer, cell, layers, threshold) per part; barrel extents in r
    # and half-length z, endcap extents in |z| and r.
    parts = (
        (0, C.ECAL_BARREL_RMIN, C.ECAL_BARREL_RMAX, 0.0, C.ECAL_BARREL_HALF_Z, C.ECAL_CELL, C.ECAL_LAYERS,
         C.ECAL_HIT_THRESHOLD),
        (1, C.ECAL_ENDCAP_ZMIN, C.ECAL_ENDCAP_ZMAX, C.ECAL_ENDCAP_RMIN, C.ECAL_ENDCAP_RMAX, C.ECAL_CELL,
         C.ECAL_LAYERS, C.ECAL_HIT_THRESHOLD),
        (0, C.HCAL_BARREL_RMIN, C.HCAL_BARREL_RMAX, 0.0, C.HCAL_BARREL_HALF_Z, C.HCAL_CELL, C.HCAL_LAYERS,
         C.HCAL_HIT_THRESHOLD),
        (1, C.HCAL_ENDCAP_ZMIN, C.HCAL_ENDCAP_ZMAX, C.HCAL_ENDCAP_RMIN, C.HCAL_ENDCAP_RMAX, C.HCAL_CELL,
         C.HCAL_LAYERS, C.HCAL_HIT_THRESHOLD),
    )  # fmt: skip
    # cells = layer area / cell area x layers (barrel: cylinder at mid-depth; endcap: both sides' annuli)
    area = np.array([
        2 * np.pi * 0.5 * (front + back) * 2 * outer if region == 0 else 2 * np.pi * (outer**2 - inner**2)
        for region, front, back, inner, outer, *_ in parts
    ])  # fmt: skip
    cells = np.array([a / part[5] ** 2 * part[6] for a, part in zip(area, parts, strict=True)])
    which = rng.choice(len(parts), size=total, p=cells / cells.sum())
    pos = np.zeros((total, 3))
    region = np.zeros(total, dtype=np.int64)
    energy = np.zeros(total)
    u, v, w = rng.random(total), rng.random(total), rng.random(total)
    side = np.where(rng.random(total) < 0.5, -1.0, 1.0)
    for k, (reg, front, back, inner, outer, _cell, layers, threshold) in enumerate(parts):
        sel = which == k
        depth = front + (np.floor(u[sel] * layers) + 0.5) * (back - front) / layers
        phi = 2 * np.pi * v[sel]
        if reg == 0:
            pos[sel] = np.column_stack([depth * np.cos(phi), depth * np.sin(phi), (2 * w[sel] - 1) * outer])
        else:
            r = np.sqrt(inner**2 + w[sel] * (outer**2 - inner**2))
            pos[sel] = np.column_stack([r * np.cos(phi), r * np.sin(phi), side[sel] * depth])
        region[sel] = reg
        mip = C.MIP_ECAL_GEV / C.ECAL_LAYERS if k < 2 else C.MIP_HCAL_GEV / C.HCAL_LAYERS
        energy[sel] = threshold * (1.0 + 1e-6) + rng.exponential(C.NOISE_TAIL_MIP * mip, int(sel.sum()))
    time = rng.uniform(0.0, C.NOISE_WINDOW_NS, total)
    return Spots(mc=np.full(total, -1), evt=evt, energy=energy, pos=pos, region=region, time=time)


def _muon_system_spots(mc, evt, pdg, energy, entry, axis, time, rng) -> Spots:
    """Hits of muons above MUON_MIN_P in the yoke layers along their (straight) direction."""
    sel = np.flatnonzero((np.abs(pdg) == 13) & (energy > C.MUON_MIN_P))
    pos_list, idx_list = [], []
    u = axis[sel]
    p0 = entry[sel]
    ut = np.hypot(u[:, 0], u[:, 1])
    for radius in C.MUON_BARREL_RADII:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (radius - np.hypot(p0[:, 0], p0[:, 1])) / ut
        pos = p0 + u * t[:, None]
        ok = np.isfinite(t) & (t > 0) & (np.abs(pos[:, 2]) < C.MUON_ENDCAP_Z[0])
        pos_list.append(pos[ok])
        idx_list.append(sel[ok])
    for z in C.MUON_ENDCAP_Z:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (np.sign(u[:, 2]) * z - p0[:, 2]) / u[:, 2]
        pos = p0 + u * t[:, None]
        ok = np.isfinite(t) & (t > 0) & (np.hypot(pos[:, 0], pos[:, 1]) < C.MUON_BARREL_RADII[0])
        pos_list.append(pos[ok])
        idx_list.append(sel[ok])
    idx = np.concatenate(idx_list) if idx_list else np.zeros(0, dtype=np.int64)
    pos = np.concatenate(pos_list) if pos_list else np.zeros((0, 3))
    e = C.MIP_MUON_HIT_GEV * rng.gamma(8.0, 1.0 / 8.0, len(idx))
    return Spots(mc=mc[idx], evt=evt[idx], energy=e, pos=pos, region=np.full(len(idx), 2), time=time[idx])


def concat_spots(a: Spots, b: Spots) -> Spots:
    return Spots(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in Spots.__dataclass_fields__))


def select_spots(spots: Spots, rows: slice | np.ndarray) -> Spots:
    return Spots(*(getattr(spots, f)[rows] for f in Spots.__dataclass_fields__))


def merge_hits(parts: list[Hits]) -> Hits:
    """Hits digitised in blocks of consecutive events -> one Hits sorted by (collection, event, cellID), links
    by hit, as one `digitise` call over all events gives."""
    fields = [f for f in Hits.__dataclass_fields__ if not f.startswith("link_")]
    hit = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
    shift = np.cumsum([0] + [len(p.energy) for p in parts[:-1]])
    link_hit = np.concatenate([p.link_hit + k for p, k in zip(parts, shift, strict=True)])
    order = np.argsort(hit["collection"], kind="stable")  # blocks are in event order already
    new_index = np.empty(len(order), dtype=np.int64)
    new_index[order] = np.arange(len(order))
    link_hit = new_index[link_hit]
    link_order = np.argsort(link_hit, kind="stable")
    return Hits(
        **{f: v[order] for f, v in hit.items()},
        link_hit=link_hit[link_order],
        link_mc=np.concatenate([p.link_mc for p in parts])[link_order],
        link_energy=np.concatenate([p.link_energy for p in parts])[link_order],
    )


def _ring_cells(radius: np.ndarray, cell: float) -> np.ndarray:
    return np.maximum(np.floor(2 * np.pi * radius / cell), 1.0)


def digitise(spots: Spots) -> Hits:
    """Sum spots into cells, apply thresholds, keep per-particle truth energies."""
    x, y, z = spots.pos[:, 0], spots.pos[:, 1], spots.pos[:, 2]
    r = np.hypot(x, y)
    az = np.abs(z)
    barrel = spots.region == 0
    muon = spots.region == 2
    # depth coordinate: radius in the barrel, |z| in the endcap
    depth = np.where(barrel, r, az)
    ecal_front = np.where(barrel, C.ECAL_BARREL_RMIN, C.ECAL_ENDCAP_ZMIN)
    hcal_front = np.where(barrel, C.HCAL_BARREL_RMIN, C.HCAL_ENDCAP_ZMIN)
    ecal_back = np.where(barrel, C.ECAL_BARREL_RMAX, C.ECAL_ENDCAP_ZMAX)
    in_ecal = depth < 0.5 * (ecal_back + hcal_front)
    layer = np.where(
        in_ecal,
        np.clip(np.floor((depth - ecal_front) / _ECAL_LAYER_T), 0, C.ECAL_LAYERS - 1),
        np.clip(np.floor((depth - hcal_front) / _HCAL_LAYER_T), 0, C.HCAL_LAYERS - 1),
    ).astype(np.int64)
    cell = np.where(in_ecal, C.ECAL_CELL, C.HCAL_CELL)
    layer_depth = np.where(
        in_ecal, ecal_front + (layer + 0.5) * _ECAL_LAYER_T, hcal_front + (layer + 0.5) * _HCAL_LAYER_T
    )
    coll = np.where(
        muon,
        MUON,
        np.where(
            in_ecal,
            np.where(barrel, ECAL_BARREL, ECAL_ENDCAP),
            np.where(barrel, np.where(az > C.HCAL_BARREL_HALF_Z, HCAL_OTHER, HCAL_BARREL), HCAL_ENDCAP),
        ),
    )
    # muon system: a 30 mm grid on the muon layer (barrel: r-phi x z; endcap: x-y)
    mu_barrel = muon & (r >= C.MUON_BARREL_RADII[0] - 1.0)
    cell = np.where(muon, C.MUON_CELL, cell)
    layer = np.where(muon, np.round(np.where(mu_barrel, r, az) / 100.0).astype(np.int64), layer)
    layer_depth = np.where(muon, np.where(mu_barrel, r, az), layer_depth)
    use_phi = np.where(muon, mu_barrel, barrel)
    n_phi = _ring_cells(layer_depth, cell)
    phi = np.arctan2(y, x)
    i_a = np.where(use_phi, np.floor((phi + np.pi) / (2 * np.pi) * n_phi), np.floor(x / cell)).astype(
        np.int64
    )
    i_b = np.where(use_phi, np.floor(z / cell), np.floor(y / cell)).astype(np.int64)
    side = np.where(use_phi, 0, np.where(z > 0, 1, 2))
    cell_id = (
        coll.astype(np.uint64)
        | (side.astype(np.uint64) << np.uint64(4))
        | (layer.astype(np.uint64) << np.uint64(6))
        | ((i_a + (1 << 23)).astype(np.uint64) << np.uint64(14))
        | ((i_b + (1 << 23)).astype(np.uint64) << np.uint64(38))
    )
    # cell centres
    phi_c = (i_a + 0.5) / n_phi * 2 * np.pi - np.pi
    cx = np.where(use_phi, layer_depth * np.cos(phi_c), (i_a + 0.5) * cell)
    cy = np.where(use_phi, layer_depth * np.sin(phi_c), (i_b + 0.5) * cell)
    cz = np.where(use_phi, (i_b + 0.5) * cell, np.sign(z) * layer_depth)

    # --- sum per (collection, event, cell): sort once, segment boundaries
    # (collection, event) packed into one key: the same order as sorting by both, one sort key fewer
    coll_evt = (coll.astype(np.int64) << 40) | spots.evt.astype(np.int64)
    order = np.lexsort((spots.mc, cell_id, coll_evt))
    k_coll, k_evt, k_cell, k_mc = coll[order], spots.evt[order], cell_id[order], spots.mc[order]
    k_coll_evt = coll_evt[order]
    new_hit = np.ones(len(order), dtype=bool)
    new_hit[1:] = (k_coll_evt[1:] != k_coll_evt[:-1]) | (k_cell[1:] != k_cell[:-1])
    hit_of_spot = np.cumsum(new_hit) - 1
    n_hits = int(hit_of_spot[-1] + 1) if len(order) else 0
    e_sorted = spots.energy[order]
    hit_energy = np.bincount(hit_of_spot, weights=e_sorted, minlength=n_hits)
    first = np.flatnonzero(new_hit)
    hit_time = np.full(n_hits, np.inf)
    np.minimum.at(hit_time, hit_of_spot, spots.time[order])
    # per (hit, mc) truth energy
    new_link = new_hit.copy()
    new_link[1:] |= k_mc[1:] != k_mc[:-1]
    link_of_spot = np.cumsum(new_link) - 1
    n_links = int(link_of_spot[-1] + 1) if len(order) else 0
    link_energy = np.bincount(link_of_spot, weights=e_sorted, minlength=n_links)
    link_first = np.flatnonzero(new_link)
    link_hit = hit_of_spot[link_first]
    link_mc = k_mc[link_first]
    truth = link_mc >= 0  # noise deposits (mc = -1) make hits without truth links
    link_hit, link_mc, link_energy = link_hit[truth], link_mc[truth], link_energy[truth]

    h_coll = k_coll[first]
    threshold = np.select(
        [h_coll <= ECAL_ENDCAP, h_coll == MUON], [C.ECAL_HIT_THRESHOLD, 0.0], C.HCAL_HIT_THRESHOLD
    )
    keep = hit_energy >= threshold
    new_index = np.cumsum(keep) - 1
    link_keep = keep[link_hit]
    src = order[first][keep]
    stoch = np.where(h_coll[keep] <= ECAL_ENDCAP, C.ECAL_STOCH_BARREL, 0.5)
    e_kept = hit_energy[keep]
    return Hits(
        collection=h_coll[keep],
        evt=k_evt[first][keep],
        cell_id=k_cell[first][keep],
        energy=e_kept,
        energy_error=stoch * np.sqrt(e_kept),
        time=hit_time[keep],
        position=np.column_stack([cx[src], cy[src], cz[src]]),
        type=(_HIT_TYPE_BASE[h_coll[keep]] + 10000 * layer[src]).astype(np.int32),
        link_hit=new_index[link_hit[link_keep]],
        link_mc=link_mc[link_keep],
        link_energy=link_energy[link_keep],
    )


def hit_collection_names() -> tuple[str, ...]:
    return HIT_COLLECTIONS
