"""The steps of parsing a chunk of events that both element levels share (`dataset.elements`).

Per chunk the reader's awkward arrays are flattened once; every element, particle and link then gets a
chunk-global index (an index never repeats across events), so features, visibility, association and
candidate placement run as numpy operations over all events of the chunk at once. The cluster level
(mlpf.data.parse.process_chunk) and the hit level (mlpf.data.hits.process_chunk_hits) differ only in their
calorimeter elements: MC particles, tracks, truth links, target and candidate rows, the per-event assembly and
the jet/MET truth come from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from mlpf.data import features, targets
from mlpf.io.edm4hep.reader import EventCollections


def offsets(counts: np.ndarray) -> np.ndarray:
    """[0, c0, c0 + c1, ...]: where each event's objects start in a flat array."""
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def to_numpy(array: ak.Array) -> np.ndarray:
    return ak.to_numpy(array)


def counts_of(array: ak.Array) -> np.ndarray:
    """Objects per event of a [event][object] array."""
    return to_numpy(ak.num(array, axis=1))


def flat_relation(nested: ak.Array, owner_offsets: np.ndarray, target_offsets: np.ndarray):
    """[event][object][k] local indices -> (global owner, global target) pairs, dropping unresolved (-1)."""
    per_object = ak.flatten(nested, axis=1)  # [object][k]
    counts = to_numpy(ak.num(per_object, axis=1))
    local = to_numpy(ak.flatten(per_object, axis=1))
    owner = np.repeat(np.arange(len(counts)), counts)
    object_event = np.repeat(np.arange(len(owner_offsets) - 1), np.diff(owner_offsets))
    owner_event = np.repeat(object_event, counts)
    ok = local >= 0
    return owner[ok], local[ok] + target_offsets[owner_event[ok]]


def first_of(
    nested: ak.Array, owner_offsets: np.ndarray, target_offsets: np.ndarray, n_owners: int
) -> np.ndarray:
    """Global index of each owner's first resolved related object (-1 if none)."""
    owner, target = flat_relation(nested, owner_offsets, target_offsets)
    first = np.full(n_owners, -1, dtype=np.int64)
    uniq, idx = np.unique(owner, return_index=True)
    first[uniq] = target[idx]
    return first


@dataclass
class Particles:
    """The MC particles of a chunk, flat."""

    offsets: np.ndarray  # per event
    event: np.ndarray
    pdg: np.ndarray
    status: np.ndarray
    charge: np.ndarray
    p4: np.ndarray  # [n, 4] (px, py, pz, E)
    credit: np.ndarray  # the particle that receives each particle's truth links (targets.credit_map)

    @property
    def energy(self) -> np.ndarray:
        return self.p4[:, 3]

    def __len__(self) -> int:
        return len(self.pdg)


def particles(ev: EventCollections, definition: targets.Visibility) -> Particles:
    n_mc = counts_of(ev.mc)
    off = offsets(n_mc)
    mc = ak.flatten(ev.mc, axis=1)
    pdg, status = to_numpy(mc.pdg), to_numpy(mc.generator_status)
    p4 = np.stack([to_numpy(mc.px), to_numpy(mc.py), to_numpy(mc.pz), to_numpy(mc.energy)], axis=1)
    credit = np.arange(len(pdg))
    if definition.credit_daughters:
        first_parent = first_of(ev.mc.parents, off, off, len(pdg))
        credit = targets.credit_map(status, pdg, first_parent)
    return Particles(
        offsets=off,
        event=np.repeat(np.arange(ev.n_events), n_mc),
        pdg=pdg,
        status=status,
        charge=to_numpy(mc.charge),
        p4=p4,
        credit=credit,
    )


def track_elements(ev: EventCollections, bfield: float) -> np.ndarray:
    """X rows of all tracks of the chunk (features.track_features)."""
    trk = ak.flatten(ev.tracks, axis=1)
    ip = trk.ip
    return features.track_features(
        omega=to_numpy(ip.omega), phi=to_numpy(ip.phi), tan_lambda=to_numpy(ip.tan_lambda), d0=to_numpy(ip.d0),
        z0=to_numpy(ip.z0), time=to_numpy(ip.time), chi2=to_numpy(trk.chi2), ndf=to_numpy(trk.ndf),
        dedx=to_numpy(trk.dedx), dedx_error=to_numpy(trk.dedx_error),
        radius_innermost_hit=to_numpy(trk.radius_innermost_hit), bfield_tesla=bfield,
    )  # fmt: skip


