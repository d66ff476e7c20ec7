"""`mlpf parse` on a small fastsim ttbar file: the layout the default workflow uses."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from mlpf.cli import main
from mlpf.data import targets
from mlpf.data.features import X_PT
from mlpf.data.parse import ENERGY_TOLERANCE_GEV, ParseStats, parse_file, process_chunk
from mlpf.data.validate import validate_shards
from mlpf.io.edm4hep.reader import Edm4hepFile

N_EVENTS = 40


@pytest.fixture(scope="module")
def fastsim_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fastsim") / "ttbar_0.root"
    settings = f'{{"events_per_shard": {N_EVENTS}}}'
    rc = main(["fastsim", "--sample", "ttbar", "--shard", "0", "--seed", "1", "--output", str(path),
               "--no-progress", "--settings", settings])  # fmt: skip
    assert rc == 0
    return path


@pytest.fixture(scope="module")
def shard(fastsim_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("datasets") / "ttbar" / "0.parquet"
    record = parse_file(fastsim_file, out, {"target": "paper"})
    return out, record


def test_layout_and_field(shard):
    _, record = shard
    assert record["layout"] == "fastsim"
    assert record["detector"] == "clic"
    assert record["bfield_tesla"] == 4.0


def test_validation_passes(shard):
    out, _record = shard
    summary = validate_shards([out])["samples"]["ttbar"]
    assert summary["ok"], summary["checks"]
    assert summary["events"] + summary["events_skipped_empty"] == N_EVENTS
    assert summary["tracks"] > 10 * N_EVENTS
    assert summary["clusters"] > 10 * N_EVENTS
    assert summary["target_coverage"] > 0.9


def test_candidates_reproduce_pfo_energy(shard, fastsim_file):
    out, record = shard
    with uproot.open(fastsim_file) as f:
        pdg = f["events"]["PandoraPFOs.PDG"].array()
        energy = f["events"]["PandoraPFOs.energy"].array()
    expected = float(ak.sum(energy[pdg != 0]))
    got = float(np.sum(ak.to_numpy(ak.flatten(ak.from_parquet(out).ycand, axis=1))[:, 6]))
    if record["stats"]["pfos_unplaced"] == 0:
        assert got == pytest.approx(expected, rel=1e-5)
    else:
        assert got < expected


def test_targets_conserve_energy(shard):
    _, record = shard
    s = record["stats"]
    assert s["target_energy"] == pytest.approx(s["kept_energy"], abs=ENERGY_TOLERANCE_GEV * N_EVENTS)
    assert s["visible_particles"] == (
        s["matched_to_track"] + s["matched_to_cluster"] + s["merged_particles"] + s["dropped_particles"]
    )


def test_track_targets_match_track_pt(shard):
    out, _ = shard
    events = ak.from_parquet(out)
    X = ak.to_numpy(ak.flatten(events.X, axis=1))
    y = ak.to_numpy(ak.flatten(events.ytarget, axis=1))
    sel = (X[:, 0] == 1) & (y[:, 0] > 0)
    assert np.median(y[sel, 2] / X[sel, X_PT]) == pytest.approx(1.0, abs=0.03)


def test_chunking_does_not_change_output(shard, fastsim_file):
    """Chunks use chunk-global indices; any split of the events must give the same records."""
    out, _ = shard
    whole = ak.from_parquet(out)
    stats = ParseStats()
    definition = targets.TARGET_DEFINITIONS["paper"]
    with Edm4hepFile(fastsim_file) as f:
        parts = [
            process_chunk(f.read(a, b), definition, 4.0, stats) for a, b in ((0, 7), (7, 8), (8, N_EVENTS))
        ]
    pieces = ak.concatenate(parts)
    assert len(pieces) == len(whole)
    for field in ("X", "ytarget", "ycand", "genmet"):
        assert ak.all(ak.flatten(pieces[field], axis=None) == ak.flatten(whole[field], axis=None))


@pytest.fixture(scope="module")
def pileup_shard(tmp_path_factory):
    """ttbar with Poisson(10) gamma gamma -> hadrons interactions, parsed with the default truth."""
    directory = tmp_path_factory.mktemp("pu10")
    root = directory / "ttbar_pu10.root"
    rc = main(["fastsim", "--sample", "ttbar_pu10", "--shard", "0", "--seed", "3", "--output", str(root),
               "--no-progress", "--settings", '{"events_per_shard": 60}'])  # fmt: skip
    assert rc == 0
    out = directory / "ttbar_pu10.parquet"
    parse_file(root, out, {})
    return ak.from_parquet(out)


def test_pileup_targets_reproduce_the_generator_jets_and_met(pileup_shard):
    """The truth scored against is what the detector can see: jets of the target particles match the
    generator jets, and the targets' MET is the generator MET (no beam remnants, no invisible forward jets)."""
    from mlpf.evaluate import jets
    from mlpf.evaluate.particles import missing_pt, reco_particles, truth_particles

    definition = jets.JetDefinition()  # the paper's: ee_genkt R = 0.7, pT > 15 GeV, matched within 0.1
    gen_jets = jets.cluster(truth_particles(pileup_shard.truth), definition)
    target_particles = reco_particles(pileup_shard.ytarget)
    index, _ = jets.match(gen_jets, jets.cluster(target_particles, definition), definition.match_dr)
    n_gen = int(ak.sum(ak.num(gen_jets)))
    assert n_gen > 3 * len(pileup_shard)
    assert int(ak.sum(index >= 0)) / n_gen >= 0.90
    response = missing_pt(target_particles) / ak.to_numpy(pileup_shard.genmet)
    assert 0.9 <= np.median(response) <= 1.1
    # no particle of the truth lies outside the acceptance, where no element exists
    assert ak.max(np.abs(pileup_shard.truth.eta)) < targets.TRUTH_MAX_ABS_ETA


def test_shard_records_the_fast_simulation_that_made_it(shard):
    _, record = shard
    source = record["event_source"]
    assert source["simulation"] == "fastsim"
    assert (source["sample"], source["shard"], source["master_seed"]) == ("ttbar", "0", 1)
    assert isinstance(source["job_seed"], int)
    assert source["fastsim_version"]
    assert source["detector"] == "clic"
