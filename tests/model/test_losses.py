"""Tests of the MLPF loss terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mlpf.config import validate_section
from mlpf.model.losses import LOSS_TERMS, focal_loss, mlpf_loss
from mlpf.model.targets import regression_targets


def _batch() -> dict[str, torch.Tensor]:
    X = torch.zeros(1, 4, 17)
    X[0, :, 0] = torch.tensor([1.0, 1.0, 2.0, 2.0])
    X[0, :, 1] = torch.tensor([10.0, 2.0, 5.0, 1.0])
    X[0, :, 2] = torch.tensor([0.5, -1.0, 0.0, 0.0])
    X[0, :, 5] = X[0, :, 1] * torch.cosh(X[0, :, 2])
    y = torch.zeros(1, 4, 7)
    y[0, 0] = torch.tensor([1, 1, 11.0, 0.5, 0.0, 1.0, 11.0 * torch.cosh(torch.tensor(0.5))])
    y[0, 1] = torch.tensor([4, -1, 2.0, -1.0, 1.0, 0.0, 2.0 * torch.cosh(torch.tensor(-1.0))])
    y[0, 2] = torch.tensor([3, 0, 6.0, 0.0, 0.6, 0.8, 6.0])
    mask = torch.tensor([[True, True, True, False]])
    return {"X": X, "ytarget": y, "ycand": y.clone(), "mask": mask}


def test_focal_loss_reduces_to_cross_entropy_at_gamma_zero_and_down_weights_easy() -> None:
    logits = torch.tensor([[4.0, 0.0, -1.0], [0.1, 0.2, 0.0]])
    target = torch.tensor([0, 2])
    torch.testing.assert_close(
        focal_loss(logits, target, 0.0), F.cross_entropy(logits, target, reduction="none")
    )
    ratio = focal_loss(logits, target, 2.0) / focal_loss(logits, target, 0.0)
    assert ratio[0] < 0.01 < ratio[1]  # the confident, correct element is down-weighted


def test_perfect_prediction_has_zero_regression_loss_and_terms_are_weighted() -> None:
    batch = _batch()
    settings = validate_section("training", {})
    target = regression_targets(batch["X"], batch["ytarget"])
    torch.testing.assert_close(target[0, 0, 0], torch.log(torch.tensor(1.1)))
    cls = batch["ytarget"][..., 0].long()
    big = 30.0
    binary = torch.stack([torch.where(cls > 0, -big, big), torch.where(cls > 0, big, -big)], dim=-1)
    pid = F.one_hot(cls, 6).float() * 2 * big - big
    charge = F.one_hot((batch["ytarget"][..., 1] + 1).long(), 3).float() * 2 * big - big
    total, terms = mlpf_loss((binary, pid, charge, target), batch, settings)
    assert set(terms) == set(LOSS_TERMS)
    assert float(total) < 1e-6

    wrong = target.clone()
    wrong[0, 0, 0] += 1.0  # log pt ratio off by 1 on the first particle (target pt 11 -> weight sqrt(11))
    _, terms = mlpf_loss((binary, pid, charge, wrong), batch, settings)
    torch.testing.assert_close(terms["pt"], torch.tensor(11.0**0.5 / 3))
    settings["loss_weights"]["pt"] = 2.0
    _, terms2 = mlpf_loss((binary, pid, charge, wrong), batch, settings)
    torch.testing.assert_close(terms2["pt"], 2 * terms["pt"])
