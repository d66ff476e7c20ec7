"""The search space: keys of the model and training config sections, each with a range or a list of choices.

Parameters are named by their config path (`model.num_layers`, `training.loss_weights.pt`), so that enqueued
trials, the trial table and the best-configuration overlay all name keys exactly as a config file does.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from mlpf.config import section_schema, validate_section
from mlpf.errors import ConfigError

SECTIONS = ("model", "training")
# Keys that exist in one backbone only: tuned when the trial's backbone is this one, else left out.
BACKBONE_ONLY = {
    "model.num_heads": "transformer",
    "model.bin_size": "gnn_lsh",
    "model.distance_dim": "gnn_lsh",
}
BACKBONE_KEY = "model.type"
LOSS_WEIGHTS_PREFIX = "training.loss_weights."


@dataclass(frozen=True)
class Dimension:
    """One tuned config key: `kind` is int or float (a range) or categorical (choices)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def contains(self, value: Any) -> bool:
        if self.kind == "categorical":
            return value in self.choices
        return isinstance(value, int | float) and self.low <= value <= self.high

    def suggest(self, trial: Any) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)


def _key_schema(name: str) -> dict[str, Any]:
    section, *path = name.split(".")
    node = section_schema(section)
    for key in path:
        node = node["properties"][key]
    return node


def _dimension(name: str, spec: dict[str, Any]) -> Dimension:
    where = f"hpo.search_space.{name}"
    if "choices" in spec:
        return Dimension(name, "categorical", choices=tuple(spec["choices"]))
    low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
    if _key_schema(name).get("type") not in ("integer", "number"):
        raise ConfigError(f"{where}: {name} is not numeric; give choices instead of low/high")
    if not low < high:
        raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0")
    if name.startswith(LOSS_WEIGHTS_PREFIX) and low <= 0:
        # the val_loss objective rescales each term by reference / trial weight
        raise ConfigError(f"{where}: a tuned loss weight must stay above 0 (low > 0)")
    integer = _key_schema(name).get("type") == "integer"
    if integer and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"{where}: {name} is an integer; low and high must be integers")
    return Dimension(name, "int" if integer else "float", low=low, high=high, log=log)


def _flatten(node: dict[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        is_group = isinstance(value, dict) and not ({"low", "high", "choices"} & set(value))
        if is_group:
            flat.update(_flatten(value, f"{name}."))
        elif value is not None:
            flat[name] = value
    return flat


def dimensions(search_space: dict[str, Any]) -> list[Dimension]:
    """The tuned dimensions of a validated `hpo.search_space`, the backbone first (others depend on it)."""
    dims = [_dimension(name, spec) for name, spec in _flatten(search_space, "").items()]
    return sorted(dims, key=lambda d: d.name != BACKBONE_KEY)


def set_key(sections: dict[str, dict[str, Any]], name: str, value: Any) -> None:
    section, *path = name.split(".")
    node = sections[section]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def get_key(sections: dict[str, Any], name: str) -> Any:
    node: Any = sections
    for key in name.split("."):
        node = node[key]
    return node


def applies(dim: Dimension, backbone: str) -> bool:
    return BACKBONE_ONLY.get(dim.name, backbone) == backbone


def check(dims: list[Dimension], base: dict[str, dict[str, Any]]) -> None:
    """Every value the space can produce must be valid for its config key (one-line error naming it)."""
    for dim in dims:
        values = dim.choices if dim.kind == "categorical" else (dim.low, dim.high)
        for value in values:
            section = dim.name.split(".")[0]
            trial = {section: copy.deepcopy(base[section])}
            set_key(trial, dim.name, int(value) if dim.kind == "int" else value)
            try:
                validate_section(section, trial[section], source=f"hpo.search_space.{dim.name}")
            except ConfigError as exc:
                raise ConfigError(f"value {value!r} is not valid ({exc})") from None


def suggest(trial: Any, dims: list[Dimension], base: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ask the trial for a value of every dimension that applies to its backbone."""
    params: dict[str, Any] = {}
    backbone = base["model"]["type"]
    for dim in dims:
        if dim.name == BACKBONE_KEY:
            backbone = params[dim.name] = dim.suggest(trial)
        elif applies(dim, backbone):
            params[dim.name] = dim.suggest(trial)
    return params


def apply(params: dict[str, Any], base: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The base model and training sections with the trial's values set."""
    sections = {name: copy.deepcopy(base[name]) for name in SECTIONS}
    for name, value in params.items():
        set_key(sections, name, value)
    return sections


def base_values(dims: list[Dimension], base: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The base config's values of the dimensions that contain them (a trial of the untuned defaults)."""
    backbone = base["model"]["type"]
    values = {}
    for dim in dims:
        value = get_key(base, dim.name)
        if applies(dim, backbone) and dim.contains(value):
            values[dim.name] = value
    return values


def incompatible(sections: dict[str, dict[str, Any]]) -> str:
    """Why a combination cannot be built (empty if it can): the transformer needs width % num_heads == 0."""
    model = sections["model"]
    if model["type"] == "transformer" and model["width"] % model["num_heads"]:
        return f"width {model['width']} is not a multiple of num_heads {model['num_heads']}"
    return ""


def overlay(params: dict[str, Any]) -> dict[str, Any]:
    """Nested config mapping of the tuned keys (what a `--configfile` overlay holds)."""
    nested: dict[str, Any] = {}
    for name, value in sorted(params.items()):
        node = nested
        *path, last = name.split(".")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = _plain(value)
    return nested


def _plain(value: Any) -> Any:
    """Round floats to 6 significant digits: the tuned value's precision is far below that."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.6g}")
    return value
