"""MLPF loss (upstream `mlpf/model/losses.py`, v2.x from jpata/particleflow PR #343), one value per term.

- binary: cross-entropy of particle / no particle, mean over real elements;
- pid: focal loss (gamma 2) on elements with a true particle, summed and divided by the real-element count;
- charge: cross-entropy on true particles, same normalisation (an addition: upstream derives charge from PID);
- regression: MSE (or Huber) on true particles for log pt ratio, eta, sin phi, cos phi, log E ratio; the pt
  and energy terms weighted by target pt ** pt_weight_power (0.5: sqrt(pt) as upstream PR #383; larger values
  lean against the falling spectrum, see the schema); divided by the true-particle count.
Every term is multiplied by its configured weight; the total is their sum.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mlpf.model.targets import REGRESSION_TERMS, Y_CLASS, Y_PT, charge_index, regression_targets

LOSS_TERMS = ("binary", "pid", "charge", *REGRESSION_TERMS)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-element focal loss -(1 - p_t)^gamma log p_t (Lin et al., arXiv:1708.02002)."""
    logp = F.log_softmax(logits.float(), dim=-1).gather(-1, target[..., None])[..., 0]
    return -((1.0 - logp.exp()) ** gamma) * logp


def mlpf_loss(
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    batch: dict[str, torch.Tensor],
    settings: dict[str, Any],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and the weighted terms (detached) for a batch; `settings` is the training section."""
    binary, pid, charge, momentum = outputs
    X, ytarget, mask = batch["X"], batch["ytarget"], batch["mask"]
    weights = settings["loss_weights"]
    cls = ytarget[..., Y_CLASS].round().long().clamp(0, pid.shape[-1] - 1)
    is_particle = (cls > 0) & mask
    n_real = mask.sum().clamp_min(1).float()
    n_particle = is_particle.sum().clamp_min(1).float()

    terms: dict[str, torch.Tensor] = {}
    terms["binary"] = F.cross_entropy(binary[mask].float(), is_particle[mask].long())
    part = is_particle.float()
    terms["pid"] = (focal_loss(pid, cls, settings["focal_gamma"]) * part).sum() / n_real
    ce_charge = F.cross_entropy(charge.float().transpose(1, 2), charge_index(ytarget), reduction="none")
    terms["charge"] = (ce_charge * part).sum() / n_real

    target = regression_targets(X, ytarget)
    pred = momentum.float()
    if settings["regression_loss"] == "huber":
        per = F.huber_loss(pred, target, reduction="none", delta=1.0)
    else:
        per = (pred - target) ** 2
    if settings["pt_weighted_regression"]:
        w_pt = ytarget[..., Y_PT].clamp_min(0.0) ** settings["pt_weight_power"]
        scale = torch.ones_like(per)
        scale[..., 0] = w_pt
        scale[..., 4] = w_pt
        per = per * scale
    per = per * part[..., None]
    for i, name in enumerate(REGRESSION_TERMS):
        terms[name] = per[..., i].sum() / n_particle

    weighted = {name: weights[name] * value for name, value in terms.items()}
    total = torch.stack(list(weighted.values())).sum()
    if not torch.isfinite(total):
        bad = [k for k, v in weighted.items() if not torch.isfinite(v)]
        raise FloatingPointError(f"non-finite loss term(s): {', '.join(bad)}")
    return total, {k: v.detach() for k, v in weighted.items()}
