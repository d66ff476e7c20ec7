# Configuration loading, validation and the functions rules use. Nothing else lives here.

import json
import sys
from pathlib import Path

from mlpf.config import validate_config
from mlpf.errors import ConfigError

# Validate before any job is scheduled; a wrong key or type is one line, not a traceback.
try:
    config = validate_config(config, source=", ".join(map(str, workflow.configfiles)) or "config")
except ConfigError as exc:
    sys.exit(f"Invalid configuration: {exc}")

MODEL = config["model"]["name"]
TRAIN_SAMPLES = config["samples"]["train"]
EVAL_SAMPLES = config["samples"]["evaluate"]
N_TRAIN_SHARDS = config["shards"]["train"]
N_TEST_SHARDS = config["shards"]["test"]
ALL_SAMPLES = sorted(set(TRAIN_SAMPLES) | set(EVAL_SAMPLES))
TIMING_SIZES = config["evaluation"]["timing_sizes"]
# The model benchmark script (also run by hand, see docs/performance.md) measures the timing-scaling figure.
BENCH_MODEL_SCRIPT = Path(workflow.basedir).parent / "benchmarks" / "bench_model.py"


wildcard_constraints:
    sample="(" + "|".join(ALL_SAMPLES) + ")",
    shard=r"\d+",
    model=MODEL,


def section_json(name):
    """One config section as compact JSON, passed to `mlpf <stage> --settings` so that a change in one
    section reruns only the stages that use it."""
    return json.dumps(config[name], sort_keys=True, separators=(",", ":"))


def event_source_json():
    """Where the events are acquired from, for the record each parsed shard keeps of its events' origin (the
    file itself tells fast from full simulation, not which Zenodo record or Key4HEP release it came from)."""
    source = config["source"]
    record = {"source": source}
    if source == "zenodo":
        record["zenodo_record"] = config["zenodo"]["record"]
    elif source == "key4hep":
        record["key4hep_release"] = config["key4hep"]["release"] or "the setup script's default"
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def training_shards():
    """Shard indices used for training (and the validation split inside training)."""
    return list(range(N_TRAIN_SHARDS))


def test_shards():
    """Held-out shard indices: the ones after the training range, so no event is both trained on and tested."""
    return list(range(N_TRAIN_SHARDS, N_TRAIN_SHARDS + N_TEST_SHARDS))


def get_training_datasets(wildcards):
    return expand(
        "results/datasets/{sample}/{shard}.parquet", sample=TRAIN_SAMPLES, shard=training_shards()
    )


def get_test_datasets(wildcards):
    return expand(
        "results/datasets/{sample}/{shard}.parquet", sample=wildcards.sample, shard=test_shards()
    )


def get_timing_files(wildcards=None):
    """The timing-scaling measurement, only when evaluation.timing_sizes asks for it."""
    return expand("results/timing/{model}.json", model=MODEL) if TIMING_SIZES else []


def get_final_output():
    return [
        "results/plots",
        *expand("results/metrics/{model}/{sample}.json", model=MODEL, sample=EVAL_SAMPLES),
        f"results/models/{MODEL}/model.onnx",
        "results/model_card.md",
    ]


# The resumable training state `mlpf train` writes beside its outputs (mlpf.train.RESUME_CHECKPOINT; not imported,
# which would load torch for every plan; tests/workflow/test_workflow.py checks they agree).
RESUME_STATE = "last.pt"


def torchrun_launcher(wildcards, resources):
    """`torchrun ... --no-python ` when the job holds several GPUs (data-parallel, one process per GPU)."""
    n_gpus = int(resources.get("gpu", 0) or 0)
    if n_gpus > 1:
        return f"torchrun --standalone --nnodes=1 --nproc_per_node={n_gpus} --no-python "
    return ""
