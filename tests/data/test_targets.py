"""Target definition and association (docs/dataset.md, "Targets") on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from mlpf.data import targets
from mlpf.data.features import ELEM_TYPE_CLUSTER, ELEM_TYPE_TRACK


def cls(name: str) -> int:
    return targets.CLASS_NAMES.index(name)


@pytest.mark.parametrize(
    ("pdg", "charge", "elem", "expected"),
    [
        (211, 1, ELEM_TYPE_TRACK, "charged_hadron"),
        (-2212, -1, ELEM_TYPE_TRACK, "charged_hadron"),
        (11, -1, ELEM_TYPE_TRACK, "electron"),
        (-13, 1, ELEM_TYPE_TRACK, "muon"),
        (22, 0, ELEM_TYPE_TRACK, "charged_hadron"),  # photon on a track (conversion) -> charged hadron
        (130, 0, ELEM_TYPE_TRACK, "charged_hadron"),
        (22, 0, ELEM_TYPE_CLUSTER, "photon"),
        (11, -1, ELEM_TYPE_CLUSTER, "photon"),
        (2112, 0, ELEM_TYPE_CLUSTER, "neutral_hadron"),
        (211, 1, ELEM_TYPE_CLUSTER, "neutral_hadron"),
        (13, -1, ELEM_TYPE_CLUSTER, "neutral_hadron"),
        (0, 0, ELEM_TYPE_CLUSTER, "none"),
    ],
)
def test_pdg_to_class(pdg, charge, elem, expected):
    got = targets.pdg_to_class(np.array([pdg]), np.array([charge]), np.array([elem]))
    assert targets.CLASS_NAMES[int(got[0])] == expected


def sequential_greedy(pair_p, pair_e, pair_w, rank):
    """The upstream loop: particles by rank, each takes its best unused element."""
    used, out = set(), np.full(len(rank), -1)
    for p in np.argsort(rank):
        sel = pair_p == p
        for e in sorted(zip(-pair_w[sel], pair_e[sel], strict=False)):
            if e[1] not in used:
                used.add(e[1])
                out[p] = e[1]
                break
    return out


@pytest.mark.parametrize("seed", range(20))
def test_greedy_match_equals_sequential_loop(seed):
    rng = np.random.default_rng(seed)
    n_p, n_e = int(rng.integers(1, 40)), int(rng.integers(1, 30))
    n_pairs = int(rng.integers(0, 120))
    pp = rng.integers(0, n_p, n_pairs)
    pe = rng.integers(0, n_e, n_pairs)
    pp, pe, pw = targets.aggregate_pairs(pp, pe, rng.random(n_pairs).round(1), n_e)  # ties on purpose
    rank = rng.permutation(n_p)
    np.testing.assert_array_equal(
        targets.greedy_match(pp, pe, pw, rank, n_e), sequential_greedy(pp, pe, pw, rank)
    )


def test_association_merges_and_drops():
    # Particles: 0 (20 GeV) and 1 (5 GeV) both deposit in cluster 0 only; 2 (8 GeV) has track 0;
    # 3 (3 GeV) only links to track 0 (already taken, no cluster) -> dropped.
    energy = np.array([20.0, 5.0, 8.0, 3.0])
    p4 = np.stack([energy, np.zeros(4), np.zeros(4), energy], axis=1)
    tracks = (np.array([2, 3]), np.array([0, 0]), np.array([0.9, 0.8]))
    clusters = (np.array([0, 1]), np.array([0, 0]), np.array([15.0, 4.0]))
    a = targets.associate(
        visible_mask=np.ones(4, bool), energy=energy, p4=p4, track_pairs=tracks, cluster_pairs=clusters,
        n_tracks=1, n_clusters=1,
    )  # fmt: skip
    assert a.track_owner.tolist() == [2]
    assert a.cluster_owner.tolist() == [0]
    assert a.merged_into.tolist() == [-1, 0, -1, -1]
    assert a.dropped.tolist() == [False, False, False, True]
    np.testing.assert_allclose(a.p4[0], [25.0, 0, 0, 25.0])  # 4-vector sum of 0 and 1
    # Energy conservation: energy on elements = energy of the kept particles.
    on_elements = a.p4[a.track_owner, 3].sum() + a.p4[a.cluster_owner, 3].sum()
    assert on_elements == pytest.approx(energy[:3].sum())


def test_track_preferred_over_cluster_and_energy_order():
    # Both particles want track 0; the more energetic wins it, the other falls back to its cluster.
    energy = np.array([2.0, 10.0])
    p4 = np.stack([energy, np.zeros(2), np.zeros(2), energy], axis=1)
    a = targets.associate(
        visible_mask=np.ones(2, bool), energy=energy, p4=p4,
        track_pairs=(np.array([0, 1]), np.array([0, 0]), np.array([1.0, 0.7])),
        cluster_pairs=(np.array([0, 1]), np.array([0, 0]), np.array([1.5, 0.2])),
        n_tracks=1, n_clusters=1,
    )  # fmt: skip
    assert a.track_owner.tolist() == [1]
    assert a.cluster_owner.tolist() == [0]


def test_visibility_definitions():
    paper, v2 = targets.TARGET_DEFINITIONS["paper"], targets.TARGET_DEFINITIONS["v2"]
    status = np.array([1, 1, 1, 2, 1, 1])
    pdg = np.array([211, 22, 12, 211, 2112, 22])
    energy = np.array([10.0, 1.0, 5.0, 10.0, 10.0, 0.005])
    max_track = np.array([0.7, 0.0, 0.0, 1.0, 0.3, 0.0])
    calo = np.array([0.0, 0.5, 5.0, 5.0, 0.6, 0.005])
    assert targets.visible(paper, status, pdg, energy, max_track, calo).tolist() == [
        True, True, False, False, False, False,
    ]  # fmt: skip
    # v2: track link 0.3 >= 0.2 and calo 6 % > 5 % make the neutron visible; 5 MeV photon passes E > 1 MeV.
    assert targets.visible(v2, status, pdg, energy, max_track, calo).tolist() == [
        True, True, False, False, True, True,
    ]  # fmt: skip


def test_credit_map_gives_daughters_links_to_status1_parent():
    status = np.array([2, 1, 0, 0, 1])
    pdg = np.array([23, 211, 13, 22, 14])
    first_parent = np.array([-1, 0, 1, 4, 0])
    # 2 (decay muon of the pion 1) credits 1; 3's parent is a neutrino: keeps its own links.
    assert targets.credit_map(status, pdg, first_parent).tolist() == [0, 1, 1, 3, 4]


def test_candidate_placement():
    pdg = np.array([211, 0, 22, 130, 22])
    first_track = np.array([1, 0, -1, -1, -1])
    first_cluster = np.array([0, 2, 1, 1, -1])
    track_pfo, cluster_pfo, unplaced = targets.candidate_placement(pdg, first_track, first_cluster, 2, 3)
    # PFO 0 sits on its track only; PDG-0 PFO 1 is removed; 2 and 3 share cluster 1: the first keeps it;
    # PFO 4 has no element. Unplaced: 3 and 4.
    assert track_pfo.tolist() == [-1, 0]
    assert cluster_pfo.tolist() == [-1, 2, -1]
    assert unplaced == 2


def test_particle_rows_zero_for_no_target():
    rows = targets.particle_rows(
        np.array([0, 1]), np.array([1.0, -1.0]), np.array([3.0, 3.0]), np.array([4.0, 4.0]),
        np.array([0.0, 0.0]), np.array([5.0, 5.0]),
    )  # fmt: skip
    assert rows.dtype == np.float32
    assert rows.shape == (2, 7)
    assert np.all(rows[0] == 0)
    np.testing.assert_allclose(rows[1], [1, -1, 5.0, 0.0, 0.8, 0.6, 5.0], rtol=1e-6)
