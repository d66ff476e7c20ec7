# Evaluate: jets, MET and per-class metrics (numbers), then the figures, the report and the model card.
# Every model's figures are kept in results/figures/{model}/; the main target, results/plots, is the view of the
# configured model's (rule plots), replaced by each configuration that makes it.


rule evaluate:
    input:
        predictions=rules.infer.output.predictions,
    output:
        metrics="results/metrics/{model}/{sample}.json",
        responses="results/evaluation/{model}/{sample}.parquet",
    log:
        "logs/evaluate/{model}/{sample}.log",
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=section_json("evaluation"),
    shell:
        "mlpf evaluate --predictions {input.predictions} --sample {wildcards.sample} --model {wildcards.model}"
        " --settings {params.settings:q} --metrics {output.metrics} --responses {output.responses} > {log} 2>&1"


rule figures:
    input:
        responses=expand(rules.evaluate.output.responses, sample=EVAL_SAMPLES, allow_missing=True),
        metrics=expand(rules.evaluate.output.metrics, sample=EVAL_SAMPLES, allow_missing=True),
        history=rules.train.output.history,
        timing=get_timing_files,
    output:
        figures=report(
            directory("results/figures/{model}"),
            patterns=["{group}/{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            subcategory="{group}",
        ),
    log:
        "logs/figures/{model}.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 4
    shell:
        "mlpf plots --responses {input.responses} --metrics {input.metrics} --history {input.history}"
        " --timing {input.timing} --jobs {threads} --output {output.figures} > {log} 2>&1"


# The main target: results/plots, the view of the configured model's figures (hard links or copies, and an
# index.md naming the model, events and dataset). A directory of its own beside results/figures/, so that both
# are outputs of one DAG; another configuration replaces the view and never results/figures/{model}/.
rule plots:
    input:
        unpack(get_plots_inputs),
    output:
        view=directory("results/plots"),
    log:
        "logs/plots.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    params:
        model=MODEL,
        events=EVENTS,
        dataset=DATASET,
    shell:
        "mlpf view-figures --figures {input.figures} --model {params.model} --events {params.events}"
        " --dataset {params.dataset} --output {output.view} > {log} 2>&1"


rule model_timing:
    input:
        shards=get_timing_shards,
    output:
        timing="results/timing/{model}.json",
    log:
        "logs/timing/{model}.log",
    benchmark:
        "benchmarks/timing/{model}.tsv"
    conda:
        "../../envs/mlpf.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=60,
    params:
        command=timing_command,
        partial=lambda wildcards, output: f"{output.timing}.partial",
    shell:
        "{params.command} --json {params.partial} > {log} 2>&1 && mv {params.partial} {output.timing}"


rule model_card:
    input:
        metrics=expand(rules.evaluate.output.metrics, sample=EVAL_SAMPLES, allow_missing=True),
        info=rules.train.output.info,
        history=rules.train.output.history,
        replicas=get_replica_summary,
        figures=rules.figures.output.figures,
    output:
        card=report(
            "results/models/{model}/model_card.md", caption="../report/model_card.rst", category="Model card"
        ),
    log:
        "logs/model_card/{model}.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    shell:
        "mlpf model-card --metrics {input.metrics} --model-info {input.info} --history {input.history}"
        " --replicas {input.replicas} --figures {input.figures} --output {output.card} > {log} 2>&1"


rule paper_manifest:
    input:
        figures=rules.figures.output.figures,
        metrics=expand(rules.evaluate.output.metrics, sample=EVAL_SAMPLES, allow_missing=True),
        card=rules.model_card.output.card,
        onnx=rules.export_onnx.output.onnx,
    output:
        manifest=directory("results/paper/{model}"),
    log:
        "logs/paper/{model}.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    params:
        config=json.dumps(config, sort_keys=True, separators=(",", ":")),
    shell:
        "mlpf paper-manifest --plots {input.figures} --metrics {input.metrics} --model-card {input.card}"
        " --config-json {params.config:q} --output {output.manifest} > {log} 2>&1"
