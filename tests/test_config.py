from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlpf.config import load_config, load_schema, settings_from_cli, validate_config, validate_section
from mlpf.errors import ConfigError

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
