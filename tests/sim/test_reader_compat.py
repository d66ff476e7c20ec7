"""The EDM4hep reader of the parse stage reads a fastsim file and the real CLD file through the same code."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from edm4hep_fixtures import CLD_FILE

reader = pytest.importorskip("mlpf.io.edm4hep.reader")


@pytest.mark.parametrize("which", ["fastsim", "cld"])
def test_same_reader_reads_both(which, ttbar_file):
    path = ttbar_file if which == "fastsim" else CLD_FILE
    with reader.Edm4hepFile(path) as f:
        f.check_collections()
        ev = f.read(0, 1)
    for coll in (ev.tracks, ev.clusters, ev.pfos, ev.calo_links, ev.track_links, ev.mc):
        assert ak.sum(ak.num(coll, axis=1)) > 0
    # every calorimeter truth link resolves to a hit and a particle of the same event
    assert ak.all(ev.calo_links.hit >= 0)
    assert ak.all(ev.calo_links.particle >= 0)
    # clusters resolve their hits
    assert np.all(ak.to_numpy(ak.flatten(ev.clusters.hits, axis=None)) >= 0)
