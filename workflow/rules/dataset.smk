# Parse: one EDM4HEP file -> element features, targets and baseline candidates as one parquet shard.


rule parse:
    input:
        root="resources/edm4hep/{events}/{sample}/{shard}.root",
    output:
        parquet="results/datasets/{events}/{dataset}/{sample}/{shard}.parquet",
    log:
        "logs/parse/{events}/{dataset}/{sample}/{shard}.log",
    benchmark:
        "benchmarks/parse/{events}/{dataset}/{sample}/{shard}.tsv"
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings=dataset_json,
        source=event_source_json(),
    shell:
        "mlpf parse --input {input.root} --output {output.parquet} --settings {params.settings:q}"
        " --source {params.source:q} > {log} 2>&1"
