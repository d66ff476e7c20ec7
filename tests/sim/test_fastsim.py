"""The fastsim job end to end: EDM4hep branch layout as the real CLD file, determinism, safe outputs, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from edm4hep_fixtures import CLD_FILE
from mlpf.cli import main
from mlpf.sim import writer
from mlpf.sim.collections import COLLECTION_IDS
from mlpf.sim.pipeline import run_shard

# docs/contracts.md section 1
CONTRACT_BRANCHES = [
    *(
        f"MCParticles.{f}"
        for f in (
            "PDG",
            "generatorStatus",
            "simulatorStatus",
            "charge",
            "time",
            "mass",
            "vertex.x",
            "vertex.y",
            "vertex.z",
            "endpoint.x",
            "endpoint.y",
            "endpoint.z",
            "momentum.x",
            "momentum.y",
            "momentum.z",
            "parents_begin",
            "parents_end",
            "daughters_begin",
            "daughters_end",
        )
    ),
    "_MCParticles_parents.index",
    "_MCParticles_parents.collectionID",
    "_MCParticles_daughters.index",
    "_MCParticles_daughters.collectionID",
    *(
        f"SiTracks_Refitted.{f}"
        for f in (
            "type",
            "chi2",
            "ndf",
            "trackStates_begin",
            "trackStates_end",
            "subdetectorHitNumbers_begin",
            "subdetectorHitNumbers_end",
        )
    ),
    *(
        f"_SiTracks_Refitted_trackStates.{f}"
        for f in (
            "location",
            "D0",
            "phi",
            "omega",
            "Z0",
            "tanLambda",
            "time",
            "referencePoint.x",
            "referencePoint.y",
            "referencePoint.z",
        )
    ),
    "_SiTracks_Refitted_subdetectorHitNumbers",
    "SiTracks_Refitted_dQdx.dQdx.value",
    "SiTracks_Refitted_dQdx.dQdx.error",
    "_SiTracks_Refitted_dQdx_track.index",
    "_SiTracks_Refitted_dQdx_track.collectionID",
    *(
        f"{c}.{f}"
        for c in ("ECALBarrel", "ECALEndcap", "HCALBarrel", "HCALEndcap", "HCALOther", "MUON")
        for f in ("cellID", "energy", "energyError", "time", "position.x", "position.y", "position.z", "type")
    ),
    *(
        f"PandoraClusters.{f}"
        for f in (
            "type",
            "energy",
            "energyError",
            "position.x",
            "position.y",
            "position.z",
            "iTheta",
            "phi",
            "hits_begin",
            "hits_end",
        )
    ),
    "_PandoraClusters_hits.index",
    "_PandoraClusters_hits.collectionID",
    *(
        f"PandoraPFOs.{f}"
        for f in (
            "PDG",
            "energy",
            "momentum.x",
            "momentum.y",
            "momentum.z",
            "charge",
            "mass",
            "clusters_begin",
            "clusters_end",
            "tracks_begin",
            "tracks_end",
        )
    ),
    "_PandoraPFOs_clusters.index",
    "_PandoraPFOs_clusters.collectionID",
    "_PandoraPFOs_tracks.index",
    "_PandoraPFOs_tracks.collectionID",
    "CalohitMCTruthLink.weight",
    "_CalohitMCTruthLink_from.index",
    "_CalohitMCTruthLink_from.collectionID",
    "_CalohitMCTruthLink_to.index",
    "_CalohitMCTruthLink_to.collectionID",
    "SiTracksMCTruthLink.weight",
    "_SiTracksMCTruthLink_from.index",
    "_SiTracksMCTruthLink_from.collectionID",
    "_SiTracksMCTruthLink_to.index",
    "_SiTracksMCTruthLink_to.collectionID",
]


def _arrays(path: Path) -> ak.Array:
    with uproot.open(path) as f:
        return f["events"].arrays(CONTRACT_BRANCHES)


def test_file_has_contract_branches_with_cld_dtypes(ttbar_file):
    with uproot.open(ttbar_file) as f, uproot.open(CLD_FILE) as cld:
        tree, real = f["events"], cld["events"]
        missing = [b for b in CONTRACT_BRANCHES if b not in tree]
        assert not missing
        for name in CONTRACT_BRANCHES:
            if name in real:
                # same element dtype (std::vector branches differ only in their header bytes)
                ours, theirs = (
                    str(t[name].interpretation).replace(", header_bytes=10", "") for t in (tree, real)
                )
                assert ours == theirs, name
        meta = json.loads(str(f["mlpf_metadata"]))
    assert meta["format"] == "mlpf-fastsim"
    assert meta["format_version"] == 1
    assert meta["collection_ids"]["MCParticles"] == 2714477136
    assert meta["n_events"] == 20
    assert meta["sample"] == "ttbar"
    assert meta["config"]["events_per_shard"] == 20


def test_relations_are_consistent(ttbar_file):
    a = _arrays(ttbar_file)
    ids = COLLECTION_IDS
    n_mc = ak.num(a["MCParticles.PDG"])
    # daughters point back to their parent
    for ev in range(3):
        db, de = a["MCParticles.daughters_begin"][ev], a["MCParticles.daughters_end"][ev]
        pb, pe = a["MCParticles.parents_begin"][ev], a["MCParticles.parents_end"][ev]
        d_idx = a["_MCParticles_daughters.index"][ev]
        p_idx = a["_MCParticles_parents.index"][ev]
        for i in np.flatnonzero(ak.to_numpy(de - db) > 0)[:20]:
            for d in ak.to_numpy(d_idx[db[i] : de[i]]):
                assert ak.to_list(p_idx[pb[d] : pe[d]]) == [i]
    assert ak.all(a["_MCParticles_daughters.collectionID"] == ids["MCParticles"])
    # final-state particles exist and decayed ones have daughters
    status = a["MCParticles.generatorStatus"]
    assert ak.all(ak.sum(status == 1, axis=1) > 20)
    decayed_nd = (a["MCParticles.daughters_end"] - a["MCParticles.daughters_begin"])[status == 2]
    assert ak.all(decayed_nd > 0)
    # every cluster-hit entry names a hit collection and a valid index in it
    for name in ("ECALBarrel", "HCALBarrel"):
        sel = a["_PandoraClusters_hits.collectionID"] == ids[name]
        assert ak.all(a["_PandoraClusters_hits.index"][sel] < ak.num(a[f"{name}.energy"]))
    assert ak.all(a["_CalohitMCTruthLink_to.index"] < n_mc)
    assert ak.all(a["_SiTracksMCTruthLink_to.index"] < n_mc)
    assert ak.all(a["_SiTracksMCTruthLink_from.index"] < ak.num(a["SiTracks_Refitted.chi2"]))
    assert ak.all(a["_PandoraPFOs_tracks.index"] < ak.num(a["SiTracks_Refitted.chi2"]))
    assert ak.all(a["_PandoraPFOs_clusters.index"] < ak.num(a["PandoraClusters.energy"]))
    # 4 states per track, AtIP first; hit-link weights are energies summing to the hit energies
    assert ak.all(a["SiTracks_Refitted.trackStates_end"] - a["SiTracks_Refitted.trackStates_begin"] == 4)
    assert ak.all(a["_SiTracks_Refitted_trackStates.location"][:, ::4] == 1)
    w = ak.sum(a["CalohitMCTruthLink.weight"], axis=1)
    e = sum(
        ak.sum(a[f"{c}.energy"], axis=1)
        for c in ("ECALBarrel", "ECALEndcap", "HCALBarrel", "HCALEndcap", "HCALOther", "MUON")
    )
    np.testing.assert_allclose(ak.to_numpy(w), ak.to_numpy(e), rtol=1e-4)


def test_track_parameters_follow_the_truth(ttbar_file):
    a = _arrays(ttbar_file)
    st = a["_SiTracks_Refitted_trackStates.omega"][:, ::4]
    pt_trk = 3e-4 * 4.0 / np.abs(st)
    mc_idx = a["_SiTracksMCTruthLink_to.index"]
    trk_idx = a["_SiTracksMCTruthLink_from.index"]
    w = a["SiTracksMCTruthLink.weight"]
    good = w == 1.0
    px = a["MCParticles.momentum.x"][mc_idx[good]]
    py = a["MCParticles.momentum.y"][mc_idx[good]]
    ratio = ak.flatten(pt_trk[trk_idx[good]] / np.hypot(px, py))
    assert np.median(ak.to_numpy(ratio)) == pytest.approx(1.0, abs=0.01)
    charge = ak.flatten(a["MCParticles.charge"][mc_idx[good]])
    sign = ak.flatten(np.sign(st[trk_idx[good]]))
    assert np.mean(ak.to_numpy(charge) == ak.to_numpy(sign)) > 0.99


def test_same_seed_identical_different_shards_differ(tmp_path, fastsim_settings, ttbar_file):
    again = tmp_path / "again.root"
    run_shard("ttbar", "0", 42, fastsim_settings, again, show_progress=False)
    other = tmp_path / "other.root"
    run_shard("ttbar", "1", 42, fastsim_settings, other, show_progress=False)
    a, b, c = _arrays(ttbar_file), _arrays(again), _arrays(other)
    for name in CONTRACT_BRANCHES:
        assert ak.array_equal(a[name], b[name]), name
    assert not ak.array_equal(a["MCParticles.momentum.x"], c["MCParticles.momentum.x"])


def test_failed_write_leaves_nothing(tmp_path, fastsim_settings, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer.ak, "zip", boom)
    out = tmp_path / "x" / "0.root"
    with pytest.raises(RuntimeError):
        run_shard("qq", "0", 1, fastsim_settings, out, show_progress=False)
    assert not out.exists()


@pytest.mark.slow
def test_killed_job_leaves_no_output(tmp_path):
    out = tmp_path / "killed.root"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlpf",
            "fastsim",
            "--sample",
            "ttbar",
            "--shard",
            "0",
            "--seed",
            "1",
            "--settings",
            json.dumps({"events_per_shard": 20000}),
            "--output",
            str(out),
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(4)
    proc.kill()
    proc.wait()
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--sample", "bogus"], "unknown sample 'bogus'"),
        (["--sample", "ttbar", "--settings", '{"events_per_shard": -5}'], "events_per_shard"),
        (["--sample", "gun_e", "--settings", '{"gun_energy_min": 50, "gun_energy_max": 10}'], "inverted"),
        (["--sample", "ttbar", "--settings", '{"events_per_shrd": 5}'], "did you mean 'events_per_shard'"),
    ],
)
def test_bad_config_one_line_error(tmp_path, capsys, argv, needle):
    out = tmp_path / "bad.root"
    rc = main(["fastsim", "--shard", "0", "--output", str(out), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert needle in err
    assert not out.exists()


def test_cli_config_file(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("seed: 7\nfastsim:\n  events_per_shard: 5\n")
    out = tmp_path / "gun.root"
    assert (
        main(
            [
                "fastsim",
                "--sample",
                "gun_pi0",
                "--shard",
                "3",
                "--config",
                str(cfg),
                "--output",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    with uproot.open(out) as f:
        meta = json.loads(str(f["mlpf_metadata"]))
        pdg = f["events"]["MCParticles.PDG"].array()
    assert meta["seed"] == 7
    assert meta["n_events"] == 5
    assert ak.all(ak.any(pdg == 111, axis=1))


def test_events_are_written_in_baskets_of_bounded_size(tmp_path, fastsim_settings, monkeypatch):
    # the parse stage decompresses one basket at a time: a whole shard in one basket costs GBs to parse
    monkeypatch.setattr(writer, "EVENTS_PER_BASKET", 4)
    out = tmp_path / "0.root"
    run_shard("qq", "0", 1, {**fastsim_settings, "events_per_shard": 10}, out, show_progress=False)
    with uproot.open(out) as f:
        tree = f["events"]
        assert tree.num_entries == 10
        branch = tree["MCParticles.PDG"]
        assert branch.num_baskets == 3
        assert [branch.basket_entry_start_stop(i) for i in range(3)] == [(0, 4), (4, 8), (8, 10)]
