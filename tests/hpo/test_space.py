"""The search space: from config to dimensions, checks with one-line errors, backbone-dependent keys, overlay."""

from __future__ import annotations

import optuna
import pytest

from mlpf.config import validate_config, validate_section
from mlpf.errors import ConfigError
from mlpf.hpo import space


def test_default_space_covers_what_the_paper_tuned() -> None:
    names = {d.name for d in space.dimensions(validate_section("hpo", {})["search_space"])}
    for key in (
        "model.num_layers",
        "model.width",
        "model.num_heads",
        "model.bin_size",
        "model.distance_dim",
        "model.dropout",
        "training.learning_rate",
        "training.weight_decay",
        "training.batch_size",
        "training.loss_weights.binary",
    ):
        assert key in names
    kinds = {d.name: d.kind for d in space.dimensions(validate_section("hpo", {})["search_space"])}
    assert kinds["model.num_layers"] == "int"
    assert kinds["training.learning_rate"] == "float"
    assert kinds["model.width"] == "categorical"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"training": {"learning_rate": {"low": 0.01, "high": 0.001}}}, r"low \(0.01\) must be below high"),
        ({"training": {"weight_decay": {"low": 0.0, "high": 0.1, "log": True}}}, "log range needs low > 0"),
        ({"training": {"loss_weights": {"pt": {"low": 0.0, "high": 2.0}}}}, "must stay above 0"),
        ({"model": {"num_layers": {"low": 1.5, "high": 3}}}, "must be integers"),
        ({"model": {"type": {"low": 0, "high": 1}}}, "not numeric"),
    ],
)
def test_bad_ranges_are_one_line_errors(spec: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        space.dimensions(validate_section("hpo", {"search_space": spec})["search_space"])
    assert "\n" not in str(info.value)


def test_values_outside_the_config_schema_are_rejected(base: dict) -> None:
    dims = space.dimensions(
        validate_section("hpo", {"search_space": {"model": {"type": {"choices": ["gnn"]}}}})["search_space"]
    )
    with pytest.raises(ConfigError, match=r"hpo\.search_space\.model\.type.*'gnn'"):
        space.check(dims, base)


def test_schema_rejects_a_malformed_dimension() -> None:
    with pytest.raises(ConfigError, match=r"hpo\.search_space\.model\.width"):
        validate_config({"hpo": {"search_space": {"model": {"width": {"low": 8}}}}})


def test_backbone_keys_follow_the_sampled_backbone(base: dict) -> None:
    spec = {"model": {"type": {"choices": ["transformer", "gnn_lsh"]}}}
    dims = space.dimensions(validate_section("hpo", {"search_space": spec})["search_space"])
    assert dims[0].name == "model.type"  # sampled first: the others depend on it
    gnn = space.suggest(optuna.trial.FixedTrial(_fixed(dims, "gnn_lsh")), dims, base)
    assert {"model.bin_size", "model.distance_dim"} <= set(gnn)
    assert "model.num_heads" not in gnn
    transformer = space.suggest(optuna.trial.FixedTrial(_fixed(dims, "transformer")), dims, base)
    assert "model.num_heads" in transformer
    assert "model.bin_size" not in transformer
    sections = space.apply(gnn, base)
    assert sections["model"]["type"] == "gnn_lsh"
    assert base["model"]["type"] == "transformer"  # the base is not modified


def _fixed(dims: list[space.Dimension], backbone: str) -> dict:
    values = {}
    for d in dims:
        values[d.name] = d.choices[0] if d.kind == "categorical" else d.low
    values["model.type"] = backbone
    return values


def test_base_values_and_overlay(base: dict) -> None:
    spec = {"training": {"learning_rate": {"low": 1e-2, "high": 1e-1}}}  # the base 0.003 is outside
    dims = space.dimensions(validate_section("hpo", {"search_space": spec})["search_space"])
    values = space.base_values(dims, base)
    assert "training.learning_rate" not in values  # sampled instead of enqueued out of range
    assert values["model.num_layers"] == base["model"]["num_layers"]
    overlay = space.overlay({"training.loss_weights.pt": 0.123456789, "model.num_layers": 3})
    assert overlay == {"model": {"num_layers": 3}, "training": {"loss_weights": {"pt": 0.123457}}}
    merged = validate_config({"model": {"num_layers": 2}, **overlay})
    assert merged["training"]["loss_weights"]["pt"] == 0.123457


def test_width_not_divisible_by_heads_is_reported(base: dict) -> None:
    sections = space.apply({"model.width": 20, "model.num_heads": 8}, base)
    assert "not a multiple" in space.incompatible(sections)
    assert space.incompatible(base) == ""
