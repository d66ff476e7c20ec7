# Configuration loading, validation and the functions rules use. Nothing else lives here.

import json
import re
import shlex
import sys
from pathlib import Path

from mlpf.config import validate_workflow_config
from mlpf.errors import ConfigError
from mlpf.io.zenodo import manifest_paths
from mlpf.outputs import check_model_data, dataset_dir, dataset_name, events_name

# Validate before any job is scheduled, cross-field rules included; a wrong key or type is one line, not a
# traceback, and names --config when a command-line override set the key.
try:
    config = validate_workflow_config(
        config, workflow.configfiles, overrides=workflow.config_settings.config
    )
except ConfigError as exc:
    sys.exit(f"Invalid configuration: {exc}")

# The names that key the outputs (docs/outputs.md): the acquired events, the dataset parsed from them, and the
# model trained on it with everything made from it. Each is a path level, so configurations live side by side.
EVENTS = events_name(config)
DATASET = dataset_name(config)
DATASETS = dataset_dir(config)  # results/datasets/<events>/<dataset>
MODEL = config["model"]["name"]
# One model name, one training dataset: retraining a name on other data would replace what it made.
try:
    check_model_data(f"results/models/{MODEL}", DATASETS)
except ConfigError as exc:
    sys.exit(f"Invalid configuration: {exc}")
# The comparison (docs/evaluation.md): a second model of the same events at the other element level, trained in
# the same run on its own dataset and shown beside the configured one. Each model name maps to its dataset, each
# dataset name to its `dataset` settings.
COMPANION = config["comparison"]["model_name"]
MODEL_DATASETS = {MODEL: DATASET}
DATASET_SETTINGS = {DATASET: config["dataset"]}
if COMPANION:
    _level = config["comparison"]["elements"]
    if _level == config["dataset"]["elements"] or COMPANION == MODEL or _level == DATASET:
        sys.exit(
            "Invalid configuration: comparison: the second model needs its own name (not model.name) and the "
            f"other element level (not dataset.elements '{config['dataset']['elements']}', nor the dataset "
            f"name '{DATASET}')"
        )
    MODEL_DATASETS[COMPANION] = _level
    DATASET_SETTINGS[_level] = {**config["dataset"], "elements": _level, "name": _level}
    try:
        check_model_data(f"results/models/{COMPANION}", f"results/datasets/{EVENTS}/{_level}")
    except ConfigError as exc:
        sys.exit(f"Invalid configuration: {exc}")
TRAIN_SAMPLES = config["samples"]["train"]
EVAL_SAMPLES = config["samples"]["evaluate"]
N_TRAIN_SHARDS = config["shards"]["train"]
N_TEST_SHARDS = config["shards"]["test"]
TRAIN_SHARDS_PER_SAMPLE = config["shards"]["train_per_sample"]
if set(TRAIN_SHARDS_PER_SAMPLE) - set(TRAIN_SAMPLES):
    sys.exit(
        "Invalid configuration: shards.train_per_sample: "
        f"{sorted(set(TRAIN_SHARDS_PER_SAMPLE) - set(TRAIN_SAMPLES))} not in samples.train {TRAIN_SAMPLES}"
    )
ALL_SAMPLES = sorted(set(TRAIN_SAMPLES) | set(EVAL_SAMPLES))
TIMING_SIZES = config["evaluation"]["timing_sizes"]
# The model benchmark scripts (also run by hand, see docs/performance.md) measure the timing-scaling figure:
# synthetic events and the baseline PF at the cluster level, the held-out events themselves at the hit level.
BENCH_MODEL_SCRIPT = Path(workflow.basedir).parent / "benchmarks" / "bench_model.py"
BENCH_HITS_SCRIPT = Path(workflow.basedir).parent / "benchmarks" / "bench_hits.py"


wildcard_constraints:
    sample="(" + "|".join(ALL_SAMPLES) + ")",
    shard=r"\d+",
    # literals: a '.' in a name must not match any character
    events=re.escape(EVENTS),
    dataset="|".join(map(re.escape, DATASET_SETTINGS)),
    model="|".join(map(re.escape, MODEL_DATASETS)),


def section_json(name):
    """One config section as compact JSON, passed to `mlpf <stage> --settings` so that a change in one
    section reruns only the stages that use it."""
    return json.dumps(config[name], sort_keys=True, separators=(",", ":"))


