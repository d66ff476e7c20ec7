"""The MLPF network: element encoders, two backbone stacks (ID and regression), output heads.

Structure after upstream `mlpf/model/mlpf.py` v2.x (jpata/particleflow, PyTorch): separate per-element-type
encoders and stacks for identification and regression, final LayerNorms, a binary particle/no-particle head,
a 6-class PID head, a charge head, and regression heads whose energy is built so that E >= |p|.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mlpf.data.features import N_FEATURES
from mlpf.model.geometry import calorimeter_features, n_calorimeter_features
from mlpf.model.layers import (
    FFN,
    ElementRouting,
    LshGraphLayer,
    SelfAttentionLayer,
    TypeSplitEncoder,
    attention_bias,
    normalise_features,
)
from mlpf.model.pf_links import reference_log_ratio
from mlpf.model.targets import (
    MIN_REFERENCE,
    N_CHARGES,
    N_CLASSES,
    X_COS_PHI,
    X_ENERGY,
    X_ETA,
    X_PT,
    X_SIN_PHI,
)

LOG2 = 0.6931471805599453


def log_cosh(x: torch.Tensor) -> torch.Tensor:
    """log(cosh x) without overflow: |x| + log1p(exp(-2|x|)) - log 2."""
    ax = x.abs()
    return ax + torch.log1p(torch.exp(-2.0 * ax)) - LOG2


class TransformerStack(nn.Module):
    """`num_layers` pre-LN attention layers; the last one is queried by the input embeddings."""

    def __init__(self, s: dict[str, Any]):
        super().__init__()
        n = s["num_layers"]
        self.layers = nn.ModuleList(
            SelfAttentionLayer(
                s["width"],
                s["num_heads"],
                s["ffn_multiplier"],
                s["activation"],
                s["dropout"],
                external_query=(i == n - 1),
            )
            for i in range(n)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        embedding = x
        bias = attention_bias(mask, x.dtype)
        for i, layer in enumerate(self.layers):
            x = layer(x, bias, query=embedding if i == len(self.layers) - 1 else None)
        return x * mask[..., None]


class LshStack(nn.Module):
    """`num_layers` GNN-LSH layers."""

    def __init__(self, s: dict[str, Any]):
        super().__init__()
        self.layers = nn.ModuleList(
            LshGraphLayer(
                s["width"],
                s["distance_dim"],
                s["bin_size"],
                s["max_num_bins"],
                s["num_node_messages"],
                s["ffn_multiplier"],
                s["activation"],
                s["dropout"],
            )
            for _ in range(s["num_layers"])
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x


BACKBONES = {"transformer": TransformerStack, "gnn_lsh": LshStack}


# Columns of the regression heads' output (RegressionHeads).
REGRESSION_COLUMNS = ("log_pt", "eta", "sin_phi", "cos_phi", "energy")


class RegressionHeads(nn.Module):
    """Per-element-type regression heads, each run on its own elements (`ElementRouting`).

    Clusters: log(pt / element pt), corrections to eta, sin phi, cos phi, and the energy term; tracks keep their
    measured pt and direction (see MLPF.forward) and get the energy term only (upstream's `direct-elemtype-split`
    energy head). Output [..., 5] in the order of REGRESSION_COLUMNS, zero where a type has no such term.
    """

    def __init__(self, n_in: int, n_hidden: int, activation: str, dropout: float):
        super().__init__()
        self.track = FFN(n_in, n_hidden, 1, activation, dropout)
        self.cluster = FFN(n_in, n_hidden, len(REGRESSION_COLUMNS), activation, dropout)

    def _track(self, h: torch.Tensor) -> torch.Tensor:
        energy = self.track(h)
        return torch.cat([energy.new_zeros(*energy.shape[:-1], len(REGRESSION_COLUMNS) - 1), energy], dim=-1)

    def forward(self, h: torch.Tensor, routing: ElementRouting) -> torch.Tensor:
        return routing.route(h, self._track, self.cluster)


class MLPF(nn.Module):
    """Input X [B, N, 17] and mask [B, N] (True = element); outputs (binary [B,N,2], pid [B,N,6],
    charge [B,N,3], momentum [B,N,5] = log pt ratio, eta, sin phi, cos phi, log E ratio)."""

    def __init__(self, settings: dict[str, Any]):
        super().__init__()
        s = settings
        width, act, drop = s["width"], s["activation"], s["dropout"]
        backbone = BACKBONES[s["type"]]
        self.calorimeter = (
            (s["calorimeter_radius_mm"], s["calorimeter_half_length_mm"])
            if s["calorimeter_features"]
            else None
        )
        self.link_sums = bool(s["link_sums"])
        self.link_sums_mesh = bool(s["link_sums_mesh"])
        # inputs computed from the 17 element features (the training records the count for the model card)
        self.n_derived_inputs = n_calorimeter_features(self.link_sums) if self.calorimeter else 0
        n_in = N_FEATURES + self.n_derived_inputs
        self.pf_reference = bool(s["pf_reference"]) and self.calorimeter is not None
        self.encode_id = TypeSplitEncoder(n_in, width, act, drop)
        self.encode_reg = TypeSplitEncoder(n_in, width, act, drop)
        self.stack_id = backbone(s)
        self.stack_reg = backbone(s)
        self.norm_id = nn.LayerNorm(width)
        self.norm_reg = nn.LayerNorm(width)
        hidden = s["head_width"]
        # Particle / no particle (2 logits), class (N_CLASSES) and charge (N_CHARGES) from one head on the ID
        # embedding: one wide matrix product instead of three narrow ones.
        self.head_id = FFN(width, hidden, 2 + N_CLASSES + N_CHARGES, act, drop)
        self.head_reg = RegressionHeads(2 * width + n_in, hidden, act, drop)

    def forward(
        self, X: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        X = X * mask[..., None].to(X.dtype)
        routing = ElementRouting(X, mask)
        Xn = normalise_features(X)
        # log(E_ref / E) of each cluster's particle-flow neutral excess (mlpf.model.pf_links); 0 without the inputs
        reference = torch.zeros_like(X[..., X_ENERGY])
        if self.calorimeter is not None:
            features, linked_momentum = calorimeter_features(
                X, mask, *self.calorimeter, self.link_sums, self.link_sums_mesh
            )
            Xn = torch.cat([Xn, features], dim=-1)
            if self.pf_reference:
                reference = reference_log_ratio(X, mask, linked_momentum)
        h_id = self.norm_id(self.stack_id(self.encode_id(Xn, routing), mask))
        h_reg = self.norm_reg(self.stack_reg(self.encode_reg(Xn, routing), mask))
        binary, pid, charge = torch.split(self.head_id(h_id), [2, N_CLASSES, N_CHARGES], dim=-1)

        # A track measures its particle's momentum (CLICdet barrel: sigma(pT)/pT = 1.3e-5 pT (+) 2e-3, Delphes
        # card) and direction (~1e-4 rad) better than anything else in the event, so only clusters get learned pt
        # and direction corrections (RegressionHeads: zero for tracks). Learned track corrections were ~0 in
        # distribution but noisy out of it: on single particles a 2-3 % spread in pt (charged-pion jet IQR/median
        # 0.020, 0.004 with the measured pt) and, in direction, 10 % of pion-gun tracks off by more than 0.29 rad.
        reg = self.head_reg(torch.cat([h_reg, h_id, Xn], dim=-1), routing)
        # A cluster's pt starts from the particle-flow estimate (its energy minus its linked tracks' momenta) and
        # the head learns the correction; its energy follows through the E >= |p| floor below.
        logpt = reg[..., 0] + reference
        eta = X[..., X_ETA] + reg[..., 1]
        sin_phi = X[..., X_SIN_PHI] + reg[..., 2]
        cos_phi = X[..., X_COS_PHI] + reg[..., 3]
        # E >= |p|: floor = log(|p| / E_elem) from the (detached) predicted pt and eta, |p| = pt cosh(eta);
        # the head only adds a non-negative amount on top (upstream `mlpf/model/mlpf.py` v2.x: mass^2 >= 0).
        ref_pt = X[..., X_PT].clamp_min(MIN_REFERENCE)
        ref_e = X[..., X_ENERGY].clamp_min(MIN_REFERENCE)
        floor = logpt.detach() + torch.log(ref_pt) + log_cosh(eta.detach()) - torch.log(ref_e)
        floor = torch.where(
            mask, torch.nan_to_num(floor, nan=0.0, posinf=0.0, neginf=0.0), torch.zeros_like(floor)
        )
        logE = floor + nn.functional.softplus(reg[..., 4])
        momentum = torch.stack([logpt, eta, sin_phi, cos_phi, logE], dim=-1)
        momentum = momentum * mask[..., None].to(momentum.dtype)
        return binary, pid, charge, momentum
