# Infer: the trained model on the held-out shards of each evaluated sample.


rule infer:
    input:
        checkpoint=rules.train.output.checkpoint,
        datasets=get_test_datasets,
    output:
        predictions="results/predictions/{model}/{sample}.parquet",
    log:
        "logs/infer/{model}/{sample}.log",
    benchmark:
        "benchmarks/infer/{model}/{sample}.tsv"
    conda:
        "../../envs/mlpf.yaml"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    params:
        precision=config["inference"]["precision"],
        batch_size=config["inference"]["batch_size"],
    shell:
        "mlpf infer --checkpoint {input.checkpoint} --input {input.datasets} --threads {threads}"
        " --precision {params.precision} --batch-size {params.batch_size} --output {output.predictions}"
        " > {log} 2>&1"