def _json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def dataset_json(wildcards):
    """The `dataset` settings of the dataset being parsed (the configured one, or the comparison's)."""
    return _json(DATASET_SETTINGS[wildcards.dataset])


def model_json(wildcards):
    """The `model` section of the model being trained: the configured one, named after the wildcard."""
    return _json({**config["model"], "name": wildcards.model})


def model_dataset_json(wildcards):
    """The `dataset` settings of the dataset the model being trained learns from."""
    return _json(DATASET_SETTINGS[MODEL_DATASETS[wildcards.model]])


def datasets_of(wildcards):
    """results/datasets/<events>/<dataset> of the wildcards' model (the configured model without one)."""
    model = getattr(wildcards, "model", MODEL) if wildcards is not None else MODEL
    return f"results/datasets/{EVENTS}/{MODEL_DATASETS[model]}"


def jet_settings_json():
    """The jet definition (evaluation.jets) as JSON: the training's validation metric uses it as well."""
    return json.dumps(config["evaluation"]["jets"], sort_keys=True, separators=(",", ":"))


def event_source_json():
    """Where the events are acquired from, for the record each parsed shard keeps of its events' origin (the
    file itself tells fast from full simulation, not which Zenodo record or Key4HEP release it came from)."""
    source = config["source"]
    record = {"source": source, "events": EVENTS}
    if source == "zenodo":
        record["zenodo_record"] = config["zenodo"]["record"]
    elif source == "key4hep":
        record["key4hep_release"] = config["key4hep"]["release"] or "the setup script's default"
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def training_shards(sample):
    """Shard indices of `sample` used for training (and the validation split inside training): the first
    shards.train, or its own count from shards.train_per_sample."""
    return list(range(TRAIN_SHARDS_PER_SAMPLE.get(sample, N_TRAIN_SHARDS)))


def test_shards():
    """Held-out shard indices: the ones after the training range, so no event is both trained on and tested."""
    return list(range(N_TRAIN_SHARDS, N_TRAIN_SHARDS + N_TEST_SHARDS))


def get_training_datasets(wildcards):
    return [
        f"{datasets_of(wildcards)}/{sample}/{shard}.parquet"
        for sample in TRAIN_SAMPLES
        for shard in training_shards(sample)
    ]


def get_test_datasets(wildcards):
    return expand(
        f"{datasets_of(wildcards)}/{{sample}}/{{shard}}.parquet", sample=wildcards.sample, shard=test_shards()
    )


def get_timing_files(wildcards=None):
    """The timing-scaling measurement, only when evaluation.timing_sizes asks for it."""
    return expand("results/timing/{model}.json", model=MODEL) if TIMING_SIZES else []


def get_timing_shards(wildcards=None):
    """The held-out shards whose elements the hit-level timing is measured on (none at the cluster level, where
    the timing runs on synthetic events of each size)."""
    if not TIMING_SIZES or config["dataset"]["elements"] != "hits":
        return []
    return expand(f"{DATASETS}/{{sample}}/{{shard}}.parquet", sample=EVAL_SAMPLES[0], shard=test_shards())


def timing_command(wildcards, input, threads):
    """The timing-scaling measurement of the configured model (rule model_timing), without its --json."""
    model = shlex.quote(section_json("model"))
    if input.shards:  # hit level: N elements cut from the real held-out events (benchmarks/bench_hits.py)
        # One thread: the CPU seconds of one thread are the per-core cost, which other jobs on the machine
        # inflate little; with two, the threads' spin-waits count as CPU time and grow with the machine's load.
        return (
            f"python {BENCH_HITS_SCRIPT} --skip-training --shards {' '.join(input.shards)} --threads 1"
            f" --repeats 2 --sizes {' '.join(map(str, TIMING_SIZES))} --model-settings {model}"
        )
    return (
        f"python {BENCH_MODEL_SCRIPT} --skip-throughput --threads {threads} --repeats 3"
        f" --sizes {','.join(map(str, TIMING_SIZES))} --baseline-pf --model-settings {model}"
    )


def zenodo_sample_files(wildcards):
    """The files a Zenodo sample's manifest names (downloads, or the local copy), known once the manifest exists
    (checkpoint zenodo_select in rules/zenodo.smk); the shard job reads them, in shard order, from it."""
    manifest = checkpoints.zenodo_select.get(events=wildcards.events, sample=wildcards.sample).output.manifest
    return manifest_paths(manifest)


