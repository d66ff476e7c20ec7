"""The kernel sums on an (eta, phi) mesh: what they are, against the exact pairwise sums and by construction."""

from __future__ import annotations

import math

import pytest
import torch

from mlpf.data.features import ELEM_TYPE_CLUSTER, X_ENERGY, X_TYPE
from mlpf.model.geometry import LINK_CUTOFF, LINK_GRID_ETA_MAX, LINK_WIDTHS, N_LINK_FEATURES, link_features
from mlpf.model.mesh_sums import MESH_CELLS_PER_WIDTH, mesh_kernel_sums
from mlpf.model.pf_links import X_CLUSTER_ECAL, X_CLUSTER_HCAL


def _sums(eta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return mesh_kernel_sums(eta, phi, values, LINK_WIDTHS, LINK_CUTOFF, LINK_GRID_ETA_MAX)


def test_an_element_alone_reads_nothing_of_its_own_deposit() -> None:
    """One element per event, anywhere (cell corners, the phi seam, beyond the mesh's eta edge): sums of 0."""
    eta = torch.tensor([[0.0], [0.0137], [-2.31], [4.999], [7.5], [-9.0]])
    phi = torch.tensor([[0.0], [1.2345], [math.pi - 1e-4], [-math.pi + 1e-4], [2.0], [-0.7]])
    values = torch.tensor([1.0, 3.0, 50.0, 0.5, 8.0, 2.0])[:, None, None].expand(-1, 1, 6)
    assert _sums(eta, phi, values).abs().max() < 1e-5 * 50


@pytest.mark.parametrize("w", range(len(LINK_WIDTHS)))
@pytest.mark.parametrize("distance_in_widths", [0.0, 0.5, 1.0, 2.0])
def test_averaged_over_positions_the_mesh_kernel_is_the_exact_gaussian(
    w: int, distance_in_widths: float
) -> None:
    """A pair at distance d, placed at random on the mesh: what one reads of the other averages to
    exp(-d^2 / (2 w^2)), the exact sums' kernel (point by point it varies with where the pair falls in its cells)."""
    g = torch.Generator().manual_seed(w)
    width = LINK_WIDTHS[w]
    d = distance_in_widths * width
    # pairs on a lattice 0.5 apart (beyond the cutoff: no pair sees another), jittered so that they fall
    # anywhere in their mesh cells; four events of 19 x 12 pairs
    lattice_eta, lattice_phi = torch.meshgrid(
        torch.arange(-4.5, 4.6, 0.5), torch.arange(12) * (2 * math.pi / 12), indexing="ij"
    )
    events = 4
    eta0 = lattice_eta.flatten() + (torch.rand(events, lattice_eta.numel(), generator=g) - 0.5) * 0.2
    phi0 = lattice_phi.flatten() + (torch.rand(events, lattice_eta.numel(), generator=g) - 0.5) * 0.2
    angle = torch.rand(eta0.shape, generator=g) * 2 * math.pi
    eta = torch.cat([eta0, eta0 + d * torch.cos(angle)], 1)
    phi = torch.cat([phi0, phi0 + d * torch.sin(angle)], 1)
    n = eta0.shape[1]
    values = torch.zeros(events, 2 * n, 1)
    values[:, :n] = 1.0
    read = mesh_kernel_sums(eta, phi, values, (width,), LINK_CUTOFF, LINK_GRID_ETA_MAX)[:, n:, 0, 0]
    exact = math.exp(-(d**2) / (2 * width**2))
    assert read.mean().item() == pytest.approx(exact, rel=0.04, abs=0.003)
    assert read.min() > 0.4 * exact  # no position loses the partner (the tails vary most with the position)


def test_the_phi_seam_is_invisible() -> None:
    """Turning a whole event by a whole number of mesh cells in phi (the pattern now straddling phi = +-pi)
    changes no sum: the mesh is periodic in phi."""
    g = torch.Generator().manual_seed(5)
    n = 60
    eta = torch.randn(1, n, generator=g) * 0.05
    phi = torch.randn(1, n, generator=g) * 0.05 + 0.4
    values = torch.rand(1, n, 6, generator=g)
    base = _sums(eta, phi, values)
    for w, width in enumerate(LINK_WIDTHS):
        cells = round(2 * math.pi / (width * MESH_CELLS_PER_WIDTH))
        turn = round((math.pi - 0.4) * cells / (2 * math.pi)) * (2 * math.pi / cells)  # phi ~0.4 to ~pi
        turned_phi = torch.remainder(phi + turn + math.pi, 2 * math.pi) - math.pi
        assert (turned_phi < 0).any()
        assert (turned_phi > 0).any()
        turned = _sums(eta, turned_phi, values)
        torch.testing.assert_close(turned[..., w, :], base[..., w, :], atol=2e-4, rtol=2e-4)


def test_events_and_padding_do_not_leak_into_each_other() -> None:
    """An event's sums are the same alone, beside another event of the batch, and with zero-valued padding."""
    g = torch.Generator().manual_seed(8)
    eta = torch.randn(2, 50, generator=g) * 0.1
    phi = torch.randn(2, 50, generator=g) * 0.1
    values = torch.rand(2, 50, 6, generator=g)
    values[1, 30:] = 0.0  # padding of the second event
    both = _sums(eta, phi, values)
    torch.testing.assert_close(both[0], _sums(eta[:1], phi[:1], values[:1])[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        both[1, :30], _sums(eta[1:, :30], phi[1:, :30], values[1:, :30])[0], atol=1e-5, rtol=1e-5
    )


def test_mesh_link_features_follow_the_pairwise_ones() -> None:
    """The link features from the mesh track those of the exact sums on event-like patches of elements: every
    column correlates at > 0.99 and differs by < 0.08 on average in log(1 + sum)."""
    g = torch.Generator().manual_seed(11)
    B, N = 2, 400
    X = torch.zeros(B, N, 17)
    X[..., X_TYPE] = torch.randint(1, 3, (B, N), generator=g).float()
    X[..., X_ENERGY] = torch.rand(B, N, generator=g) * 20
    cluster = X[..., X_TYPE] == ELEM_TYPE_CLUSTER
    fraction = torch.rand(B, N, generator=g)
    X[..., X_CLUSTER_ECAL] = fraction * X[..., X_ENERGY] * cluster
    X[..., X_CLUSTER_HCAL] = (1 - fraction) * X[..., X_ENERGY] * cluster
    eta = torch.randint(0, 5, (B, N), generator=g) * 0.15 + torch.randn(B, N, generator=g) * 0.04
    phi = torch.randint(0, 5, (B, N), generator=g) * 0.15 + torch.randn(B, N, generator=g) * 0.04
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 300:] = False
    X = X * mask[..., None]
    exact = link_features(X, mask, eta, phi)
    mesh = link_features(X, mask, eta, phi, mesh=True)
    assert mesh.shape == exact.shape == (B, N, N_LINK_FEATURES)
    assert mesh[~mask].abs().sum() == 0
    for column in range(N_LINK_FEATURES):
        a, b = exact[..., column][mask], mesh[..., column][mask]
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.99, column
        assert (a - b).abs().mean() < 0.08, column
