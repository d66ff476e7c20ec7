"""The names that key a configuration's outputs (mlpf.outputs, docs/outputs.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpf.config import validate_config
from mlpf.errors import ConfigError
from mlpf.outputs import check_model_data, dataset_dir, dataset_name, events_dir, events_name


def _config(**sections: object) -> dict:
    return validate_config(dict(sections))


def test_names_default_to_the_source_and_the_element_level():
    assert (events_name(_config()), dataset_name(_config())) == ("fastsim", "clusters")
    assert events_name(_config(source="zenodo")) == "zenodo"
    assert dataset_name(_config(dataset={"elements": "hits"})) == "hits"
    config = _config(source="zenodo", events="clic-8260741", dataset={"name": "paper"})
    assert events_dir(config) == "resources/edm4hep/clic-8260741"
    assert dataset_dir(config) == "results/datasets/clic-8260741/paper"


@pytest.mark.parametrize(
    ("key", "value"), [("events", "../x"), ("events", "a/b"), ("dataset", {"name": ".hidden"})]
)
def test_names_are_plain(key, value):
    with pytest.raises(ConfigError, match="does not match"):
        _config(**{key: value})


def _model(tmp_path: Path, train_files: list[str]) -> Path:
    model = tmp_path / "results" / "models" / "mlpf"
    model.mkdir(parents=True)
    (model / "model.json").write_text(json.dumps({"train_files": train_files}))
    return model


def test_a_model_name_stays_with_its_dataset(tmp_path):
    model = _model(tmp_path, ["results/datasets/fastsim/clusters/ttbar/0.parquet"])
    check_model_data(model, "results/datasets/fastsim/clusters")  # the same data: retraining is fine
    with pytest.raises(ConfigError, match="trained on results/datasets/fastsim/clusters; this configuration"):
        check_model_data(model, "results/datasets/fastsim/hits")


def test_no_model_or_a_record_of_another_layout_is_no_objection(tmp_path):
    check_model_data(tmp_path / "results" / "models" / "none", "results/datasets/fastsim/clusters")
    # a model trained before datasets had these levels (results/datasets/<sample>/<shard>.parquet)
    model = _model(tmp_path, ["results/datasets/ttbar/0.parquet"])
    check_model_data(model, "results/datasets/fastsim/clusters")
