# Evaluate: jets, MET and per-class metrics (numbers), then the figures, the report and the model card.


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


rule plots:
    input:
        responses=expand(rules.evaluate.output.responses, model=MODEL, sample=EVAL_SAMPLES),
        metrics=expand(rules.evaluate.output.metrics, model=MODEL, sample=EVAL_SAMPLES),
        history=expand(rules.train.output.history, model=MODEL),
    output:
        plots=report(
            directory("results/plots"),
            patterns=["{group}/{name}.png"],
            caption="../report/plots.rst",
            category="Figures",
            subcategory="{group}",
        ),
    log:
        "logs/plots.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    shell:
        "mlpf plots --responses {input.responses} --metrics {input.metrics} --history {input.history}"
        " --output {output.plots} > {log} 2>&1"


rule model_card:
    input:
        metrics=expand(rules.evaluate.output.metrics, model=MODEL, sample=EVAL_SAMPLES),
        info=expand(rules.train.output.info, model=MODEL),
        history=expand(rules.train.output.history, model=MODEL),
    output:
        card=report("results/model_card.md", caption="../report/model_card.rst", category="Model card"),
    log:
        "logs/model_card.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    shell:
        "mlpf model-card --metrics {input.metrics} --model-info {input.info} --history {input.history}"
        " --output {output.card} > {log} 2>&1"
