"""`mlpf fastsim-validate` helpers and a small end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlpf.cli import main
from mlpf.evaluate.fastsim import _fit_resolution, rms90


def test_rms90_of_gaussian_core_with_tails():
    rng = np.random.default_rng(0)
    core = rng.normal(size=9000)
    tails = rng.normal(size=1000) * 20
    x = np.concatenate([core, tails])
    # RMS90 ignores the 10% tails: close to the core width, far below the full RMS
    assert rms90(x) < 1.2
    assert np.std(x) > 5


def test_resolution_fit_recovers_terms():
    e = np.array([2.0, 5.0, 10.0, 20.0, 50.0, 100.0])
    sig = np.sqrt(0.15**2 / e + 0.01**2)
    fit = _fit_resolution(e, sig)
    assert fit["stochastic"] == pytest.approx(0.15, rel=1e-6)
    assert fit["constant"] == pytest.approx(0.01, rel=1e-4)


@pytest.mark.slow
def test_validate_command_writes_summary(tmp_path):
    out = tmp_path / "val"
    assert main(["fastsim-validate", "--output", str(out), "--events", "60", "--seed", "3"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 30 < summary["ttbar_multiplicities"]["tracks"] < 70
    assert summary["ecal_photon"]["bins"]
    assert (out / "pf_jet_energy_resolution.png").stat().st_size > 1000
    assert "tracks / ttbar event" in (out / "summary.md").read_text()
