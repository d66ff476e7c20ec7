"""Physical ranges (mlpf.data.ranges): real events pass, damaged values are named with their file and event."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from edm4hep_fixtures import CLD_FILE, CLIC_LEGACY_FILE
from mlpf.data import ranges
from mlpf.errors import InputFileError
from mlpf.io.edm4hep.reader import Edm4hepFile
from model._synthetic import make_events

pytestmark = pytest.mark.skipif(not CLD_FILE.is_file(), reason="real EDM4HEP fixtures not available")


def _chunks(path):
    with Edm4hepFile(path) as source:
        return list(source.iterate(2))


@pytest.mark.parametrize("path", [CLD_FILE, CLIC_LEGACY_FILE], ids=["cld", "clic-legacy"])
def test_real_events_are_inside_the_ranges(path):
    for start, _, chunk in _chunks(path):
        ranges.check_input_events(chunk, path, start, bfield_tesla=4.0)


def _with_hit_energy(chunk, event: int, value: float):
    energy = ak.to_numpy(ak.flatten(chunk.hits.energy)).copy()
    counts = ak.num(chunk.hits.energy)
    energy[int(np.sum(counts[:event]))] = value
    chunk.hits = ak.with_field(chunk.hits, ak.unflatten(energy, counts), "energy")
    return chunk


@pytest.mark.parametrize(("value", "shown"), [(1.9e38, "1.9e+38"), (np.inf, "inf"), (np.nan, "nan")])
def test_an_unphysical_input_value_names_the_file_and_its_event(value, shown):
    # the legacy file holds 3 events: in chunks of 2, the second chunk's first event is event 2 of the file
    start, _, chunk = _chunks(CLIC_LEGACY_FILE)[1]
    with pytest.raises(InputFileError) as info:
        ranges.check_input_events(
            _with_hit_energy(chunk, 0, value), CLIC_LEGACY_FILE, start, bfield_tesla=4.0
        )
    message = str(info.value)
    assert message.startswith(f"{CLIC_LEGACY_FILE}: event 2: calorimeter hit energy {shown} GeV is outside")
    assert "\n" not in message


def test_shards_are_checked_column_by_column_and_leave_nan_to_the_finite_check():
    events = make_events(6, 1)
    ranges.check_shard(events, "ok.parquet")
    x = ak.to_numpy(ak.flatten(events.X, axis=1)).copy()
    counts = ak.num(events.X)
    track = int(np.sum(counts[:4]))  # first element of event 4: a track (tracks come first)
    x[track, 12] = 3.0e4 + 1  # D0 beyond the world volume
    moved = ak.with_field(events, ak.unflatten(x, counts), "X")
    with pytest.raises(InputFileError, match=r"bad\.parquet: event 4: X track D0 30001 mm is outside"):
        ranges.check_shard(moved, "bad.parquet")
    x[track, 12] = np.nan
    ranges.check_shard(ak.with_field(events, ak.unflatten(x, counts), "X"), "nan.parquet")


def test_limits_hold_the_supported_detectors_and_samples():
    # CLIC_o3_v14's yoke reaches r = 6450 mm, |z| = 5700 mm; the largest configurable gun is 10 TeV
    assert ranges.MAX_POSITION_MM > 6450
    assert ranges.MAX_ENERGY_GEV >= 10 * 10_000