def get_comparison():
    """The side-by-side evaluation of the configured model, the comparison's model and the baseline PF."""
    return [f"results/compare/{MODEL}"] if COMPANION else []


def get_companion_metrics(wildcards=None):
    """The comparison's model's metrics of every evaluated sample (none without a comparison)."""
    return expand("results/metrics/{model}/{sample}.json", model=COMPANION, sample=EVAL_SAMPLES) if COMPANION else []


def get_figures():
    """The configured model's figures, results/figures/<model>/ (the main target results/plots is their view)."""
    return f"results/figures/{MODEL}"


def get_plots_inputs(wildcards=None):
    """What the main target results/plots waits for: the figures it shows, and the comparison when one is
    configured."""
    return {"figures": get_figures(), "comparison": get_comparison()}


def get_paper_manifest():
    """The configured model's paper manifest (target `paper`)."""
    return [f"results/paper/{MODEL}"]


def get_final_output():
    return [
        "results/plots",
        *get_comparison(),
        *expand("results/metrics/{model}/{sample}.json", model=MODEL, sample=EVAL_SAMPLES),
        f"results/models/{MODEL}/model.onnx",
        f"results/models/{MODEL}/model_card.md",
        *get_replica_summary(),
    ]


# The resumable training state `mlpf train` writes beside its outputs (mlpf.training.loop.RESUME_CHECKPOINT; not imported,
# which would load torch for every plan; tests/workflow/test_workflow.py checks they agree).
RESUME_STATE = "last.pt"


def torchrun_launcher(wildcards, resources):
    """`torchrun ... --no-python ` when the job holds several GPUs (data-parallel, one process per GPU)."""
    n_gpus = int(resources.get("gpu", 0) or 0)
    if n_gpus > 1:
        return f"torchrun --standalone --nnodes=1 --nproc_per_node={n_gpus} --no-python "
    return ""

# Hyperparameter optimisation (rules/hpo.smk) and seed replicas (rules/replicas.smk). The study's state (its
# journal file, the trials' histories) lives under results/studies/<study>/; the summary target results/hpo
# is a directory output, so nothing else may live below it.
HPO = config["hpo"]
HPO_STUDY = HPO["study_name"]
REPLICA_SEEDS = config["replicas"]["seeds"]


wildcard_constraints:
    study=HPO_STUDY.replace(".", r"\."),  # a literal name (the schema allows letters, digits, _ . -)
    worker=r"\d+",
    seed=r"\d+",


def hpo_study_file(name):
    """A file of the configured study's directory (rules/hpo.smk writes them)."""
    return f"results/studies/{HPO_STUDY}/{name}"


def get_hpo_workers(wildcards):
    """The record of every worker of the study (each runs trials until the shared budget is spent)."""
    return expand(
        "results/studies/{study}/workers/{worker}.json", study=wildcards.study, worker=range(HPO["n_workers"])
    )


def comparison_seeds():
    """Seeds of the default vs tuned comparison: the replica seeds, or the config seed alone."""
    return REPLICA_SEEDS or [config["seed"]]


def seed_run_dir(seed):
    """Where the base configuration trained with `seed` lives: the main model for the config seed (the same
    training), else a replica."""
    return f"results/models/{MODEL}" if seed == config["seed"] else f"results/replicas/{MODEL}/seed{seed}"


def get_default_runs(name):
    """`name` (history.csv or model.json) of the base configuration's training for each comparison seed."""
    return [f"{seed_run_dir(seed)}/{name}" for seed in comparison_seeds()]


def get_tuned_runs(name):
    """`name` of the tuned configuration's training for each comparison seed."""
    return expand(
        "results/studies/{study}/tuned/seed{seed}/{name}", study=HPO_STUDY, seed=comparison_seeds(), name=name
    )


def get_replica_runs(name):
    """`name` of every replica (the main model for the config seed)."""
    return [f"{seed_run_dir(seed)}/{name}" for seed in REPLICA_SEEDS]


def get_replica_summary(wildcards=None):
    """The spread across seeds (metrics JSON), only when replicas.seeds asks for replicas."""
    return expand("results/metrics/{model}/replicas.json", model=MODEL) if REPLICA_SEEDS else []
