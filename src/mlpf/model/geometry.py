"""Where each element meets the calorimeter: the common coordinates in which tracks and clusters can be linked.

Track rows of X describe the helix at the interaction point, cluster rows the shower position in the
calorimeter. A charged particle bends in the solenoid field before it showers (a 5 GeV track in CLICdet's 4 T
turns by 0.18 rad in phi before the ECAL), so a network comparing a track's IP direction with cluster positions
has to learn the helix itself. Here the helix is extrapolated analytically to the calorimeter front face
(barrel cylinder, else endcap disk) and each element gets the direction of its calorimeter point, Fourier
features of it (their dot products are a peaked kernel in (delta eta, delta phi) that attention and the LSH
distance can use), and kernel sums of the track momentum and cluster energy around it: the link between a track
and the cluster it hits, the step rule-based particle flow starts from. At the default training scale these
inputs took the ttbar jet pT IQR/median from 0.123 to 0.051 (docs/model.md).

The helix convention is the EDM4hep/LCIO one: omega [1/mm] is the signed curvature with the sign of the charge
(in the +z field of CLICdet and CLD), the position azimuth after a turning angle alpha is
phi0 - sign(omega) alpha / 2 and the transverse chord 2 sin(alpha / 2) / |omega|. The real CLD reconstruction in
tests/fixtures/edm4hep stores an AtCalorimeter track state that this reproduces (tests/model/test_geometry.py).
"""

from __future__ import annotations

import math

import torch

from mlpf.config import schema_default
from mlpf.data.features import TRACK_FEATURES
from mlpf.model.cell_sums import GRID_ETA_MAX, cell_list_kernel_sums
from mlpf.model.mesh_sums import mesh_kernel_sums
from mlpf.model.pf_links import N_PF_LINK_FEATURES, ecal_hcal_energy, track_cluster_links
from mlpf.model.targets import ELEMENT_TRACK, X_COS_PHI, X_ENERGY, X_ETA, X_SIN_PHI, X_TYPE

# Track columns of X used by the helix.
X_TAN_LAMBDA, X_OMEGA, X_Z0 = (TRACK_FEATURES.index(name) for name in ("tanLambda", "omega", "Z0"))

# The ECAL front face the tracks are extrapolated to: the model section's defaults (CLIC_o3_v14, barrel inner
# radius 1500 mm, endcap inner z 2307 mm), so that the function defaults and the configuration agree.
CALORIMETER_RADIUS_MM = schema_default("model", "calorimeter_radius_mm")
CALORIMETER_HALF_LENGTH_MM = schema_default("model", "calorimeter_half_length_mm")

# Frequencies of the Fourier features: phi harmonics 1..32 resolve delta phi down to ~0.03 rad, the eta
# frequencies (per unit eta) the same scale in eta; a track-cluster pair within a few ECAL cells then has a
# near-maximal kernel while neighbouring jets' elements do not.
PHI_HARMONICS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
ETA_FREQUENCIES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)

