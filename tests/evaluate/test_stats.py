"""Response statistics and binomial efficiencies."""

from __future__ import annotations

import numpy as np
import pytest

from mlpf.evaluate.classes import class_metrics, confusion_matrix
from mlpf.evaluate.stats import efficiency, med_iqr, summarize, summarize_binned


def test_med_iqr_matches_numpy_percentile_and_ignores_nan() -> None:
    values = np.array([0.8, 0.9, 1.0, 1.1, 1.2, np.nan, 3.0])
    p25, p50, p75 = np.percentile(values[np.isfinite(values)], [25, 50, 75])
    assert med_iqr(values) == pytest.approx((p50, p75 - p25))
    assert np.isnan(med_iqr(np.array([np.nan]))[0])


def test_gaussian_iqr_and_bootstrap_error_scale() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(1.0, 0.1, 20_000)
    out = summarize(values, 200, np.random.default_rng(0))
    # IQR of a Gaussian = 1.349 sigma; error of a median = 1.2533 sigma / sqrt(n).
    assert out["iqr"] == pytest.approx(1.349 * 0.1, rel=0.03)
    assert out["median_err"] == pytest.approx(1.2533 * 0.1 / np.sqrt(len(values)), rel=0.25)
    assert out["iqr_over_median"] == pytest.approx(out["iqr"] / out["median"])


def test_bootstrap_is_reproducible_from_the_seed() -> None:
    values = np.random.default_rng(5).normal(1.0, 0.2, 500)
    a = summarize(values, 50, np.random.default_rng(11))
    b = summarize(values, 50, np.random.default_rng(11))
    c = summarize(values, 50, np.random.default_rng(12))
    assert a == b
    assert a["median_err"] != c["median_err"]


def test_binned_counts_follow_histogram_and_sparse_bins_are_nan() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 100, 1000)
    values = 1 + 0.01 * x + rng.normal(0, 0.01, 1000)
    edges = [0, 20, 50, 100, 200]
    out = summarize_binned(values, x, edges, 10, np.random.default_rng(0), min_entries=5)
    assert out["n"] == np.histogram(x, bins=edges)[0].tolist()
    in_bin = values[(x >= 20) & (x < 50)]
    assert out["median"][1] == pytest.approx(np.percentile(in_bin, 50))
    assert out["n"][3] == 0
    assert np.isnan(out["median"][3])


def test_wilson_efficiency_errors() -> None:
    eff, low, high = efficiency(np.array([0, 5, 10, 0]), np.array([10, 10, 10, 0]))
    assert eff[:3].tolist() == [0.0, 0.5, 1.0]
    assert low[0] == 0.0
    assert high[0] > 0.05
    assert high[2] == 0.0
    assert low[2] > 0.05
    # At k = n/2 the Wilson interval is symmetric and close to sqrt(p(1-p)/n) for n = 10.
    assert low[1] == pytest.approx(high[1])
    assert low[1] == pytest.approx(np.sqrt(0.25 / 10), rel=0.1)
    assert np.isnan(eff[3])


def test_class_metrics_count_efficiency_and_fakes_exactly() -> None:
    # 4 photons in the target, reco finds 3 of them as photons and calls one neutral hadron a photon.
    target = np.array([3, 3, 3, 3, 2, 2, 1], dtype=np.int8)
    reco = np.array([3, 3, 3, 0, 3, 2, 1], dtype=np.int8)
    energy = np.array([1.5, 3, 7, 30, 3, 4, 5], dtype=np.float32)
    elements = {
        "element_type": np.array([2, 2, 2, 2, 2, 2, 1], dtype=np.int8),
        # Clusters are binned by energy, the track (last element) by its pT: 3 GeV, though its energy is 5.
        "element_pt": np.array([-1, -1, -1, -1, -1, -1, 3.0], dtype=np.float32),
        "element_energy": energy,
        "target_class": target,
        "target_pt": energy,
        "target_energy": energy,
        "mlpf_class": reco,
        "mlpf_pt": energy * 1.1,
        "mlpf_energy": energy * 0.9,
    }
    out = class_metrics(elements, "mlpf", [0, 2, 5, 50], 0, np.random.default_rng(0), 1)
    photon = out["photon"]
    assert (photon["n_target"], photon["n_reco"]) == (4, 4)
    assert photon["efficiency"] == pytest.approx(3 / 4)
    assert photon["fake_rate"] == pytest.approx(1 / 4)
    assert photon["pt_response"]["median"] == pytest.approx(1.1)
    assert photon["energy_response"]["median"] == pytest.approx(0.9)
    binned = photon["binned"]["efficiency"]
    assert binned["n"] == [1, 1, 2]
    assert binned["value"] == pytest.approx([1.0, 1.0, 0.5])
    assert photon["binned"]["fake_rate"]["value"] == pytest.approx([0.0, 0.5, 0.0])
    assert out["neutral_hadron"]["efficiency"] == pytest.approx(0.5)
    assert out["charged_hadron"]["binned"]["efficiency"]["n"] == [0, 1, 0]
    assert out["charged_hadron"]["binned"]["variable"] == "track_pt_or_cluster_energy"
    matrix = confusion_matrix(target, reco)
    assert matrix[3][0] == 1
    assert matrix[2][3] == 1
    assert matrix[3][3] == 3


def test_fast_bootstrap_quartiles_equal_numpy_on_the_same_resample() -> None:
    from mlpf.evaluate.stats import _resampled_quartiles

    values = np.random.default_rng(8).normal(size=101)
    ordered = np.sort(values)
    # Draw the same resample indices twice: once through the counting shortcut, once explicitly.
    fast = _resampled_quartiles(ordered, np.random.default_rng(99))
    indices = np.random.default_rng(99).integers(0, len(ordered), size=len(ordered))
    assert fast == pytest.approx(np.percentile(ordered[indices], [25, 50, 75]), rel=1e-12)
