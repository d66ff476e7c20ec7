"""Kernel sums over nearby elements with cell lists, compiled with numba: the CPU path of the link features.

For every element i and kernel width w: sum over the other elements j within `cutoff` of
exp(-d_ij / (2 w^2)) values_j, with d_ij = 4 sin^2(dphi / 2) + deta^2 in the (eta, phi) of their calorimeter
points (mlpf.model.geometry.link_features defines the features). Elements are sorted into (eta, phi) cells of
side >= cutoff, so each one visits the elements of its own and the 8 neighbouring cells: time grows as N x
(elements per neighbourhood), memory as N, nothing is N x N.

Why compiled code: built from tensor operations (mlpf.model.geometry._grid_kernel_sums, still the path on
GPUs) the same sums materialise every candidate pair several times over and pad every cell to the fullest one;
the loop below touches each candidate once, in float64, and was 6-17 x faster on one thread (N = 256 ... 10240
elements of event-like directions; docs/performance.md).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

# The cell grid covers |eta| < GRID_ETA_MAX; elements beyond share the edge rows (more candidates, none lost).
GRID_ETA_MAX = 5.0
# Kernel values below exp(-NEGLIGIBLE_EXPONENT) = 2e-9 are not added: a narrow kernel is that small for most
# pairs within the common cutoff, and its exp is the costly part of a pair.
NEGLIGIBLE_EXPONENT = 20.0
# Events with fewer elements run on one thread: below ~2000 elements starting the threads costs more than
# splitting the work saves.
PARALLEL_MIN_ELEMENTS = 2048
# Cells per cutoff length: cells of half the cutoff and a 5 x 5 neighbourhood cover the cutoff disc with 1.6
# cutoff^2 of candidates instead of 9 cutoff^2 for cells of the cutoff and 3 x 3: fewer pairs to reject.
CELLS_PER_CUTOFF = 2


@numba.njit(cache=True)
def _accumulate(i, out, eta, cos_phi, sin_phi, values, cell_of, cell_start, order, n_eta, n_phi, reach, cutoff2,
                inv_two_w2):  # fmt: skip
    """Add to out[i] the kernel-weighted values of the elements within `cutoff2` of element i: the elements of
    the cells within `reach` rows and columns of its own (`order` lists elements by cell, `cell_start` the
    offsets)."""
    row = cell_of[i] // n_phi
    col = cell_of[i] % n_phi
    for r in range(max(row - reach, 0), min(row + reach + 1, n_eta)):
        for d_col in range(-reach, reach + 1):
            cell = r * n_phi + (col + d_col) % n_phi
            for k in range(cell_start[cell], cell_start[cell + 1]):
                j = order[k]
                deta = eta[i] - eta[j]
                # 4 sin^2(dphi / 2) = 2 (1 - cos dphi); in float64 the cancellation costs ~1e-16 of 1
                d = 2.0 * (1.0 - (cos_phi[i] * cos_phi[j] + sin_phi[i] * sin_phi[j])) + deta * deta
                if d >= cutoff2 or j == i:
                    continue
                for w in range(inv_two_w2.shape[0]):
                    exponent = d * inv_two_w2[w]
                    if exponent > NEGLIGIBLE_EXPONENT:  # a narrow kernel's far tail: skip the exp
                        continue
                    kernel = math.exp(-exponent)
                    for v in range(values.shape[1]):
                        out[i, w, v] += kernel * values[j, v]


@numba.njit(cache=True)
def _sums_serial(out, *grid):
    for i in range(out.shape[0]):
        _accumulate(i, out, *grid)


@numba.njit(parallel=True, cache=True)
def _sums_parallel(out, *grid):
    for i in numba.prange(out.shape[0]):  # each element writes only its own row of `out`
        _accumulate(i, out, *grid)


def phi_span(cutoff: float) -> float:
    """Largest |dphi| of a pair within `cutoff`: 4 sin^2(dphi / 2) < cutoff^2 reaches slightly beyond the cutoff."""
    return 2.0 * math.asin(min(cutoff / 2.0, 1.0))


def _grid(
    eta: np.ndarray, phi: np.ndarray, eta_side: float, phi_side: float, eta_max: float
) -> tuple[np.ndarray, int, int]:
    """Cell index of each element on an (eta, phi) grid of cells no smaller than the given sides; elements
    beyond |eta| = `eta_max` share the edge rows (more candidates there, none lost)."""
    n_phi = max(2 * CELLS_PER_CUTOFF + 1, int(2 * math.pi / phi_side))
    half_eta = math.ceil(eta_max / eta_side)
    col = np.clip(np.floor(np.mod(phi, 2 * math.pi) * (n_phi / (2 * math.pi))).astype(np.int64), 0, n_phi - 1)
    row = np.clip(np.floor(eta / eta_side).astype(np.int64) + half_eta, 0, 2 * half_eta - 1)
    return row * n_phi + col, 2 * half_eta, n_phi


def cell_list_kernel_sums(
    eta: torch.Tensor,
    phi: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    widths: tuple[float, ...],
    cutoff: float,
    eta_max: float,
) -> torch.Tensor:
    """[B, N, len(widths), V] kernel sums of `values` [B, N, V] over the other real elements of each event
    (padding neither contributes nor receives). CPU tensors; no gradient (the inputs are data)."""
    B, N = eta.shape
    out = np.zeros((B, N, len(widths), values.shape[-1]), dtype=np.float32)
    inv_two_w2 = np.array([0.5 / w**2 for w in widths])
    threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if threads > 1:
        numba.set_num_threads(threads)
    eta_all, phi_all = eta.detach().double().cpu().numpy(), phi.detach().double().cpu().numpy()
    values_all, mask_all = values.detach().double().cpu().numpy(), mask.cpu().numpy()
    for b in range(B):  # events are independent; a batch holds a handful of them
        real = np.flatnonzero(mask_all[b])
        if len(real) == 0:
            continue
        e, p = eta_all[b, real], phi_all[b, real]
        sums = np.zeros((len(real), len(widths), values_all.shape[-1]))
        grid = (e, np.cos(p), np.sin(p), values_all[b, real], *_event_grid(e, p, cutoff, eta_max))
        kernel = _sums_parallel if threads > 1 and len(real) >= PARALLEL_MIN_ELEMENTS else _sums_serial
        kernel(sums, *grid, CELLS_PER_CUTOFF, cutoff**2, inv_two_w2)
        out[b, real] = sums
    return torch.from_numpy(out).to(values.device)


def _event_grid(
    eta: np.ndarray, phi: np.ndarray, cutoff: float, eta_max: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(cell of each element, offsets of each cell in `order`, elements ordered by cell, rows, columns) of one
    event on cells of half the cutoff."""
    cell_of, n_eta, n_phi = _grid(
        eta, phi, cutoff / CELLS_PER_CUTOFF, phi_span(cutoff) / CELLS_PER_CUTOFF, eta_max
    )
    order = np.argsort(cell_of, kind="stable")
    start = np.zeros(n_eta * n_phi + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell_of, minlength=n_eta * n_phi), out=start[1:])
    return cell_of, start, order, n_eta, n_phi


