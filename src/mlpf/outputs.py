"""Where a configuration's outputs go: the names that key them, so that runs of different configurations live
side by side in one results/ (docs/outputs.md).

Three names, each a path level, each standing for what defines the outputs below it:

- events (`events`, default: the source's name): the acquired EDM4HEP files, `resources/edm4hep/<events>/`,
  defined by the source, its config section and the seed;
- dataset (`dataset.name`, default: the element level): the parsed shards of those events,
  `results/datasets/<events>/<dataset>/`, defined by the `dataset` section;
- model (`model.name`): the model trained on one dataset and everything made from it (predictions, metrics,
  figures, model card, paper manifest), `results/<stage>/<model>/`.

Predictions of two models on the same events (a hit-level and a cluster-level model, say) are
`results/predictions/<model>/<sample>.parquet` of each; both carry the events' name in their metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpf.errors import ConfigError

# A parsed shard: results/datasets/<events>/<dataset>/<sample>/<shard>.parquet
SHARD_PATH_DEPTH = 6


def events_name(config: dict[str, Any]) -> str:
    """The name of the configuration's acquired events: `events`, or the source's name when it is empty."""
    return config.get("events") or config["source"]


def dataset_name(config: dict[str, Any]) -> str:
    """The name of the parsed dataset: `dataset.name`, or the element level (clusters, hits) when empty."""
    dataset = config["dataset"]
    return dataset.get("name") or dataset["elements"]


def events_dir(config: dict[str, Any]) -> str:
    return f"resources/edm4hep/{events_name(config)}"


def dataset_dir(config: dict[str, Any]) -> str:
    return f"results/datasets/{events_name(config)}/{dataset_name(config)}"


def check_model_data(model_dir: str | Path, datasets: str | Path) -> None:
    """Refuse to train a model name again on another dataset than the one its outputs came from.

    A model's outputs are keyed by its name alone; a second configuration that keeps the name but trains on
    other events or another dataset would replace them (Snakemake reruns on changed inputs). The model's
    `model.json`, if there is one, names its training files; when they lie outside `datasets`, the
    configuration must name its model differently (or the old outputs be removed). One line, before any job.
    """
    info_path = Path(model_dir) / "model.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no model yet, or a damaged record the training rewrites anyway
        return
    trained_on = {_dataset_of(str(f)) for f in info.get("train_files") or []} - {None, str(datasets)}
    if trained_on:
        raise ConfigError(
            f"model.name '{Path(model_dir).name}' is the model trained on {', '.join(sorted(trained_on))}; "
            f"this configuration trains on {datasets}: give the model another name (model.name), or remove "
            f"{model_dir} to retrain it",
        )


def _dataset_of(shard: str) -> str | None:
    """`results/datasets/<events>/<dataset>` of a shard path in that layout (None for any other path)."""
    parts = Path(shard).parts
    if len(parts) != SHARD_PATH_DEPTH or parts[:2] != ("results", "datasets"):
        return None
    return str(Path(*parts[:4]))