# Track-cluster link kernels: K = exp(kappa (cos dphi - 1) - kappa deta^2 / 2), Gaussian of width
# sigma = 1 / sqrt(kappa) in eta and phi at small distances. 0.02 is about one cluster-grid cell at the ECAL face
# (30 mm at 1.5 m), 0.06 a hadron shower core in the HCAL (70 mm at 1.7 m; PAPAS HCAL cluster size 10 cm).
LINK_WIDTHS = (0.02, 0.06)
# Per width: sums of track momentum, cluster energy, its ECAL and its HCAL part, the two kernel-weighted counts,
# and the neutral excess (link_features).
N_LINK_FEATURES = 7 * len(LINK_WIDTHS)
# Pairs farther apart than LINK_CUTOFF in eta or phi (squared distance 4 sin^2(dphi/2) + deta^2 above
# LINK_CUTOFF^2) get K = 0: there the wide kernel is below exp(-LINK_CUTOFF^2 / (2 * 0.06^2)) ~ 1e-6.
LINK_CUTOFF = 0.32
# Each element's partners are looked up in an (eta, phi) grid of LINK_CUTOFF cells (time and memory ~ N x
# elements in 9 cells, not N^2): on CPUs by compiled cell lists (mlpf.model.cell_sums), elsewhere with tensor
# operations, LINK_QUERY_BLOCK queries at a time (memory ~ block x 9 cells' elements). An exported graph takes
# all pairs at once (data-dependent grid sizes would freeze into the graph); all three give the same sums.
LINK_QUERY_BLOCK = 1024
# The grid covers |eta| < LINK_GRID_ETA_MAX; elements beyond share the edge cells (more pairs, none lost).
LINK_GRID_ETA_MAX = GRID_ETA_MAX
_GRID_PHI_CELLS = max(3, int(2 * math.pi / LINK_CUTOFF))  # cells of 2 pi / n >= LINK_CUTOFF
_GRID_HALF_ETA_CELLS = math.ceil(LINK_GRID_ETA_MAX / LINK_CUTOFF)
N_CALORIMETER_FEATURES = (
    3 + 2 * (len(PHI_HARMONICS) + len(ETA_FREQUENCIES)) + N_LINK_FEATURES + N_PF_LINK_FEATURES
)


def n_calorimeter_features(link_sums: bool = True) -> int:
    """How many inputs `calorimeter_features` derives, with or without the kernel sums (`link_features`)."""
    return N_CALORIMETER_FEATURES if link_sums else N_CALORIMETER_FEATURES - N_LINK_FEATURES


_TINY = 1e-12
MAX_TURNING_ANGLE = 4.0 * torch.pi