@numba.njit(cache=True)
def _nearest(query, key, eta, cos_phi, sin_phi, cell_of, cell_start, order, n_eta, n_phi, reach, cutoff2):
    """For every query element, the nearest key element within `cutoff2` (-1 if none) and its squared
    distance; ties go to the key listed first in `order` (deterministic)."""
    n = eta.shape[0]
    nearest = np.full(n, -1)
    best = np.full(n, cutoff2)
    for i in range(n):
        if not query[i]:
            continue
        row = cell_of[i] // n_phi
        col = cell_of[i] % n_phi
        for r in range(max(row - reach, 0), min(row + reach + 1, n_eta)):
            for d_col in range(-reach, reach + 1):
                cell = r * n_phi + (col + d_col) % n_phi
                for k in range(cell_start[cell], cell_start[cell + 1]):
                    j = order[k]
                    if not key[j] or j == i:
                        continue
                    deta = eta[i] - eta[j]
                    d = 2.0 * (1.0 - (cos_phi[i] * cos_phi[j] + sin_phi[i] * sin_phi[j])) + deta * deta
                    if d < best[i] or (d == best[i] and nearest[i] >= 0 and j < nearest[i]):
                        best[i] = d
                        nearest[i] = j
    return nearest, best


def cell_list_nearest(
    eta: torch.Tensor,
    phi: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    cutoff: float,
    eta_max: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every `query` element of each event, the index (in the event) of the nearest `key` element within
    `cutoff` ([B, N] long, -1 where none; ties: lowest index) and the squared distance ([B, N], cutoff^2 where
    none). `query` and `key` are [B, N] booleans (padding in neither). CPU tensors."""
    B, N = eta.shape
    nearest = np.full((B, N), -1, dtype=np.int64)
    distance = np.full((B, N), cutoff**2)
    eta_all, phi_all = eta.detach().double().cpu().numpy(), phi.detach().double().cpu().numpy()
    query_all, key_all = query.cpu().numpy(), key.cpu().numpy()
    for b in range(B):
        real = np.flatnonzero(query_all[b] | key_all[b])
        if len(real) == 0:
            continue
        e, p = eta_all[b, real], phi_all[b, real]
        local, d2 = _nearest(
            query_all[b, real], key_all[b, real], e, np.cos(p), np.sin(p), *_event_grid(e, p, cutoff, eta_max),
            CELLS_PER_CUTOFF, cutoff**2,
        )  # fmt: skip
        nearest[b, real] = np.where(local >= 0, real[np.maximum(local, 0)], -1)
        distance[b, real] = d2
    return torch.from_numpy(nearest).to(eta.device), torch.from_numpy(distance).float().to(eta.device)
