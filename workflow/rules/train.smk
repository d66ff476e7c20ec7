# Train: the MLPF model on the training shards of the training samples; export it to ONNX.


rule train:
    input:
        datasets=get_training_datasets,
    output:
        checkpoint="results/models/{model}/checkpoint.pt",
        history="results/models/{model}/history.csv",
        info="results/models/{model}/model.json",
    log:
        "logs/train/{model}.log",
    benchmark:
        "benchmarks/train/{model}.tsv"
    conda:
        "../../envs/mlpf.yaml"
    threads: 8
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=1,
        attempt=lambda wildcards, attempt: attempt,
    params:
        model=model_json,
        training=section_json("training"),
        dataset=model_dataset_json,
        jets=jet_settings_json(),
        seed=config["seed"],
        outdir=subpath(output.checkpoint, parent=True),
        launcher=torchrun_launcher,
        resume_state=lambda wildcards, output: Path(output.checkpoint).parent / RESUME_STATE,
    # A retry (`retries:` in the profiles: SLURM pre-emption, wall-time kills, node failures) continues from
    # the state the failed attempt saved instead of repeating finished epochs. A first attempt starts fresh and
    # removes a state an earlier run left, possibly made by other code (--resume checks settings and input
    # paths only). `attempt` is a resource because snakemake re-evaluates resources, not params, on a retry.
    shell:
        "if [ {resources.attempt} -gt 1 ]; then resume=--resume; else rm -f {params.resume_state}; resume=; fi; "
        "{params.launcher}mlpf train --train {input.datasets} --model-settings {params.model:q}"
        " --settings {params.training:q} --dataset-settings {params.dataset:q}"
        " --jet-settings {params.jets:q} --seed {params.seed}"
        " --threads {threads} --output-dir {params.outdir} $resume > {log} 2>&1"


rule export_onnx:
    input:
        checkpoint=rules.train.output.checkpoint,
    output:
        onnx="results/models/{model}/model.onnx",
    log:
        "logs/export/{model}.log",
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "mlpf export --checkpoint {input.checkpoint} --output {output.onnx} > {log} 2>&1"
