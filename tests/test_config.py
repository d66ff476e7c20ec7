from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlpf.config import (
    load_config,
    load_schema,
    schema_default,
    settings_from_cli,
    validate_config,
    validate_section,
    validate_workflow_config,
)
from mlpf.errors import ConfigError
from mlpf.sim.constants import ECAL_BARREL_RMIN, ECAL_ENDCAP_ZMIN

REPO = Path(__file__).resolve().parents[1]


def test_default_config_is_valid_and_filled():
    config = load_config(REPO / "config" / "config.yaml")
    assert config["source"] == "fastsim"
    # defaults from the schema are filled in for keys the file leaves out
    assert config["evaluation"]["jets"]["algorithm"] == "ee_genkt"
    assert config["shards"]["test"] >= 1


def test_ci_config_is_valid():
    config = load_config(REPO / ".test" / "config" / "config.yaml")
    assert config["training"]["epochs"] == 1


def test_config_files_layer_in_order_like_snakemake_configfiles(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("shards: {train: 16}\nmodel: {name: big}\n")
    base = load_config(REPO / "config" / "config.yaml")
    layered = load_config(REPO / "config" / "config.yaml", overlay)
    assert layered["shards"]["train"] == 16
    assert layered["model"]["name"] == "big"
    # keys the overlay leaves out keep the base file's values, not the schema defaults
    assert layered["shards"]["test"] == base["shards"]["test"]
    assert layered["model"]["width"] == base["model"]["width"]


def test_shipped_overlays_are_valid_on_the_default_config():
    for overlay in ("benchmark.yaml", "hpo.yaml", "paper.yaml"):
        load_config(REPO / "config" / "config.yaml", REPO / "config" / overlay)


def test_workflow_schema_is_the_package_schema():
    workflow_schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert yaml.safe_load(workflow_schema.read_text()) == load_schema()


def test_every_leaf_has_description_and_default():
    def walk(node, path):
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            for key, sub in node["properties"].items():
                walk(sub, f"{path}.{key}")
        else:
            assert "description" in node, f"{path} has no description"
            assert "default" in node, f"{path} has no default"

    walk(load_schema(), "config")


def test_unknown_key_is_one_line_with_suggestion():
    with pytest.raises(ConfigError) as info:
        validate_config({"training": {"epoch": 3}}, source="my.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("my.yaml: training: unknown key 'epoch'")
    assert "did you mean 'epochs'" in message


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"seed": -1}, "seed"),
        ({"source": "cvmfs"}, "source"),
        ({"fastsim": {"events_per_shard": "many"}}, "fastsim.events_per_shard"),
        ({"samples": {"train": ["higgs"]}}, "samples.train.0"),
    ],
)
def test_wrong_values_name_the_key(config, fragment):
    with pytest.raises(ConfigError, match=fragment):
        validate_config(config)


def test_validation_does_not_mutate_input():
    raw = {"training": {}}
    filled = validate_config(raw)
    assert raw == {"training": {}}
    assert filled["training"]["epochs"] >= 1


def test_section_validation_and_cli_settings(tmp_path):
    assert validate_section("fastsim", {"events_per_shard": 5})["events_per_shard"] == 5
    with pytest.raises(ConfigError, match="--settings: fastsim"):
        settings_from_cli("fastsim", '{"events_per_shard": 0}', None)
    with pytest.raises(ConfigError, match="not valid JSON"):
        settings_from_cli("fastsim", "{oops", None)
    path = tmp_path / "c.yaml"
    path.write_text("fastsim:\n  events_per_shard: 7\n")
    assert settings_from_cli("fastsim", None, str(path))["events_per_shard"] == 7


def test_bad_yaml_file_is_one_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line \d+"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")


def test_config_readme_key_reference_is_current():
    from mlpf.config_docs import BEGIN, END, key_reference

    text = (REPO / "config" / "README.md").read_text()
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert generated == key_reference(), "run: mlpf config docs --update config/README.md"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"fastsim": {"gun_energy_min": 150.0}},
            "fastsim.gun_energy_min: must be below gun_energy_max (150.0 >= 100.0: the range is inverted or empty)",
        ),
        (
            {"key4hep": {"gun_momentum_min": 5, "gun_momentum_max": 5}},
            "key4hep.gun_momentum_min: must be below",
        ),
        ({"model": {"width": 100, "num_heads": 8}}, "model.width: must be a multiple of num_heads (100 / 8)"),
        (
            {"evaluation": {"met_bins": [0, 10, 10, 20]}},
            "evaluation.met_bins: bin edges must be strictly increasing",
        ),
        (
            {"shards": {"train": 4, "train_per_sample": {"gun_kl": 2, "gun_n": 5}}},
            "shards.train_per_sample: {'gun_n': 5} exceed train (4): those shards are the held-out ones",
        ),
    ],
)
def test_cross_field_rules_are_part_of_validation(config, message):
    with pytest.raises(ConfigError) as info:
        validate_config(config, source="my.yaml")
    assert str(info.value).startswith(f"my.yaml: {message}")
    section = next(iter(config))
    with pytest.raises(ConfigError, match=r"must be|exceed"):
        validate_section(section, config[section], source="--settings")


