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
        timing=get_timing_files,
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
    threads: 4
    shell:
        "mlpf plots --responses {input.responses} --metrics {input.metrics} --history {input.history}"
        " --timing {input.timing} --jobs {threads} --output {output.plots} > {log} 2>&1"


rule model_timing:
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
        script=BENCH_MODEL_SCRIPT,
        model=section_json("model"),
        sizes=",".join(map(str, TIMING_SIZES)),
        partial=lambda wildcards, output: f"{output.timing}.partial",
    shell:
        "python {params.script} --skip-throughput --threads {threads} --repeats 3 --sizes {params.sizes}"
        " --baseline-pf --model-settings {params.model:q} --json {params.partial} > {log} 2>&1"
        " && mv {params.partial} {output.timing}"


rule model_card:
    input:
        metrics=expand(rules.evaluate.output.metrics, model=MODEL, sample=EVAL_SAMPLES),
        info=expand(rules.train.output.info, model=MODEL),
        history=expand(rules.train.output.history, model=MODEL),
        replicas=get_replica_summary,
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
        " --replicas {input.replicas} --output {output.card} > {log} 2>&1"


rule paper:
    input:
        plots=rules.plots.output.plots,
        metrics=expand(rules.evaluate.output.metrics, model=MODEL, sample=EVAL_SAMPLES),
        card=rules.model_card.output.card,
        onnx=expand(rules.export_onnx.output.onnx, model=MODEL),
    output:
        manifest=directory("results/paper"),
    log:
        "logs/paper.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    params:
        config=json.dumps(config, sort_keys=True, separators=(",", ":")),
    shell:
        "mlpf paper-manifest --plots {input.plots} --metrics {input.metrics} --model-card {input.card}"
        " --config-json {params.config:q} --output {output.manifest} > {log} 2>&1"
