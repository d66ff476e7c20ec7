"""Kernel sums on an (eta, phi) mesh: the link features' sums in time linear in the number of elements.

The exact sums (mlpf.model.cell_sums) visit every pair of elements within the cutoff, so their cost grows with
N x (elements around each one): at hit level, where an event's hits crowd the same showers, that is N^2 in the
limit (docs/performance.md, "Model on real hit-level events"). This is the particle-mesh method of N-body codes
(Hockney & Eastwood, "Computer Simulation Using Particles", 1988, ch. 5): every element's values are shared
among the four nodes of its mesh cell (cloud-in-cell), the mesh is smoothed with the kernel, separably along eta
and phi, and each element reads the smoothed mesh back with the same four weights. Time: N for the deposit and
the read-back plus a fixed cost per event for the smoothing (the mesh has a fixed size); memory: the mesh.

Cloud-in-cell deposit and read-back each widen the kernel by a triangle of variance h^2 / 6 per axis (h: the
cell side), so the mesh kernel is a Gaussian of variance w^2 - h^2 / 3, scaled to keep the kernel's integral:
averaged over where elements fall in their cells, the mesh sums follow the exact sums' Gaussian of width w. The
element's own contribution (what it deposits and reads back itself) is subtracted exactly. The mesh is built of
tensor operations only, so the same definition runs on CPUs, GPUs and in an exported ONNX graph.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Mesh cell side per kernel width: cells as wide as the kernel keep the mesh small (the narrowest kernel, 0.02,
# gives 501 x 314 nodes over |eta| < 5) while the read-back still resolves the kernel (docs/model.md).
MESH_CELLS_PER_WIDTH = 1.0
# Mesh kernel taps whose exponent exceeds this are left out (exp(-20) = 2e-9), as the exact sums skip them.
NEGLIGIBLE_EXPONENT = 20.0


def _axis_kernel(width: float, side: float, reach: int, periodic: bool) -> torch.Tensor:
    """Taps k = -reach ... reach of the mesh kernel along one axis: a Gaussian of variance width^2 - side^2 / 3
    in the exact sums' distance (4 sin^2(dphi / 2) along a periodic phi axis, deta^2 along eta), scaled by
    width / sigma so that deposit, kernel and read-back together keep the exact kernel's integral."""
    sigma2 = width**2 - side**2 / 3.0
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float64) * side
    distance2 = 4.0 * torch.sin(offsets / 2.0) ** 2 if periodic else offsets**2
    exponent = distance2 / (2.0 * sigma2)
    taps = torch.where(exponent > NEGLIGIBLE_EXPONENT, 0.0, torch.exp(-exponent)) * (
        width / math.sqrt(sigma2)
    )
    return taps


def _reach(width: float, side: float, cutoff: float) -> int:
    """Taps on each side: to the cutoff of the exact sums, or less where the kernel is already negligible."""
    sigma = math.sqrt(width**2 - side**2 / 3.0)
    return max(
        1, min(math.ceil(cutoff / side), math.ceil(math.sqrt(2.0 * NEGLIGIBLE_EXPONENT) * sigma / side))
    )


def _self_weight(fraction: torch.Tensor, taps: torch.Tensor, reach: int) -> torch.Tensor:
    """Along one axis, what an element at `fraction` of its cell reads back of its own deposit:
    sum over its two nodes a, b of w_a w_b g(a - b)."""
    g0, g1 = taps[reach].item(), taps[reach + 1].item()
    return ((1.0 - fraction) ** 2 + fraction**2) * g0 + 2.0 * fraction * (1.0 - fraction) * g1


def mesh_kernel_sums(
    eta: torch.Tensor,
    phi: torch.Tensor,
    values: torch.Tensor,
    widths: tuple[float, ...],
    cutoff: float,
    eta_max: float,
) -> torch.Tensor:
    """[B, N, len(widths), V] kernel sums of `values` [B, N, V] over the other elements of each event, on the
    mesh. Padding must carry zero values (it then neither contributes nor, once masked, receives)."""
    values = values.float()
    eta = torch.nan_to_num(eta.float()).clamp(-eta_max, eta_max)
    phi = torch.remainder(torch.nan_to_num(phi.float()), 2.0 * math.pi)
    return torch.stack([_sums_one_width(eta, phi, values, w, cutoff, eta_max) for w in widths], dim=2)


def _sums_one_width(
    eta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, width: float, cutoff: float, eta_max: float
) -> torch.Tensor:
    B = values.shape[0]
    V = int(values.shape[-1])  # a constant of an exported graph: the kernels' shape depends on it
    side = width * MESH_CELLS_PER_WIDTH
    n_eta = math.ceil(2.0 * eta_max / side) + 1  # nodes at -eta_max + k side, the last at or beyond eta_max
    n_phi = max(3, round(2.0 * math.pi / side))
    phi_side = 2.0 * math.pi / n_phi
    reach_eta, reach_phi = _reach(width, side, cutoff), _reach(width, phi_side, cutoff)
    taps_eta = _axis_kernel(width, side, reach_eta, periodic=False)
    taps_phi = _axis_kernel(width, phi_side, reach_phi, periodic=True)

    # cloud-in-cell: each element's two nodes per axis and its weights on them
    x = (eta + eta_max) / side
    row = x.floor().clamp(0, n_eta - 2)
    fx = (x - row).clamp(0.0, 1.0)
    y = phi / phi_side
    col = y.floor().clamp(0, n_phi - 1)
    fy = (y - col).clamp(0.0, 1.0)
    row, col = row.long(), col.long()
    next_col = torch.remainder(col + 1, n_phi)
    corners = [
        (row * n_phi + col, (1.0 - fx) * (1.0 - fy)),
        (row * n_phi + next_col, (1.0 - fx) * fy),
        ((row + 1) * n_phi + col, fx * (1.0 - fy)),
        ((row + 1) * n_phi + next_col, fx * fy),
    ]
    # scatter_add, not index_add: the exported ScatterElements adds up elements that share a node
    mesh = values.new_zeros(B, n_eta * n_phi, V)
    for node, weight in corners:
        mesh = mesh.scatter_add(1, node[..., None].expand(-1, -1, V), values * weight[..., None])

    # separable smoothing, the V values as channels: zero beyond the eta edges, periodic in phi
    grid = mesh.reshape(B, n_eta, n_phi, V).permute(0, 3, 1, 2)
    kernel_eta = taps_eta.to(grid.device, grid.dtype).reshape(1, 1, 2 * reach_eta + 1, 1).repeat(V, 1, 1, 1)
    grid = F.conv2d(grid, kernel_eta, padding=(reach_eta, 0), groups=V)
    wrapped = torch.cat([grid[..., n_phi - reach_phi :], grid, grid[..., :reach_phi]], dim=-1)
    kernel_phi = taps_phi.to(grid.device, grid.dtype).reshape(1, 1, 1, 2 * reach_phi + 1).repeat(V, 1, 1, 1)
    grid = F.conv2d(wrapped, kernel_phi, groups=V)
    smoothed = grid.permute(0, 2, 3, 1).reshape(B, n_eta * n_phi, V)

    sums = sum(
        torch.gather(smoothed, 1, node[..., None].expand(-1, -1, V)) * weight[..., None]
        for node, weight in corners
    )
    own = _self_weight(fx, taps_eta, reach_eta) * _self_weight(fy, taps_phi, reach_phi)
    return sums - values * own[..., None]
