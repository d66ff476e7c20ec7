"""One factory for every MLPF backbone: `build_model(model_settings)`, and the model a checkpoint holds."""

from __future__ import annotations

from typing import Any

from mlpf.config import validate_section
from mlpf.model.mlpf import MLPF


def build_model(model_settings: dict[str, Any] | None = None) -> MLPF:
    """Build the model described by a `model` config section (validated, defaults filled)."""
    settings = validate_section("model", model_settings or {}, source="model settings")
    return MLPF(settings)


def model_from_checkpoint(state: dict[str, Any]) -> MLPF:
    """The model of a checkpoint's contents (`mlpf.runtime.load_checkpoint`), with its trained weights."""
    model = build_model(state["model_settings"])
    model.load_state_dict(state["model_state"])
    return model
