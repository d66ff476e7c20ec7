"""Element features (docs/dataset.md, "Elements X"), on hand-made inputs and on the real CLD file."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from edm4hep_fixtures import CLD_FILE as CLD
from edm4hep_fixtures import CLIC_LEGACY_FILE as CLIC_LEGACY
from mlpf.data import features
from mlpf.data.parse import parse_file


def test_feature_names_defined_once():
    assert len(features.ELEMENT_FEATURES) == features.N_FEATURES == 17
    assert len(set(features.ELEMENT_FEATURES)) == 17
    assert features.ELEMENT_FEATURES[features.X_PT] == "pt/et"
    assert features.ELEMENT_FEATURES[features.X_ENERGY] == "p/energy"
    shared = {"type": features.X_TYPE, "eta": features.X_ETA, "sin_phi": features.X_SIN_PHI}
    shared["cos_phi"] = features.X_COS_PHI  # the same column for every element type
    for names in (features.TRACK_FEATURES, *features.CALORIMETER_FEATURES.values()):
        assert all(names[column] == name for name, column in shared.items())


def _track(omega, phi=0.3, tan_lambda=0.0, bfield=4.0):
    n = len(omega)
    z = np.zeros(n, np.float32)
    return features.track_features(
        omega=np.asarray(omega, np.float32), phi=np.full(n, phi, np.float32),
        tan_lambda=np.full(n, tan_lambda, np.float32), d0=z, z0=z, time=z, chi2=z, ndf=z, dedx=z,
        dedx_error=z, radius_innermost_hit=z, bfield_tesla=bfield,
    )  # fmt: skip


def test_track_pt_from_curvature():
    # pt = 0.3 B R with R = 1/|omega|: a 10 GeV track in 4 T has omega = 3e-4 * 4 / 10 per mm.
    x = _track([1.2e-4, -1.2e-4])
    np.testing.assert_allclose(x[:, features.X_PT], 10.0, rtol=1e-5)
    x2 = _track([1.2e-4], bfield=2.0)
    np.testing.assert_allclose(x2[:, features.X_PT], 5.0, rtol=1e-5)
    assert np.all(x[:, features.X_TYPE] == features.ELEM_TYPE_TRACK)
    np.testing.assert_allclose(x[:, features.X_SIN_PHI], np.sin(0.3), rtol=1e-6)


def test_track_eta_and_p_from_tan_lambda():
    x = _track([1.2e-4], tan_lambda=np.sinh(1.5))
    np.testing.assert_allclose(x[0, features.X_ETA], 1.5, rtol=1e-5)
    np.testing.assert_allclose(x[0, features.X_ENERGY], 10.0 * np.cosh(1.5), rtol=1e-5)


def test_zero_curvature_gives_finite_zeros():
    x = _track([0.0])
    assert np.all(np.isfinite(x))
    assert x[0, features.X_PT] == 0.0


def _two_clusters(energy_weighted_spread: bool) -> np.ndarray:
    # Two clusters: the first with an ECAL and an HCAL hit, the second with one muon-system hit.
    hit_cluster = np.array([0, 0, 1])
    hit_energy = np.array([1.0, 3.0, 2.0])
    hit_position = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    return features.cluster_features(
        energy=np.array([4.0, 0.0]), x=np.zeros(2), y=np.zeros(2), z=np.zeros(2),
        itheta=np.array([np.pi / 2, np.pi / 4]), phi=np.zeros(2), hit_cluster=hit_cluster, hit_energy=hit_energy,
        hit_subdetector=np.array([0, 1, 2]), hit_position=hit_position,
        energy_weighted_spread=energy_weighted_spread,
    )  # fmt: skip


def test_cluster_spread_is_plain_for_the_paper_and_weighted_for_v2():
    cols = {name: i for i, name in enumerate(features.CLUSTER_FEATURES)}
    plain = _two_clusters(features.ENERGY_WEIGHTED_SPREAD["paper"])
    weighted = _two_clusters(features.ENERGY_WEIGHTED_SPREAD["v2"])
    # x positions 0 and 4: numpy std = 2 (paper); weighted by 1 and 3 GeV: mean 3, var (1*9 + 3*1)/4 = 3 (v2)
    np.testing.assert_allclose(plain[0, cols["sigma_x"]], 2.0, rtol=1e-6)
    np.testing.assert_allclose(weighted[0, cols["sigma_x"]], np.sqrt(3.0), rtol=1e-6)


def test_cluster_features_from_hits():
    x = _two_clusters(energy_weighted_spread=True)
    cols = {name: i for i, name in enumerate(features.CLUSTER_FEATURES)}
    assert x[0, cols["energy_ecal"]] == 1.0
    assert x[0, cols["energy_hcal"]] == 3.0
    assert x[1, cols["energy_other"]] == 2.0
    assert x[0, cols["num_hits"]] == 2
    assert x[1, cols["num_hits"]] == 1
    # Energy-weighted spread: mean x = 3, var = (1*9 + 3*1)/4 = 3.
    np.testing.assert_allclose(x[0, cols["sigma_x"]], np.sqrt(3.0), rtol=1e-6)
    assert x[0, cols["sigma_y"]] == 0.0
    np.testing.assert_allclose(x[0, cols["et"]], 4.0, rtol=1e-6)  # theta = 90 deg: et = E
    np.testing.assert_allclose(x[0, cols["eta"]], 0.0, atol=1e-6)
    assert np.all(np.isfinite(x))  # zero-energy cluster: no NaN


@pytest.mark.skipif(not CLD.is_file(), reason="real EDM4HEP fixtures not available")
def test_cld_features_agree_with_raw_branches(tmp_path):
    out = tmp_path / "cld.parquet"
    parse_file(CLD, out, {"detector": "cld"})
    X = ak.to_numpy(ak.from_parquet(out).X[0])
    with uproot.open(CLD) as f:
        t = f["events"]

        def leaf(name):
            return ak.to_numpy(t[name].array()[0])

        begin = leaf("SiTracks_Refitted.trackStates_begin")
        omega = leaf("_SiTracks_Refitted_trackStates.omega")[begin]
        tan_lambda = leaf("_SiTracks_Refitted_trackStates.tanLambda")[begin]
        d0 = leaf("_SiTracks_Refitted_trackStates.D0")[begin]
        chi2 = leaf("SiTracks_Refitted.chi2")
        e_cl = leaf("PandoraClusters.energy")
        pos_x = leaf("PandoraClusters.position.x")
        itheta = leaf("PandoraClusters.iTheta")
        hb, he = leaf("PandoraClusters.hits_begin"), leaf("PandoraClusters.hits_end")
        pfo_p = np.sqrt(sum(leaf(f"PandoraPFOs.momentum.{a}").astype(float) ** 2 for a in "xyz"))
        pfo_tb, pfo_te = leaf("PandoraPFOs.tracks_begin"), leaf("PandoraPFOs.tracks_end")
        pfo_track = leaf("_PandoraPFOs_tracks.index")
    n_trk = len(omega)
    tracks, clusters = X[:n_trk], X[n_trk:]
    assert np.all(tracks[:, 0] == 1)
    assert np.all(clusters[:, 0] == 2)
    assert len(clusters) == len(e_cl)
    cols = {name: i for i, name in enumerate(features.TRACK_FEATURES)}
    np.testing.assert_array_equal(tracks[:, cols["omega"]], omega)
    np.testing.assert_array_equal(tracks[:, cols["tanLambda"]], tan_lambda)
    np.testing.assert_array_equal(tracks[:, cols["D0"]], d0)
    np.testing.assert_array_equal(tracks[:, cols["chi2"]], chi2)
    np.testing.assert_allclose(tracks[:, cols["pt"]], 3e-4 * 2.0 / np.abs(omega), rtol=1e-5)
    ccols = {name: i for i, name in enumerate(features.CLUSTER_FEATURES)}
    np.testing.assert_array_equal(clusters[:, ccols["energy"]], e_cl)
    np.testing.assert_array_equal(clusters[:, ccols["position.x"]], pos_x)
    np.testing.assert_array_equal(clusters[:, ccols["iTheta"]], itheta)
    np.testing.assert_array_equal(clusters[:, ccols["num_hits"]], he - hb)
    # Physics: with the CLD field (2 T) the track momentum equals that of the Pandora PFO built on the track.
    one_track = (pfo_te - pfo_tb) == 1
    ratio = tracks[pfo_track[pfo_tb[one_track]], cols["p"]] / pfo_p[one_track]
    assert len(ratio) >= 10
    np.testing.assert_allclose(np.median(ratio), 1.0, rtol=0.01)
    summed = (
        clusters[:, ccols["energy_ecal"]]
        + clusters[:, ccols["energy_hcal"]]
        + clusters[:, ccols["energy_other"]]
    )
    assert np.all(summed > 0)


@pytest.mark.skipif(not CLIC_LEGACY.is_file(), reason="real EDM4HEP fixtures not available")
@pytest.mark.parametrize("target", ["paper", "v2"])
def test_cluster_spread_on_the_real_clic_file(tmp_path, target):
    """sigma_x/y/z recomputed here from the raw legacy branches, hit by hit: the paper's dataset takes the plain
    std of the cluster's hit positions (jpata/particleflow v1.6.2 scripts/fcc/postprocessing.py,
    `cluster_to_features`: np.std(hits_posx)); v2 weights by hit energy (upstream PR #345)."""
    out = tmp_path / f"{target}.parquet"
    parse_file(CLIC_LEGACY, out, {"target": target})
    X = ak.to_numpy(ak.flatten(ak.from_parquet(out).X, axis=1))
    clusters = X[X[:, 0] == 2]
    with uproot.open(CLIC_LEGACY) as f:
        ids = f["metadata"].arrays("CollectionIDs")["CollectionIDs"]
        name_of = dict(zip(ids["m_collectionIDs"][0].tolist(), ids["m_names"][0].tolist(), strict=True))
        t = f["events"]
        expected = []
        for event in range(t.num_entries):

            def leaf(name, event=event):
                return ak.to_numpy(t[name].array(entry_start=event, entry_stop=event + 1)[0])

            begin, end = leaf("PandoraClusters.hits_begin"), leaf("PandoraClusters.hits_end")
            energy = leaf("PandoraClusters.energy")
            index, cid = leaf("PandoraClusters#1.index"), leaf("PandoraClusters#1.collectionID")
            for k in np.flatnonzero(energy > 0):  # zero-energy clusters are not elements
                span = slice(begin[k], end[k])
                members = [(name_of[c], i) for c, i in zip(cid[span], index[span], strict=True)]
                pos = np.array([[leaf(f"{n}.position.{a}")[i] for a in "xyz"] for n, i in members])
                w = np.array([leaf(f"{n}.energy")[i] for n, i in members], dtype=float)
                if target == "paper":
                    expected.append(np.std(pos, axis=0))
                else:
                    mean = (w[:, None] * pos).sum(0) / w.sum()
                    expected.append(np.sqrt((w[:, None] * (pos - mean) ** 2).sum(0) / w.sum()))
    cols = [features.CLUSTER_FEATURES.index(f"sigma_{a}") for a in "xyz"]
    assert len(expected) == len(clusters) > 0
    np.testing.assert_allclose(clusters[:, cols], np.array(expected), rtol=1e-4, atol=1e-3)