def calorimeter_direction(
    X: torch.Tensor, radius_mm: float | torch.Tensor, half_length_mm: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(eta, phi) of each element's calorimeter point: the extrapolated helix for tracks, the position for
    clusters."""
    is_track = X[..., X_TYPE] == ELEMENT_TRACK
    track_eta, track_phi = helix_at_calorimeter(X, radius_mm, half_length_mm)
    eta = torch.where(is_track, track_eta, X[..., X_ETA])
    phi = torch.where(is_track, track_phi, torch.atan2(X[..., X_SIN_PHI], X[..., X_COS_PHI]))
    return eta, phi


def helix_at_calorimeter(
    X: torch.Tensor, radius_mm: float | torch.Tensor, half_length_mm: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(eta, phi) of the point where each track row's helix first meets the calorimeter front face.

    The face is the barrel cylinder of `radius_mm` closed by endcap disks at |z| = `half_length_mm`; a helix
    that reaches neither within two turns is taken at half a turn, its farthest point from the beam.
    The displacement D0 is neglected (<< the calorimeter radius for prompt tracks).
    """
    omega = X[..., X_OMEGA]
    tan_lambda = X[..., X_TAN_LAMBDA]
    z0 = X[..., X_Z0]
    abs_omega = omega.abs().clamp_min(_TINY)
    phi0 = torch.atan2(X[..., X_SIN_PHI], X[..., X_COS_PHI])
    # Turning angle to the barrel: chord 2 sin(alpha/2) / |omega| = R (no solution: never reaches the barrel).
    half_chord = 0.5 * radius_mm * abs_omega
    alpha_barrel = torch.where(
        half_chord < 1.0, 2.0 * torch.asin(half_chord.clamp(max=1.0)), torch.full_like(omega, torch.inf)
    )
    # Turning angle to the endcap on the side the track moves to: z0 + tanLambda alpha / |omega| = +-Z. A track
    # that misses the barrel may spiral more than half a turn before it gets there (kept: sin/cos wrap it).
    z_face = (
        torch.where(tan_lambda >= 0, torch.full_like(z0, 1.0), torch.full_like(z0, -1.0)) * half_length_mm
    )
    alpha_endcap = (z_face - z0).abs() * abs_omega / tan_lambda.abs().clamp_min(_TINY)
    alpha = torch.minimum(alpha_barrel, alpha_endcap)
    # A helix reaching neither within MAX_TURNING_ANGLE (curling along the beam) is placed half a turn on.
    alpha = torch.where(alpha <= MAX_TURNING_ANGLE, alpha, torch.full_like(alpha, torch.pi))
    r_transverse = 2.0 * torch.sin(0.5 * alpha) / abs_omega
    z = z0 + tan_lambda * alpha / abs_omega
    phi = phi0 - torch.sign(omega) * 0.5 * alpha
    return _asinh(z / r_transverse.clamp_min(_TINY)), phi


def _asinh(u: torch.Tensor) -> torch.Tensor:
    """asinh written out: the TorchScript ONNX exporter has no aten::asinh."""
    return torch.sign(u) * torch.log(u.abs() + torch.sqrt(u * u + 1.0))


def calorimeter_features(
    X: torch.Tensor,
    mask: torch.Tensor,
    radius_mm: float = CALORIMETER_RADIUS_MM,
    half_length_mm: float = CALORIMETER_HALF_LENGTH_MM,
    link_sums: bool = True,
    link_sums_mesh: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """([..., n_calorimeter_features(link_sums)] per element, [...] the momentum of the tracks linked to each
    cluster).

    The features: eta, sin phi, cos phi of the element's calorimeter point (tracks: extrapolated helix; clusters:
    their own position), sin/cos of the phi harmonics and eta frequencies, the kernel sums around it
    (`link_features`, left out with `link_sums=False`: their cost grows with the density of elements around
    each one, so as N^2 when events get denser, unless `link_sums_mesh` computes them on a mesh in linear time)
    and the particle-flow track-cluster link
    (`mlpf.model.pf_links`). Zero on padding."""
    eta, phi = calorimeter_direction(X, radius_mm, half_length_mm)
    # Padding (and any element without a direction) at (0, 0): the exported atan2(0, 0) is NaN, torch's is 0,
    # and one NaN point would poison every kernel sum of its event.
    valid = mask & torch.isfinite(eta) & torch.isfinite(phi)
    eta = torch.where(valid, eta, torch.zeros_like(eta))
    phi = torch.where(valid, phi, torch.zeros_like(phi))
    phi_k = phi[..., None] * phi.new_tensor(PHI_HARMONICS)
    eta_k = eta[..., None] * eta.new_tensor(ETA_FREQUENCIES)
    links = track_cluster_links(X, mask, eta, phi)
    out = torch.cat(
        [
            torch.stack([eta, torch.sin(phi), torch.cos(phi)], dim=-1),
            torch.sin(phi_k),
            torch.cos(phi_k),
            torch.sin(eta_k),
            torch.cos(eta_k),
            *([link_features(X, mask, eta, phi, link_sums_mesh)] if link_sums else []),
            links.features.to(eta.dtype),
        ],
        dim=-1,
    )
    return out * mask[..., None].to(out.dtype), links.linked_momentum.to(X.dtype)


def link_features(
    X: torch.Tensor, mask: torch.Tensor, eta: torch.Tensor, phi: torch.Tensor, mesh: bool = False
) -> torch.Tensor:
    """[..., N_LINK_FEATURES] kernel sums over the other elements near each element's calorimeter point.

    For each width in LINK_WIDTHS and each key type (tracks, clusters): log(1 + sum_j K_ij e_j) with e_j the
    track momentum or cluster energy, and log(1 + sum_j K_ij), the kernel-weighted count; for clusters also the
    sums of their ECAL and HCAL energies, which make a track's E_ECAL / p and E_HCAL / p (the electron and
    hadron signatures rule-based particle flow identifies by) one subtraction of inputs away; per width also the
    signed log of the element's own energy minus the nearby track momentum (for a cluster: the neutral excess
    rule-based particle flow computes). Sums exclude the element itself.

    The exponent is built from pairwise differences, kappa (2 sin^2(dphi / 2) + deta^2 / 2), never from dot
    products of absolute coordinates: those cancel terms of ~1e4 and left the sums good to only 0.3 % in float32,
    enough for an exported model to drift from PyTorch. Pairs beyond LINK_CUTOFF are dropped, and partners are
    found through an (eta, phi) grid (compiled cell lists on CPUs), so nothing of size N x N is built
    (docs/performance.md). With `mesh` the sums come from an (eta, phi) mesh instead (mlpf.model.mesh_sums):
    time linear in N, a close approximation of the pairwise sums. No gradient flows: these are functions of the
    inputs alone.
    """
    dtype = X.dtype
    with torch.no_grad(), torch.autocast(X.device.type, enabled=False):
        X, eta, phi = X.float(), eta.float(), phi.float()
        fmask = mask.float()
        energy = X[..., X_ENERGY].clamp_min(0.0) * fmask
        is_track = ((X[..., X_TYPE] == ELEMENT_TRACK) & mask).float()
        is_cluster = ((X[..., X_TYPE] != ELEMENT_TRACK) & mask).float()
        # values [B, N, 6]: track momentum, track count, calorimeter energy, calorimeter element count, its ECAL
        # and HCAL energy (pf_links.ecal_hcal_energy: a cluster's columns, a hit's own calorimeter)
        ecal, hcal = (part * fmask for part in ecal_hcal_energy(X))
        values = torch.stack([energy * is_track, is_track, energy * is_cluster, is_cluster, ecal, hcal], -1)
        # [B, N, widths, values] without the element's own term (K_ii = 1)
        if mesh:
            sums = mesh_kernel_sums(eta, phi, values, LINK_WIDTHS, LINK_CUTOFF, LINK_GRID_ETA_MAX)
        elif torch.onnx.is_in_onnx_export():
            sums = _kernel_sums(eta, phi, values) - values[:, :, None, :]
        elif compiled_cell_lists(X.device):
            sums = cell_list_kernel_sums(eta, phi, values, mask, LINK_WIDTHS, LINK_CUTOFF, LINK_GRID_ETA_MAX)
        else:
            sums = _grid_kernel_sums(eta, phi, values, mask) - values[:, :, None, :]
        sums = sums.clamp_min(0.0)
        # per width: track p, cluster E, cluster E_ECAL, cluster E_HCAL
        value_sums = torch.log1p(sums[..., [0, 2, 4, 5]].flatten(2))
        kernel_sums = torch.log1p(sums[..., [1, 3]].flatten(2))  # per width: track count, cluster count
        excess = energy[..., None] - sums[..., 0]
        result = torch.cat([value_sums, kernel_sums, torch.sign(excess) * torch.log1p(excess.abs())], -1)
        result = torch.nan_to_num(result, nan=0.0, posinf=0.0, neginf=0.0) * fmask[..., None]
        return result.to(dtype)


def compiled_cell_lists(device: torch.device) -> bool:
    """Whether the link sums run as compiled cell lists (CPU tensors) or as tensor operations (other devices)."""
    return device.type == "cpu"


def _kernels(d: torch.Tensor) -> list[torch.Tensor]:
    """K = exp(-d / (2 w^2)) for each width in LINK_WIDTHS, 0 beyond LINK_CUTOFF; d = 4 sin^2(dphi/2) + deta^2.

    Written for few passes over the pair tensor (the cost at large N): one exponent buffer, rescaled in place.
    """
    near = d < LINK_CUTOFF**2
    widths = sorted(LINK_WIDTHS, reverse=True)
    d = d.mul(-0.5 / widths[0] ** 2)
    kernels = {}
    for i, w in enumerate(widths):
        if i:
            d.mul_((widths[i - 1] / w) ** 2)
        kernels[w] = torch.where(near, torch.exp(d), torch.zeros_like(d))
    return [kernels[w] for w in LINK_WIDTHS]


def _squared_distance(
    q_eta: torch.Tensor, q_phi: torch.Tensor, k_eta: torch.Tensor, k_phi: torch.Tensor
) -> torch.Tensor:
    """4 sin^2(dphi / 2) + deta^2 = 2 (1 - cos dphi) + deta^2 of broadcast query and partner points, from
    differences (not dot products of absolute coordinates, which cancel in float32)."""
    d = torch.sin(0.5 * q_phi - 0.5 * k_phi).square_().mul_(4.0)
    deta = q_eta - k_eta
    return d.addcmul_(deta, deta)


def _kernel_sums(eta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """[B, N, widths, V]: sum_j K_ij values_j over all pairs (the exported graph's path)."""
    d = _squared_distance(eta[:, :, None], phi[:, :, None], eta[:, None, :], phi[:, None, :])
    return torch.stack([k @ values for k in _kernels(d)], 2)


def _grid_kernel_sums(
    eta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """[B, N, widths, V] as `_kernel_sums` over all elements, with each element's partners looked up in the 3 x 3
    (eta, phi) cells of side >= LINK_CUTOFF around it, so that time and memory grow as N x (elements per 9
    cells) rather than N^2 (for 10240 elements spread like a busy event, ~20 x fewer pairs)."""
    B, N = eta.shape
    n_phi, half_eta = _GRID_PHI_CELLS, _GRID_HALF_ETA_CELLS
    n_eta = 2 * half_eta
    i_phi = (
        torch.floor(torch.remainder(phi, 2 * torch.pi) * (n_phi / (2 * torch.pi))).long().clamp(0, n_phi - 1)
    )
    i_eta = (torch.floor(eta / LINK_CUTOFF).long() + half_eta).clamp(0, n_eta - 1)
    n_cells = B * n_eta * n_phi
    batch = torch.arange(B, device=eta.device)[:, None]
    cell = torch.where(
        mask, (batch * n_eta + i_eta) * n_phi + i_phi, torch.full_like(i_eta, n_cells)
    ).flatten()
    # Table [cells + 1, M] of the flat element indices in each cell (-1 = empty); the last row is always empty.
    order = torch.argsort(cell, stable=True)
    counts = torch.bincount(cell, minlength=n_cells + 1)
    first = torch.cumsum(counts, 0) - counts
    sorted_cell = cell[order]
    rank = torch.arange(B * N, device=eta.device) - first[sorted_cell]
    real = sorted_cell < n_cells
    occupancy = int(counts[:n_cells].max()) if n_cells else 0
    table = torch.full((n_cells + 1, max(occupancy, 1)), -1, dtype=torch.long, device=eta.device)
    table[sorted_cell[real], rank[real]] = order[real]
    # The 9 neighbour cells of every element: phi wraps around, eta beyond the grid is the empty row.
    offsets = torch.tensor([-1, 0, 1], device=eta.device)
    n_eta_cell = i_eta.flatten()[:, None, None] + offsets[None, :, None]
    n_phi_cell = torch.remainder(i_phi.flatten()[:, None, None] + offsets[None, None, :], n_phi)
    b = batch.expand(B, N).flatten()[:, None, None]
    inside = (n_eta_cell >= 0) & (n_eta_cell < n_eta) & mask.flatten()[:, None, None]
    neighbour_cell = torch.where(inside, (b * n_eta + n_eta_cell) * n_phi + n_phi_cell, n_cells).flatten(1)
    flat_eta, flat_phi, flat_values = eta.flatten(), phi.flatten(), values.flatten(0, 1)
    sums = []
    for start in range(0, B * N, LINK_QUERY_BLOCK):  # memory ~ block x 9 M pairs
        q = slice(start, start + LINK_QUERY_BLOCK)
        partners = table[neighbour_cell[q]].flatten(1)  # [block, 9 M]
        valid = partners >= 0
        partners = partners.clamp_min(0)
        d = _squared_distance(flat_eta[q, None], flat_phi[q, None], flat_eta[partners], flat_phi[partners])
        d = torch.where(valid, d, torch.full_like(d, LINK_CUTOFF**2))  # at the cutoff: K = 0
        partner_values = flat_values[partners]  # [block, 9 M, 4]
        sums.append(torch.stack([(k[:, None, :] @ partner_values)[:, 0] for k in _kernels(d)], 1))
    return torch.cat(sums, 0).reshape(B, N, len(LINK_WIDTHS), values.shape[-1])
