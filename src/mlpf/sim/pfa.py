"""Rule-based baseline particle flow (PandoraPFOs), PAPAS / Delphes-EFlow style, vectorised over events.

Rules (thresholds in mlpf.sim.constants, documented in docs/fastsim.md):
1. Link: each track's extrapolated position at the ECAL front is binned on the clustering grid; it links to the
   cluster owning that grid cell, else to the most energetic cluster in the 8 neighbouring cells.
2. Every track becomes a charged PFO with the track momentum: a muon if muon-system hits lie along it
   (p > MUON_MIN_P), an electron if its cluster is electromagnetic (ECAL fraction > PF_EM_FRACTION) with
   E_ecal / p > PF_ELECTRON_EOP_MIN, a charged pion otherwise.
3. For a cluster with linked tracks, the excess E_cluster - sum p is a neutral PFO when it exceeds
   PF_NEUTRAL_SIGMA x sqrt(sigma_cal(sum p)^2 + sum sigma_p^2) (PAPAS) and the photon / neutral hadron
   minimum energy: a photon if the cluster is electromagnetic, a neutral hadron otherwise.
4. Unlinked clusters become photons (electromagnetic, E > PF_PHOTON_MIN_E) or neutral hadrons
   (E > PF_NEUTRAL_HADRON_MIN_E), except hadronic fragments within FRAGMENT_RADIUS_MM of a track-linked cluster
   whose energy fits into that cluster's deficit (sum p - E_cluster + PF_NEUTRAL_SIGMA sigma): those are counted
   as part of the charged shower.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlpf.sim import constants as C
from mlpf.sim.calorimeter import MUON, Hits, resolution_em, resolution_had
from mlpf.sim.clustering import Clusters, best_neighbour, grid_key, lookup, neighbour_keys, project_to_grid
from mlpf.sim.tracking import Tracks

MUON_MATCH_ANGLE = 0.05  # rad: muon-system hits within this angle of the extrapolated track


@dataclass
class PFOs:
    evt: np.ndarray
    pdg: np.ndarray
    charge: np.ndarray
    energy: np.ndarray
    momentum: np.ndarray  # (n, 3)
    mass: np.ndarray
    track: np.ndarray  # track row or -1
    cluster: np.ndarray  # cluster row or -1


def link_tracks(tracks: Tracks, clusters: Clusters) -> np.ndarray:
    """Cluster row linked to each track (-1 if none)."""
    n = len(tracks.evt)
    point = tracks.calo_point
    ok = np.all(np.isfinite(point), axis=1)
    link = np.full(n, -1)
    if not ok.any() or len(clusters.evt) == 0:
        return link
    sel = np.flatnonzero(ok)
    evt = tracks.evt[sel]
    region, i, j, n_phi = project_to_grid(evt, point[sel])
    own = lookup(clusters.cells, grid_key(evt, region, i, j))
    own_cl = np.where(own >= 0, clusters.cell_cluster[np.maximum(own, 0)], -1)
    nb = lookup(clusters.cells, neighbour_keys(evt, region, i, j, n_phi))
    nb_cl = np.where(nb >= 0, clusters.cell_cluster[np.maximum(nb, 0)], -1)
    nb_e = np.where(nb_cl >= 0, clusters.energy[np.maximum(nb_cl, 0)], -1.0)
    best_nb = nb_cl[np.arange(len(sel)), np.argmax(nb_e, axis=1)]
    link[sel] = np.where(own_cl >= 0, own_cl, best_nb)
    return link


def _muon_tagged(tracks: Tracks, hits: Hits) -> np.ndarray:
    """Tracks with muon-system hits within MUON_MATCH_ANGLE of their calorimeter-face direction."""
    n = len(tracks.evt)
    tagged = np.zeros(n, dtype=bool)
    mu = np.flatnonzero(hits.collection == MUON)
    if len(mu) == 0 or n == 0:
        return tagged
    step = MUON_MATCH_ANGLE

    def keys(evt, pos):
        theta = np.arctan2(np.hypot(pos[:, 0], pos[:, 1]), pos[:, 2])
        phi = np.arctan2(pos[:, 1], pos[:, 0])
        return evt, np.floor(theta / step).astype(np.int64), np.floor((phi + np.pi) / step).astype(np.int64)

    e_h, t_h, p_h = keys(hits.evt[mu], hits.position[mu])
    hit_keys = np.unique(grid_key(e_h, np.zeros_like(e_h), t_h, p_h))
    # expected position in the first muon layer: straight extension of the track from the calorimeter face
    calo = np.nan_to_num(tracks.calo_point)
    phi_c = tracks.states["phi"][:, 3]
    tanl = tracks.states["tanLambda"][:, 3]
    u = np.column_stack([np.cos(phi_c), np.sin(phi_c), tanl]) / np.sqrt(1 + tanl**2)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ut = np.hypot(u[:, 0], u[:, 1])
        t_b = (C.MUON_BARREL_RADII[0] - np.hypot(calo[:, 0], calo[:, 1])) / ut
        t_e = (np.sign(u[:, 2]) * C.MUON_ENDCAP_Z[0] - calo[:, 2]) / u[:, 2]
    t_b = np.where(np.isfinite(t_b) & (t_b > 0), t_b, np.inf)
    t_e = np.where(np.isfinite(t_e) & (t_e > 0), t_e, np.inf)
    t = np.minimum(t_b, t_e)
    point = calo + u * np.where(np.isfinite(t), t, 0.0)[:, None]
    e_t, t_t, p_t = keys(tracks.evt, point)
    n_phi = int(np.ceil(2 * np.pi / step))
    for dt in (-1, 0, 1):
        for dp in (-1, 0, 1):
            q = grid_key(e_t, np.zeros_like(e_t), t_t + dt, (p_t + dp) % n_phi)
            tagged |= lookup(hit_keys, q) >= 0
    return tagged & (tracks.p > C.MUON_MIN_P) & np.all(np.isfinite(tracks.calo_point), axis=1)


def particle_flow(tracks: Tracks, clusters: Clusters, hits: Hits) -> tuple[PFOs, np.ndarray]:
    """Baseline PFOs and the track -> cluster links used."""
    link = link_tracks(tracks, clusters)
    n_cl = len(clusters.evt)
    linked = link >= 0
    cl_e = clusters.energy
    em_frac = clusters.energy_ecal / np.maximum(cl_e, 1e-12)
    is_em = em_frac > C.PF_EM_FRACTION

    # --- charged PFOs
    muon = _muon_tagged(tracks, hits)
    lc = np.maximum(link, 0)
    eop = np.where(linked, clusters.energy_ecal[lc] / np.maximum(tracks.p, 1e-9), 0.0)
    electron = linked & is_em[lc] & (eop > C.PF_ELECTRON_EOP_MIN) & ~muon
    q = tracks.charge.astype(np.int64)
    pdg = np.where(muon, -13 * q, np.where(electron, -11 * q, 211 * q))
    mass = np.where(muon, C.MUON_MASS, np.where(electron, C.ELECTRON_MASS, C.PION_MASS))
    ch_energy = np.sqrt(tracks.p**2 + mass**2)

    # --- neutral excess on linked clusters
    sum_p = np.bincount(link[linked], weights=tracks.p[linked], minlength=n_cl)
    sum_var = np.bincount(link[linked], weights=tracks.sigma_p[linked] ** 2, minlength=n_cl)
    n_tracks = np.bincount(link[linked], minlength=n_cl)
    abs_eta = np.abs(
        np.arcsinh(clusters.position[:, 2] / np.maximum(np.hypot(*clusters.position[:, :2].T), 1e-9))
    )
    sigma_cal = np.where(is_em, resolution_em(sum_p, abs_eta), resolution_had(sum_p, abs_eta))
    excess = cl_e - sum_p
    significant = excess > C.PF_NEUTRAL_SIGMA * np.sqrt(sigma_cal**2 + sum_var)
    e_min = np.where(is_em, C.PF_PHOTON_MIN_E, C.PF_NEUTRAL_HADRON_MIN_E)
    # Charged-fragment absorption (PAPAS blocks / Pandora fragment removal): an unlinked hadronic cluster next to
    # a track-linked cluster that lacks energy compared with its tracks is counted as part of that shower when
    # its energy fits into the deficit (within PF_NEUTRAL_SIGMA).
    unlinked = n_tracks == 0
    partner = best_neighbour(clusters.evt, clusters.position, sum_p - cl_e, ~unlinked, C.FRAGMENT_RADIUS_MM)
    pc = np.maximum(partner, 0)
    deficit = sum_p[pc] - cl_e[pc]
    allowance = C.PF_NEUTRAL_SIGMA * np.sqrt(sigma_cal[pc] ** 2 + sum_var[pc])
    absorbed = unlinked & ~is_em & (partner >= 0) & (cl_e < deficit + allowance)
    neutral_e = np.where(n_tracks > 0, np.where(significant, excess, 0.0), np.where(absorbed, 0.0, cl_e))
    make_neutral = neutral_e > e_min
    nsel = np.flatnonzero(make_neutral)
    n_pdg = np.where(is_em[nsel], 22, 2112)
    n_mass = np.where(is_em[nsel], 0.0, C.NEUTRON_MASS)
    n_e = np.maximum(neutral_e[nsel], n_mass)
    n_p = np.sqrt(np.maximum(n_e**2 - n_mass**2, 0.0))
    direction = (
        clusters.position[nsel] / np.maximum(np.linalg.norm(clusters.position[nsel], axis=1), 1e-9)[:, None]
    )

    evt = np.concatenate([tracks.evt, clusters.evt[nsel]])
    kind = np.concatenate([np.zeros(len(tracks.evt)), np.ones(len(nsel))])
    order = np.lexsort((np.arange(len(evt)), kind, evt))
    pfos = PFOs(
        evt=evt[order],
        pdg=np.concatenate([pdg, n_pdg]).astype(np.int32)[order],
        charge=np.concatenate([q.astype(np.float64), np.zeros(len(nsel))])[order],
        energy=np.concatenate([ch_energy, n_e])[order],
        momentum=np.concatenate([tracks.momentum, direction * n_p[:, None]])[order],
        mass=np.concatenate([mass, n_mass])[order],
        track=np.concatenate([np.arange(len(tracks.evt)), np.full(len(nsel), -1)])[order],
        cluster=np.concatenate([link, nsel])[order],
    )
    return pfos, link
