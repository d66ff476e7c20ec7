"""Which layers int8 inference quantises (mlpf.inference.precision)."""

from __future__ import annotations

import pytest
import torch

from mlpf.config import validate_section
from mlpf.inference.precision import QUANTISED_PREFIXES, prepare
from mlpf.model.factory import build_model


@pytest.mark.parametrize("kind", ["transformer", "gnn_lsh"])
def test_int8_quantises_the_backbone_and_keeps_encoders_and_heads_in_fp32(kind: str) -> None:
    model = build_model(
        validate_section("model", {"type": kind, "width": 32, "num_heads": 2, "head_width": 16})
    )
    quantised, _ = prepare(model, "int8", torch.device("cpu"))
    kinds = {name: type(m) for name, m in quantised.named_modules()}
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    backbone = [
        n for n, t in kinds.items() if n.startswith(QUANTISED_PREFIXES) and t in (dynamic, torch.nn.Linear)
    ]
    assert backbone
    assert all(kinds[n] is dynamic for n in backbone)
    rest = [
        n for n, t in kinds.items() if n.startswith(("encode_", "head_")) and t in (dynamic, torch.nn.Linear)
    ]
    assert rest
    assert all(kinds[n] is torch.nn.Linear for n in rest)
