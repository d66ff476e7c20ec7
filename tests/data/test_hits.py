"""The hit level (`dataset.elements: hits`) on the real fixture files of every layout and on fastsim: element
counts, features and target energy checked against the raw ROOT branches, candidates against the PFOs."""

from __future__ import annotations

from dataclasses import replace

import awkward as ak
import numpy as np
import pytest
import uproot

from edm4hep_fixtures import CLD_FILE as CLD
from edm4hep_fixtures import CLIC_LEGACY_FILE as LEGACY
from edm4hep_fixtures import SYNTHETIC_FILE as SYNTHETIC
from mlpf.data import features, targets
from mlpf.data.hits import process_chunk_hits
from mlpf.data.parquet import read_metadata
from mlpf.data.parse import ENERGY_TOLERANCE_GEV, ParseStats, parse_file
from mlpf.io.edm4hep.collections import CALO_HIT_COLLECTIONS
from mlpf.io.edm4hep.reader import Edm4hepFile

pytestmark = pytest.mark.skipif(not CLD.is_file(), reason="real EDM4HEP fixtures not available")

HIT = features.ELEM_TYPE_HIT
COL = {name: features.HIT_FEATURES.index(name) for name in ("et", "eta", "time", "subdetector", "hit_type")}
LAYER = features.HIT_FEATURES.index("layer")
E_COL = targets.PARTICLE_COLUMNS.index("energy")
# Raw branches of the truth links and their "to" (MC particle) index, per layout: podio 1.x LinkData, legacy C#1.
LINK_TO = {
    CLD: {"CalohitMCTruthLink": "_CalohitMCTruthLink_to", "SiTracksMCTruthLink": "_SiTracksMCTruthLink_to"},
    LEGACY: {"CalohitMCTruthLink": "CalohitMCTruthLink#1", "SiTracksMCTruthLink": "SiTracksMCTruthLink#1"},
}


def _branch(tree, name: str) -> ak.Array | None:
    """A leaf by its podio name: nested under its collection's branch, or flat (fastsim files)."""
    keys = set(tree.keys(recursive=True))
    for key in (f"{name.split('.', maxsplit=1)[0]}/{name}", name):
        if key in keys:
            return tree[key].array()
    return None


def _raw_hits(path) -> dict[str, np.ndarray]:
    """Energy, type and subdetector of every calorimeter hit, per event in the reader's collection order."""
    tree = uproot.open(path)["events"]
    per_event = []
    for i in range(tree.num_entries):
        rows = []
        for coll, sub in CALO_HIT_COLLECTIONS.items():
            energy = _branch(tree, f"{coll}.energy")
            if energy is None:
                continue
            rows.append(
                np.stack(
                    [
                        ak.to_numpy(energy[i]),
                        ak.to_numpy(_branch(tree, f"{coll}.type")[i]),
                        np.full(len(energy[i]), sub),
                    ],
                    axis=1,
                )
            )
        per_event.append(np.concatenate(rows))
    return {"per_event": per_event}


def _raw_target_energy(path) -> float:
    """Energy of the `paper` target particles computed from the raw MCParticles and truth-link branches alone."""
    tree = uproot.open(path)["events"]
    total = 0.0
    p = {k: _branch(tree, f"MCParticles.{k}") for k in ("PDG", "generatorStatus", "mass")}
    mom = [_branch(tree, f"MCParticles.momentum.{a}") for a in "xyz"]
    definition = targets.TARGET_DEFINITIONS["paper"]
    links = {}
    for link, to in LINK_TO[path].items():
        weight = _branch(tree, f"{link}.weight")
        links[link] = None if weight is None else (weight, _branch(tree, f"{to}.index"))
    for i in range(tree.num_entries):
        pdg = ak.to_numpy(p["PDG"][i])
        energy = np.sqrt(
            sum(ak.to_numpy(m[i]).astype(float) ** 2 for m in mom) + ak.to_numpy(p["mass"][i]) ** 2
        )
        calo = np.zeros(len(pdg))
        weight, to = links["CalohitMCTruthLink"]
        np.add.at(calo, ak.to_numpy(to[i]), ak.to_numpy(weight[i]))
        track = np.zeros(len(pdg))
        if links["SiTracksMCTruthLink"] is not None:
            weight, to = links["SiTracksMCTruthLink"]
            np.maximum.at(track, ak.to_numpy(to[i]), ak.to_numpy(weight[i]))
        vis = targets.visible(definition, ak.to_numpy(p["generatorStatus"][i]), pdg, energy, track, calo)
        total += energy[vis].sum()
    return total


