"""Training targets and decoding of model outputs, on the column layout of mlpf.data (docs/contracts.md §2).

The layout's names are defined in mlpf.data.features (X) and mlpf.data.targets (particles) and imported here,
where the model's modules take them from. The regression targets are upstream's (jpata/particleflow
`mlpf/model/PFDataset.py`; arXiv:2309.06782): log(pt / element pt), eta, sin phi, cos phi, log(E / element E),
where the element pt is column X_PT (track pt, cluster ET) and the element energy column X_ENERGY (track p,
cluster energy).
"""

from __future__ import annotations

import torch

from mlpf.data.features import ELEM_TYPE_TRACK, X_COS_PHI, X_ENERGY, X_ETA, X_PT, X_SIN_PHI, X_TYPE
from mlpf.data.targets import (
    N_CLASSES,
    N_PARTICLE_COLUMNS,
    Y_CHARGE,
    Y_CLASS,
    Y_COS_PHI,
    Y_ENERGY,
    Y_ETA,
    Y_PT,
    Y_SIN_PHI,
)

__all__ = [  # the layout names the model's modules import from here
    "N_CLASSES",
    "N_PARTICLE_COLUMNS",
    "X_COS_PHI",
    "X_ENERGY",
    "X_ETA",
    "X_PT",
    "X_SIN_PHI",
    "X_TYPE",
    "Y_CHARGE",
    "Y_CLASS",
    "Y_COS_PHI",
    "Y_ENERGY",
    "Y_ETA",
    "Y_PT",
    "Y_SIN_PHI",
]
# The model modules' name of the track element type (mlpf.data.features.ELEM_TYPE_TRACK).
ELEMENT_TRACK = ELEM_TYPE_TRACK
N_CHARGES = 3  # -1, 0, +1
REGRESSION_TERMS = ("pt", "eta", "sin_phi", "cos_phi", "energy")

# Smallest reference pt / energy used in log ratios (GeV); guards empty or degenerate elements.
MIN_REFERENCE = 1e-6


def _finite(t: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)


def regression_targets(X: torch.Tensor, ytarget: torch.Tensor) -> torch.Tensor:
    """[B, N, 5] targets: log pt ratio, eta, sin phi, cos phi, log E ratio (0 where there is no particle)."""
    has = ytarget[..., Y_CLASS] > 0
    ref_pt = X[..., X_PT].clamp_min(MIN_REFERENCE)
    ref_e = X[..., X_ENERGY].clamp_min(MIN_REFERENCE)
    logpt = _finite(torch.log(ytarget[..., Y_PT].clamp_min(MIN_REFERENCE) / ref_pt))
    loge = _finite(torch.log(ytarget[..., Y_ENERGY].clamp_min(MIN_REFERENCE) / ref_e))
    out = torch.stack(
        [logpt, ytarget[..., Y_ETA], ytarget[..., Y_SIN_PHI], ytarget[..., Y_COS_PHI], loge], dim=-1
    )
    return torch.where(has[..., None], out, torch.zeros_like(out))


def charge_index(ytarget: torch.Tensor) -> torch.Tensor:
    """Charge -1/0/+1 as class index 0/1/2."""
    return (torch.round(ytarget[..., Y_CHARGE]).clamp(-1, 1) + 1).long()


def class_probabilities(binary: torch.Tensor, pid: torch.Tensor) -> torch.Tensor:
    """[.., 6] probabilities: P(none) from the binary head, P(class c) = P(particle) * softmax(pid[1:])_c."""
    p_particle = torch.softmax(binary.float(), dim=-1)[..., 1:2]
    p_pid = torch.softmax(pid[..., 1:].float(), dim=-1)
    return torch.cat([1.0 - p_particle, p_particle * p_pid], dim=-1)


def decode(
    X: torch.Tensor,
    mask: torch.Tensor,
    binary: torch.Tensor,
    pid: torch.Tensor,
    charge: torch.Tensor,
    momentum: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model outputs -> (ypred [B, N, 7], ypred_proba [B, N, 6]) in the units of ytarget.

    The class is 0 where the binary head says "no particle", else the most probable particle class; rows of
    class 0 are all zero, like the targets.
    """
    proba = class_probabilities(binary, pid)
    is_particle = (binary[..., 1] > binary[..., 0]) & mask
    cls = torch.where(
        is_particle, torch.argmax(pid[..., 1:], dim=-1) + 1, torch.zeros_like(mask, dtype=torch.long)
    )
    q = (torch.argmax(charge, dim=-1) - 1).float()
    momentum = momentum.float()
    pt = torch.exp(momentum[..., 0]) * X[..., X_PT]
    energy = torch.exp(momentum[..., 4]) * X[..., X_ENERGY]
    ypred = torch.stack(
        [cls.float(), q, pt, momentum[..., 1], momentum[..., 2], momentum[..., 3], energy], dim=-1
    )
    ypred = torch.where((cls > 0)[..., None], _finite(ypred), torch.zeros_like(ypred))
    proba = torch.where(mask[..., None], proba, torch.zeros_like(proba))
    return ypred, proba