def test_cross_field_rules_pass_on_consistent_values():
    assert (
        validate_config({"model": {"type": "gnn_lsh", "width": 100, "num_heads": 8}})["model"]["width"] == 100
    )
    assert validate_section("fastsim", {"gun_energy_min": 5, "gun_energy_max": 6})["gun_energy_max"] == 6


@pytest.mark.parametrize("name", ["mlpf", "v2.5", "ci_1-b", "gnn.lsh.paper"])
def test_plain_model_names_are_accepted(name):
    assert validate_config({"model": {"name": name}})["model"]["name"] == name


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../up", ".hidden", "a..b", "a.", "", "x y"])
def test_model_names_that_are_not_plain_directory_names_are_refused(name):
    with pytest.raises(ConfigError, match=r"model\.name: .* does not match"):
        validate_config({"model": {"name": name}})


FILES = ["config/config.yaml"]


def test_nested_override_strings_become_the_types_the_schema_asks_for():
    # what Snakemake hands over for --config 'training={"epochs": 2, "precision": bf16}' and friends
    overrides = {
        "training": {"epochs": "2", "precision": "bf16", "pt_weighted_regression": "false"},
        "evaluation": {"jet_pt_bins": ["5", "10.5", "20"]},
        "dataset": {"bfield_tesla": "null"},
        "model": {"name": "007"},  # a string in the schema stays a string
    }
    config = {"model": {"name": "007"}, **overrides}
    filled = validate_workflow_config(config, FILES, overrides)
    assert filled["training"]["epochs"] == 2
    assert filled["training"]["precision"] == "bf16"
    assert filled["training"]["pt_weighted_regression"] is False
    assert filled["evaluation"]["jet_pt_bins"] == [5, 10.5, 20]
    assert filled["dataset"]["bfield_tesla"] is None
    assert filled["model"]["name"] == "007"


def test_a_config_file_value_of_the_wrong_type_is_still_refused():
    # only command-line strings are read as numbers: a quoted number in a file stays an error
    with pytest.raises(
        ConfigError, match=r"config/config.yaml: training.epochs: '2' is not of type 'integer'"
    ):
        validate_workflow_config({"training": {"epochs": "2"}}, FILES, {})


@pytest.mark.parametrize(
    ("config", "overrides", "source"),
    [
        ({"training": {"epoch": "3"}}, {"training": {"epoch": "3"}}, "--config"),
        ({"seed": -4}, {"seed": -4}, "--config"),
        ({"fastsim": {"gun_energy_min": "200"}}, {"fastsim": {"gun_energy_min": "200"}}, "--config"),
        # the file's own mistake is the file's, whatever else was overridden
        ({"seed": -4, "training": {"epochs": "2"}}, {"training": {"epochs": "2"}}, "config/config.yaml"),
    ],
)
def test_errors_name_the_command_line_when_an_override_set_the_key(config, overrides, source):
    with pytest.raises(ConfigError) as info:
        validate_workflow_config(config, FILES, overrides)
    assert str(info.value).startswith(f"{source}: ")


def test_model_calorimeter_defaults_are_the_fastsim_ecal_front_face():
    # the track extrapolation's default face (model section) is the ECAL of the detector the fastsim models
    assert schema_default("model", "calorimeter_radius_mm") == ECAL_BARREL_RMIN
    assert schema_default("model", "calorimeter_half_length_mm") == ECAL_ENDCAP_ZMIN


@pytest.mark.parametrize("name", ["..", "a..b", ".hidden", "a/b"])
def test_study_names_are_plain_directory_names(name):
    # results/studies/<study_name>/ must stay inside results/studies
    with pytest.raises(ConfigError, match=r"hpo\.study_name: .* does not match"):
        validate_config({"hpo": {"study_name": name}})
