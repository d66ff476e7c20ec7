"""Physical ranges of event quantities, defined once: what a value must lie within to come from a real event.

A damaged file can hold values that read cleanly but are not physics: bytes overwritten in an uncompressed
ROOT basket turn a cluster energy into 1.9e38 GeV. `mlpf parse` checks the events it reads and
`mlpf dataset-validate` the shards it summarises against these limits, and both name the file and the event of
the first value outside them. The limits are loose on purpose: they separate physics from garbage, not common
events from rare ones, so that no real event of any supported detector or sample is refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import awkward as ak
import numpy as np

from mlpf.data import features, targets
from mlpf.errors import InputFileError

if TYPE_CHECKING:
    from mlpf.io.edm4hep.reader import EventCollections

# Energies and momenta [GeV]. No particle of an e+e- event carries more than sqrt(s), and the highest stage of
# the supported colliders is CLIC at 3 TeV (CLIC 2018 Summary Report, CERN-2018-005-M); the largest particle gun
# the configuration allows is 10 TeV (key4hep.gun_momentum_max, maximum in config.schema.yaml). Ten times that
# keeps every real record clear, while corrupt floats (up to 3.4e38) lie far beyond.
MAX_ENERGY_GEV = 1.0e5

# Positions [mm], per Cartesian coordinate. Every hit, cluster and track reference point of a simulated event
# lies inside the Geant4 world volume of its detector model. The largest of the supported detectors is
# CLIC_o3_v14's: DD4hep builds the world as Box(world_x, world_y, world_z), half-lengths, with
# world_side = 30000 mm (k4geo CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml; CLD_o2_v05 uses 6100 mm).
MAX_POSITION_MM = 30_000.0
# Distances from the beam axis (track radius of the innermost hit): the corner of the world box in x-y.
MAX_RADIUS_MM = math.hypot(MAX_POSITION_MM, MAX_POSITION_MM)

ENERGY = (-MAX_ENERGY_GEV, MAX_ENERGY_GEV, "GeV")  # signed: calorimeter energies may be calibrated below zero
POSITIVE_ENERGY = (0.0, MAX_ENERGY_GEV, "GeV")  # energies and transverse momenta of particles and tracks
POSITION = (-MAX_POSITION_MM, MAX_POSITION_MM, "mm")
RADIUS = (-MAX_RADIUS_MM, MAX_RADIUS_MM, "mm")  # signed: some producers store -1 for "no hit"
SPREAD = (0.0, MAX_POSITION_MM, "mm")  # widths of a cluster's hit positions

# One quantity to check: its name in the error, values per event (jagged) and its range (low, high, unit).
Quantity = tuple[str, ak.Array, tuple[float, float, str]]


def _first_outside(values: np.ndarray, low: float, high: float, nonfinite_outside: bool) -> int | None:
    """Index of the first value outside [low, high]; NaN and inf count as outside if `nonfinite_outside`."""
    inside = (values >= low) & (values <= high)
    if not nonfinite_outside:
        inside |= ~np.isfinite(values)
    return None if inside.all() else int(np.argmin(inside))


def _check(
    quantities: Iterator[Quantity], path: str | Path, first_event: int = 0, nonfinite_outside: bool = True
) -> None:
    for name, per_event, (low, high, unit) in quantities:
        counts = ak.to_numpy(ak.num(per_event, axis=1)) if per_event.ndim > 1 else None
        values = ak.to_numpy(ak.flatten(per_event, axis=None)).astype(np.float64)
        bad = _first_outside(values, low, high, nonfinite_outside)
        if bad is None:
            continue
        event = bad if counts is None else int(np.searchsorted(np.cumsum(counts), bad, side="right"))
        raise InputFileError(
            f"event {first_event + event}: {name} {values[bad]:.6g} {unit} is outside the physical range "
            f"[{low:g}, {high:g}] {unit} (mlpf.data.ranges); the file is damaged or not physics",
            path=path,
        )


def _track_momenta(ev: EventCollections, bfield_tesla: float) -> tuple[ak.Array, ak.Array]:
    """Track pt and p from the helix at the IP (tracks without curvature, omega = 0, are left out)."""
    ip = ev.tracks.ip
    curved = ip[ip.omega != 0]
    pt = features.PT_PER_TESLA_MM * abs(bfield_tesla / curved.omega)
    return pt, pt * np.sqrt(1.0 + curved.tan_lambda**2)


def _input_quantities(ev: EventCollections, bfield_tesla: float) -> Iterator[Quantity]:
    yield "MC particle energy", ev.mc.energy, POSITIVE_ENERGY
    pt, p = _track_momenta(ev, bfield_tesla)
    yield "track pt", pt, POSITIVE_ENERGY
    yield "track momentum", p, POSITIVE_ENERGY
    for coordinate in ("d0", "z0", "ref_x", "ref_y", "ref_z"):
        yield f"track {coordinate} at the IP", ev.tracks.ip[coordinate], POSITION
    yield "track radius of the innermost hit", ev.tracks.radius_innermost_hit, RADIUS
    yield "cluster energy", ev.clusters.energy, ENERGY
    for coordinate in "xyz":
        yield f"cluster position {coordinate}", ev.clusters[coordinate], POSITION
    yield "calorimeter hit energy", ev.hits.energy, ENERGY
    for coordinate in "xyz":
        yield f"calorimeter hit position {coordinate}", ev.hits[coordinate], POSITION
    yield "PF candidate energy", ev.pfos.energy, ENERGY
    for component in ("px", "py", "pz"):
        yield f"PF candidate {component}", ev.pfos[component], ENERGY


def check_input_events(ev: EventCollections, path: str | Path, first_event: int, bfield_tesla: float) -> None:
    """Raise InputFileError naming `path` and the event (counted from the file's start) of an unphysical value.

    NaN and inf count as unphysical here: the features would silently turn them into zeros (as upstream does).
    """
    _check(_input_quantities(ev, bfield_tesla), path, first_event)


# Columns of the element features X checked per element type, with their ranges (names from data/features.py).
TRACK_COLUMNS = {"pt": POSITIVE_ENERGY, "p": POSITIVE_ENERGY, "D0": POSITION, "Z0": POSITION,
                 "radiusOfInnermostHit": RADIUS}  # fmt: skip
CLUSTER_COLUMNS = {"et": ENERGY, "energy": ENERGY, "position.x": POSITION, "position.y": POSITION,
                   "position.z": POSITION, "energy_ecal": ENERGY, "energy_hcal": ENERGY, "energy_other": ENERGY,
                   "sigma_x": SPREAD, "sigma_y": SPREAD, "sigma_z": SPREAD}  # fmt: skip
HIT_COLUMNS = {"et": ENERGY, "energy": ENERGY, "position.x": POSITION, "position.y": POSITION,
               "position.z": POSITION}  # fmt: skip
PARTICLE_COLUMNS = {"pt": POSITIVE_ENERGY, "energy": POSITIVE_ENERGY}
_KIND = {
    features.ELEM_TYPE_TRACK: "track",
    features.ELEM_TYPE_CLUSTER: "cluster",
    features.ELEM_TYPE_HIT: "hit",
}


def _element_columns(
    X: ak.Array, elem_type: int, names: tuple[str, ...], columns: dict
) -> Iterator[Quantity]:
    rows = X[X[:, :, features.X_TYPE] == elem_type]
    kind = _KIND[elem_type]
    for name, limits in columns.items():
        yield f"X {kind} {name}", rows[:, :, names.index(name)], limits


def _shard_quantities(events: ak.Array) -> Iterator[Quantity]:
    yield from _element_columns(events.X, features.ELEM_TYPE_TRACK, features.TRACK_FEATURES, TRACK_COLUMNS)
    yield from _element_columns(
        events.X, features.ELEM_TYPE_CLUSTER, features.CLUSTER_FEATURES, CLUSTER_COLUMNS
    )
    yield from _element_columns(events.X, features.ELEM_TYPE_HIT, features.HIT_FEATURES, HIT_COLUMNS)
    for field in ("ytarget", "ycand"):
        for name, limits in PARTICLE_COLUMNS.items():
            yield f"{field} {name}", events[field][:, :, targets.PARTICLE_COLUMNS.index(name)], limits
    for name in ("pt", "energy"):
        yield f"truth {name}", events.truth[name], POSITIVE_ENERGY
    yield "genmet", events.genmet, POSITIVE_ENERGY


def check_shard(events: ak.Array, path: str | Path) -> None:
    """Raise InputFileError naming the shard and the event (row) of an unphysical value.

    NaN and inf are left to dataset-validate's own `finite` check, which reports them per sample.
    """
    _check(_shard_quantities(events), path, nonfinite_outside=False)