@pytest.fixture(scope="module", params=[CLD, LEGACY], ids=["podio1-idtable", "legacy-podio"])
def hit_shard(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("hits") / "0.parquet"
    record = parse_file(request.param, out, {"target": "paper", "elements": "hits"})
    return request.param, out, record


def test_hit_elements_are_the_raw_hits(hit_shard):
    path, out, record = hit_shard
    events = ak.from_parquet(out)
    raw = _raw_hits(path)["per_event"]
    assert len(events) == len(raw)
    n_hits = 0
    for x_event, hits in zip(events.X, raw, strict=True):
        X = ak.to_numpy(x_event)
        types = X[:, 0]
        n_trk = int((types == features.ELEM_TYPE_TRACK).sum())
        assert np.all(types[:n_trk] == features.ELEM_TYPE_TRACK)
        assert np.all(types[n_trk:] == HIT)
        rows = X[n_trk:]
        positive = hits[:, 0] > 0
        assert len(rows) == positive.sum()
        np.testing.assert_array_equal(rows[:, 5], hits[positive, 0].astype(np.float32))
        np.testing.assert_array_equal(rows[:, COL["hit_type"]], hits[positive, 1])
        np.testing.assert_array_equal(rows[:, LAYER], hits[positive, 1] // 10000)
        np.testing.assert_array_equal(rows[:, COL["subdetector"]], hits[positive, 2])
        n_hits += len(rows)
    assert record["stats"]["hits"] == n_hits
    assert record["elements"] == "hits"
    assert read_metadata(out)["element_features"][11] == "tanLambda/hit_type"


def test_hit_directions_are_from_the_origin(hit_shard):
    _, out, _ = hit_shard
    X = ak.to_numpy(ak.flatten(ak.from_parquet(out).X, axis=1)).astype(np.float64)
    hits = X[X[:, 0] == HIT]
    x, y, z, energy = hits[:, 6], hits[:, 7], hits[:, 8], hits[:, 5]
    r = np.sqrt(x**2 + y**2 + z**2)
    np.testing.assert_allclose(hits[:, COL["eta"]], np.arctanh(z / r), atol=1e-4)
    np.testing.assert_allclose(hits[:, COL["et"]], energy * np.hypot(x, y) / r, rtol=1e-5)
    np.testing.assert_allclose(np.arctan2(hits[:, 3], hits[:, 4]), np.arctan2(y, x), atol=1e-5)


def test_target_energy_is_the_raw_visible_energy(hit_shard):
    path, out, record = hit_shard
    s = record["stats"]
    events = ak.from_parquet(out)
    yt = ak.to_numpy(ak.flatten(events.ytarget, axis=1))
    assert s["dropped_particles"] == 0
    assert s["visible_particles"] == s["matched_to_track"] + s["matched_to_hit"] + s["merged_particles"]
    assert (
        int((yt[:, 0] > 0).sum()) == s["matched_to_track"] + s["matched_to_hit"]
    )  # one particle per element
    assert yt[:, E_COL].sum() == pytest.approx(_raw_target_energy(path), abs=ENERGY_TOLERANCE_GEV)
    assert s["target_energy"] == pytest.approx(s["kept_energy"], abs=ENERGY_TOLERANCE_GEV)


def test_a_hit_target_is_the_particle_with_most_of_its_energy_there(hit_shard):
    """Each particle on a hit left energy in that hit, and it is its largest deposit unless a more energetic
    particle took that hit first."""
    path, out, _ = hit_shard
    with Edm4hepFile(path, read_hit_type=True) as f:
        ev = f.read(0, f.n_events)
    events = ak.from_parquet(out)
    for e in range(len(events)):
        X, yt = ak.to_numpy(events.X[e]), ak.to_numpy(events.ytarget[e])
        n_trk = int((X[:, 0] == features.ELEM_TYPE_TRACK).sum())
        link = ev.calo_links[e]
        hit, particle, weight = (ak.to_numpy(link[k]) for k in ("hit", "particle", "weight"))
        mc_energy = ak.to_numpy(ev.mc.energy[e])
        owned = np.flatnonzero(yt[n_trk:, 0] > 0)  # positive-energy hits keep the reader's order here
        for h in owned:
            candidates = particle[hit == h]
            match = candidates[np.isclose(mc_energy[candidates], yt[n_trk + h, E_COL], rtol=1e-5)]
            assert len(match) >= 1
            best = np.argmax(np.where(particle == match[0], weight, -1.0))
            if hit[best] != h:  # its best hit went to a more energetic particle
                assert yt[n_trk + hit[best], E_COL] >= mc_energy[match[0]] - 1e-4


def test_candidates_are_the_pfos_on_their_most_energetic_hit(hit_shard):
    path, out, record = hit_shard
    s = record["stats"]
    assert s["pfos_unplaced"] == 0
    assert s["candidate_energy"] == pytest.approx(s["pfo_energy"], rel=1e-6)
    with Edm4hepFile(path, read_hit_type=True) as f:
        ev = f.read(0, f.n_events)
    events = ak.from_parquet(out)
    for e in range(len(events)):
        X, yc = ak.to_numpy(events.X[e]), ak.to_numpy(events.ycand[e])
        n_trk = int((X[:, 0] == features.ELEM_TYPE_TRACK).sum())
        hit_energy = ak.to_numpy(ev.hits.energy[e])
        for k in range(len(ev.pfos[e])):
            if len(ev.pfos.tracks[e][k]) or ev.pfos.pdg[e][k] == 0:
                continue
            members = np.concatenate([ak.to_numpy(ev.clusters.hits[e][c]) for c in ev.pfos.clusters[e][k]])
            best = members[np.argmax(hit_energy[members])]
            assert yc[n_trk + best, 0] > 0


def test_the_newest_layout_gives_hit_elements(tmp_path):
    """EDM4hep 1.0 / podio 1.7 (typeinfo table, renamed collections): the hit and its features come through."""
    collections = {
        "mc_particles": "MCParticleCollection", "tracks": "TrackCollection", "track_dqdx": "RecDqdxCollection",
        "clusters": "ClusterCollection", "pfos": "ReconstructedParticleCollection",
        "calo_link": "CaloHitMCParticleLinkCollection", "track_link": "TrackMCParticleLinkCollection",
        "calo_hits": ["CalorimeterHitCollection"],
    }  # fmt: skip
    record = parse_file(SYNTHETIC, tmp_path / "s.parquet", {"collections": collections, "elements": "hits"})
    assert record["layout"] == "typeinfo"
    X = ak.to_numpy(ak.flatten(ak.from_parquet(tmp_path / "s.parquet").X, axis=1))
    hits = X[X[:, 0] == HIT]
    tree = uproot.open(SYNTHETIC)["events"]
    energy = ak.to_numpy(ak.flatten(_branch(tree, "CalorimeterHitCollection.energy")))
    hit_type = ak.to_numpy(ak.flatten(_branch(tree, "CalorimeterHitCollection.type")))
    np.testing.assert_array_equal(hits[:, 5], energy)
    np.testing.assert_array_equal(hits[:, COL["hit_type"]], hit_type)
    assert record["stats"]["candidate_energy"] == pytest.approx(record["stats"]["pfo_energy"], rel=1e-6)


def test_zero_energy_hits_are_skipped_and_counted():
    with Edm4hepFile(CLD, read_hit_type=True) as f:
        ev = f.read(0, f.n_events)
    energy = ak.to_numpy(ev.hits.energy[0]).copy()
    energy[:7] = 0.0
    source = replace(ev, hits=ak.with_field(ev.hits, ak.Array([energy]), "energy"))
    stats = ParseStats()
    events = process_chunk_hits(source, targets.TARGET_DEFINITIONS["paper"], 2.0, stats)
    X = ak.to_numpy(events.X[0])
    assert stats.counts["hits_skipped_zero_energy"] == 7
    assert int((X[:, 0] == HIT).sum()) == len(energy) - 7
    assert np.all(X[:, 5] > 0)
    assert stats.counts["target_energy"] == pytest.approx(
        stats.counts["kept_energy"], abs=ENERGY_TOLERANCE_GEV
    )


def test_hits_are_calorimeter_elements_for_the_class_labels():
    pdg = np.array([211, 22, 11, 130, 13])
    charge = np.array([1, 0, -1, 0, -1])
    on_hits = targets.pdg_to_class(pdg, charge, np.full(5, HIT))
    on_clusters = targets.pdg_to_class(pdg, charge, np.full(5, features.ELEM_TYPE_CLUSTER))
    np.testing.assert_array_equal(on_hits, on_clusters)


@pytest.fixture(scope="module")
def fastsim_shards(tmp_path_factory):
    from mlpf.cli import main

    tmp = tmp_path_factory.mktemp("fastsim_hits")
    root = tmp / "ttbar_0.root"
    rc = main(["fastsim", "--sample", "ttbar", "--shard", "0", "--seed", "3", "--output", str(root),
               "--no-progress", "--settings", '{"events_per_shard": 20}'])  # fmt: skip
    assert rc == 0
    out = {}
    for elements, chunk_events in (("clusters", 1000), ("hits", 1000), ("hits", 7)):
        path = tmp / f"{elements}_{chunk_events}" / "ttbar" / "0.parquet"
        settings = {"elements": elements, "chunk_events": chunk_events}
        out[elements, chunk_events] = path, parse_file(root, path, settings)
    return root, out


def test_fastsim_hit_level_validates_and_shares_tracks_and_truth(fastsim_shards):
    from mlpf.data.validate import validate_shards

    root, shards = fastsim_shards
    path, record = shards["hits", 1000]
    summary = validate_shards([path])["samples"]["ttbar"]
    assert summary["ok"], summary["checks"]
    with uproot.open(root) as f:
        energies = [_branch(f["events"], f"{c}.energy") for c in CALO_HIT_COLLECTIONS]
        raw = sum(len(ak.flatten(e)) for e in energies if e is not None)
    assert summary["hits"] == raw == record["stats"]["hits"]
    hits, clusters = ak.from_parquet(path), ak.from_parquet(shards["clusters", 1000][0])
    assert len(hits) == len(clusters)
    for field in ("truth", "genmet"):
        assert ak.all(ak.flatten(hits[field], axis=None) == ak.flatten(clusters[field], axis=None))
    tracks_h = hits.X[hits.X[:, :, 0] == features.ELEM_TYPE_TRACK]
    tracks_c = clusters.X[clusters.X[:, :, 0] == features.ELEM_TYPE_TRACK]
    assert ak.all(ak.flatten(tracks_h, axis=None) == ak.flatten(tracks_c, axis=None))
    # the visible truth is at least that of the cluster level: all hits count, not only clustered ones
    assert record["stats"]["visible_energy"] >= shards["clusters", 1000][1]["stats"]["visible_energy"] - 1e-6


def test_fastsim_hit_level_does_not_depend_on_chunks(fastsim_shards):
    _, shards = fastsim_shards
    a, b = (ak.from_parquet(shards["hits", n][0]) for n in (1000, 7))
    for field in ("X", "ytarget", "ycand"):
        assert ak.all(ak.flatten(a[field], axis=None) == ak.flatten(b[field], axis=None))


def test_full_detail_fastsim_with_noise_at_the_hit_level(tmp_path):
    """fastsim.hit_detail: full gives full-simulation hit counts; noise hits (no truth) become elements without a
    target particle, and the shard passes dataset-validate."""
    from mlpf.config import validate_section
    from mlpf.data.validate import validate_shards
    from mlpf.sim.pipeline import run_shard

    settings = validate_section(
        "fastsim", {"events_per_shard": 5, "hit_detail": "full", "noise_hits_per_event": 300}
    )
    run_shard("ttbar", "0", 11, settings, tmp_path / "ttbar.root", show_progress=False)
    out = tmp_path / "ttbar" / "0.parquet"
    record = parse_file(tmp_path / "ttbar.root", out, {"elements": "hits"})
    summary = validate_shards([out])["samples"]["ttbar"]
    assert summary["ok"], summary["checks"]
    assert summary["hits"] / summary["events"] > 5000
    with Edm4hepFile(tmp_path / "ttbar.root") as f:
        ev = f.read(0, f.n_events)
    events = ak.from_parquet(out)
    for e in range(len(events)):
        X, yt = ak.to_numpy(events.X[e]), ak.to_numpy(events.ytarget[e])
        n_trk = int((X[:, 0] == features.ELEM_TYPE_TRACK).sum())
        linked = np.zeros(len(X) - n_trk, dtype=bool)
        linked[ak.to_numpy(ev.calo_links.hit[e])] = True
        assert (~linked).sum() > 200  # the noise hits
        assert np.all(yt[n_trk:][~linked, 0] == 0)
    assert record["stats"]["target_energy"] == pytest.approx(record["stats"]["kept_energy"], rel=1e-6)
