# Compare: the configured model, the comparison's model (the same events at the other element level) and the
# baseline PF side by side (comparison.model_name; docs/evaluation.md).


rule compare:
    input:
        metrics=expand("results/metrics/{{model}}/{sample}.json", sample=EVAL_SAMPLES),
        second=get_companion_metrics,
    output:
        comparison=directory("results/compare/{model}"),
    log:
        "logs/compare/{model}.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    params:
        labels=f"{config['dataset']['elements']} {config['comparison']['elements']}",
        second_model=COMPANION,
    shell:
        "mlpf compare --metrics {input.metrics} --second-metrics {input.second} --labels {params.labels}"
        " --models {wildcards.model} {params.second_model} --output {output.comparison} > {log} 2>&1"