def track_pairs(
    ev: EventCollections, mc: Particles, trk_off: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(particle, track, weight) of the track truth links, credited and summed (targets.aggregate_pairs)."""
    tl = ak.flatten(ev.track_links, axis=1)
    tl_event = np.repeat(np.arange(ev.n_events), counts_of(ev.track_links))
    tl_trk, tl_p = to_numpy(tl.track), to_numpy(tl.particle)
    ok = (tl_trk >= 0) & (tl_p >= 0)
    return targets.aggregate_pairs(
        mc.credit[tl_p[ok] + mc.offsets[tl_event[ok]]],
        tl_trk[ok] + trk_off[tl_event[ok]],
        to_numpy(tl.weight)[ok],
        int(trk_off[-1]),
    )


def calo_links(
    ev: EventCollections, mc: Particles, hit_off: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(global hit, credited particle, weight in GeV) of every resolved calorimeter-hit truth link."""
    cln = ak.flatten(ev.calo_links, axis=1)
    event = np.repeat(np.arange(ev.n_events), counts_of(ev.calo_links))
    c_hit, c_p = to_numpy(cln.hit), to_numpy(cln.particle)
    ok = (c_hit >= 0) & (c_p >= 0)
    return (
        c_hit[ok] + hit_off[event[ok]],
        mc.credit[c_p[ok] + mc.offsets[event[ok]]],
        to_numpy(cln.weight)[ok].astype(np.float64),
    )


def max_track_weight(pairs: tuple[np.ndarray, np.ndarray, np.ndarray], n_particles: int) -> np.ndarray:
    out = np.zeros(n_particles)
    np.maximum.at(out, pairs[0], pairs[2])
    return out


def target_rows(owner: np.ndarray, elem_type: int, mc: Particles, p4: np.ndarray) -> np.ndarray:
    """[n, 7] target rows of elements of one type from their owning particle (-1 = none); `p4` after merging."""
    return _owned_rows(owner, elem_type, mc.pdg, mc.charge, p4)


def _owned_rows(
    owner: np.ndarray, elem_type: int, pdg: np.ndarray, charge: np.ndarray, p4: np.ndarray
) -> np.ndarray:
    """[n, 7] particle rows of elements from the index of their particle (-1 = none: a zero row)."""
    rows, values = owned_rows(owner, elem_type, pdg, charge, p4)
    out = np.zeros((len(owner), len(targets.PARTICLE_COLUMNS)), dtype=np.float32)
    out[rows] = values
    return out


def owned_rows(
    owner: np.ndarray, elem_type: int, pdg: np.ndarray, charge: np.ndarray, p4: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(elements that have a particle, their [k, 7] particle rows) from each element's particle index (-1 =
    none). Only those elements are computed: at the hit level ~1 % of them."""
    rows = np.flatnonzero(owner >= 0)
    o = owner[rows]
    cls = targets.pdg_to_class(pdg[o], charge[o], np.full(len(o), elem_type))
    q = charge[o] if elem_type == features.ELEM_TYPE_TRACK else np.zeros(len(o))
    v = p4[o]
    return rows, targets.particle_rows(cls, q, v[:, 0], v[:, 1], v[:, 2], v[:, 3])


def candidate_p4(pfo: ak.Array) -> np.ndarray:
    """[n, 4] (px, py, pz, E) of flat PF particles, E = sqrt(|p|^2 + m^2) from the stored momentum and mass.

    As upstream builds the baseline candidates (jpata/particleflow v1.6.2 scripts/fcc/postprocessing.py and
    v2.5.0 mlpf/data/key4hep/postprocessing.py: the candidate four-vector from `mass` and `momentum`), not from
    the stored `energy`: Pandora stores neutral hadrons with E = |p| but m = 0.9396 GeV (a neutron), so the two
    differ by up to ~0.6 GeV per low-energy neutral hadron.
    """
    px, py, pz, mass = (to_numpy(pfo[name]).astype(np.float64) for name in ("px", "py", "pz", "mass"))
    return np.stack([px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mass**2)], axis=1)


@dataclass
class Candidates:
    """The PF particles of a chunk, flat, with the global index of their first track and first cluster."""

    offsets: np.ndarray
    pdg: np.ndarray
    charge: np.ndarray
    p4: np.ndarray
    first_track: np.ndarray
    first_cluster: np.ndarray

    def rows(self, owner: np.ndarray, elem_type: int) -> np.ndarray:
        """[n, 7] candidate rows of elements of one type from the PFO placed on them (-1 = none)."""
        return _owned_rows(owner, elem_type, self.pdg, self.charge, self.p4)

    def energy_in(self, keep_event: np.ndarray) -> float:
        """Energy of the PFOs that count (PDG != 0) in the events kept."""
        event = np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))
        return float(self.p4[:, 3][(self.pdg != 0) & keep_event[event]].sum())


def candidates(ev: EventCollections, trk_off: np.ndarray, cl_off: np.ndarray) -> Candidates:
    pfo_off = offsets(counts_of(ev.pfos))
    pfo = ak.flatten(ev.pfos, axis=1)
    n = int(pfo_off[-1])
    return Candidates(
        offsets=pfo_off,
        pdg=to_numpy(pfo.pdg),
        charge=to_numpy(pfo.charge),
        p4=candidate_p4(pfo),
        first_track=first_of(ev.pfos.tracks, pfo_off, trk_off, n),
        first_cluster=first_of(ev.pfos.clusters, pfo_off, cl_off, n),
    )


def element_positions(n_first: np.ndarray, n_second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(element counts per event, flat destination of every row) when each event holds its `n_first` rows of the
    first kind (tracks) followed by its `n_second` rows of the second kind, both given flat in event order."""
    n_ev = len(n_first)
    n_elem = n_first + n_second
    elem_off = offsets(n_elem)
    parts = []
    for counts, shift in ((n_first, np.zeros(n_ev, dtype=np.int64)), (n_second, n_first)):
        off = offsets(counts)
        event = np.repeat(np.arange(n_ev), counts)
        parts.append(elem_off[event] + shift[event] + np.arange(int(off[-1])) - off[event])
    return n_elem, np.concatenate(parts)


def place(pos: np.ndarray, first_rows: np.ndarray, second_rows: np.ndarray) -> np.ndarray:
    """Scatter the two kinds of rows to their destinations (`element_positions`).

    Each kind keeps its order, so a mask of the first kind's slots places both with sequential copies (a
    fancy-index scatter of 10^6 hit rows costs several times more)."""
    first = np.zeros(len(pos), dtype=bool)
    first[pos[: len(first_rows)]] = True
    out = np.empty((len(pos), first_rows.shape[1]), dtype=np.float32)
    out[first] = first_rows
    out[~first] = second_rows
    return out


def event_record(
    X: np.ndarray,
    ytarget: np.ndarray,
    ycand: np.ndarray,
    n_elem: np.ndarray,
    mc: Particles,
    truth_max_abs_eta: float | None,
) -> ak.Array:
    """One record per event: elements, targets, candidates, and the truth for jets and MET
    (targets.jet_truth)."""
    n_ev = len(n_elem)
    p4 = mc.p4
    mc_pt = np.hypot(p4[:, 0], p4[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        # along the beam (pt = 0) eta is infinite: outside any acceptance
        mc_eta = np.where(mc_pt > 0, np.arcsinh(p4[:, 2] / np.where(mc_pt > 0, mc_pt, 1.0)), np.inf)
    truth_mask = targets.jet_truth(mc.status, mc.pdg, mc_eta, truth_max_abs_eta)
    tp4 = p4[truth_mask]
    truth_event = mc.event[truth_mask]
    n_truth = np.bincount(truth_event, minlength=n_ev)
    met_x = np.bincount(truth_event, weights=tp4[:, 0], minlength=n_ev)
    met_y = np.bincount(truth_event, weights=tp4[:, 1], minlength=n_ev)
    truth = ak.zip(
        {
            "pt": mc_pt[truth_mask].astype(np.float32),
            "eta": mc_eta[truth_mask].astype(np.float32),
            "phi": np.arctan2(tp4[:, 1], tp4[:, 0]).astype(np.float32),
            "energy": tp4[:, 3].astype(np.float32),
            "pdg": mc.pdg[truth_mask].astype(np.int32),
        }
    )
    return ak.zip(
        {
            "X": ak.unflatten(ak.from_numpy(X.astype(np.float32, copy=False)), n_elem),
            "ytarget": ak.unflatten(ak.from_numpy(ytarget), n_elem),
            "ycand": ak.unflatten(ak.from_numpy(ycand), n_elem),
            "truth": ak.unflatten(truth, n_truth),
            "genmet": np.hypot(met_x, met_y).astype(np.float32),
        },
        depth_limit=1,
    )


def association_stats(
    assoc: targets.Association, vis: np.ndarray, mc: Particles, keep: np.ndarray
) -> dict[str, float]:
    """Counts of the target association for the stats (conservation inputs of dataset-validate)."""
    kept_particles = vis & ~assoc.dropped
    owners = np.concatenate([assoc.track_owner, assoc.cluster_owner])
    ev_keep_p = keep[mc.event]
    return {
        "visible_particles": int(vis.sum()),
        "matched_to_track": int((assoc.track_owner >= 0).sum()),
        "merged_particles": int((assoc.merged_into >= 0).sum()),
        "dropped_particles": int(assoc.dropped.sum()),
        "visible_energy": float(mc.energy[vis & ev_keep_p].sum()),
        "kept_energy": float(mc.energy[kept_particles & ev_keep_p].sum()),
        "owner_energy": float(assoc.p4[owners[owners >= 0], 3].sum()),
    }
