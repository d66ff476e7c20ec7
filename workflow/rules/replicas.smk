# Replicas: the main training repeated with the seeds of replicas.seeds (paper Fig. 3), on the main run's
# training/validation split; their spread goes to results/metrics/{model}/replicas.json, the model card and
# a mean +- std figure. The replica with the config seed is the main model itself (common.smk: seed_run_dir).


rule train_replica:
    input:
        datasets=get_training_datasets,
    output:
        checkpoint="results/replicas/{model}/seed{seed}/checkpoint.pt",
        history="results/replicas/{model}/seed{seed}/history.csv",
        info="results/replicas/{model}/seed{seed}/model.json",
    log:
        "logs/replicas/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/replicas/{model}/seed{seed}.tsv"
    conda:
        "../../envs/mlpf.yaml"
    threads: 8
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=1,
        attempt=lambda wildcards, attempt: attempt,
    params:
        model=section_json("model"),
        training=section_json("training"),
        dataset=section_json("dataset"),
        jets=jet_settings_json(),
        split_seed=config["seed"],
        outdir=subpath(output.checkpoint, parent=True),
        launcher=torchrun_launcher,
        resume_state=lambda wildcards, output: Path(output.checkpoint).parent / RESUME_STATE,
    # A retry resumes from the state its failed attempt saved, as the main training does (rules/train.smk).
    shell:
        "if [ {resources.attempt} -gt 1 ]; then resume=--resume;"
        " else rm -f {params.resume_state}; resume=; fi; "
        "{params.launcher}mlpf train --train {input.datasets} --model-settings {params.model:q}"
        " --settings {params.training:q} --dataset-settings {params.dataset:q}"
        " --jet-settings {params.jets:q} --seed {wildcards.seed}"
        " --split-seed {params.split_seed} --threads {threads} --output-dir {params.outdir} $resume"
        " > {log} 2>&1"


rule replicas:
    input:
        history=get_replica_runs("history.csv"),
        info=get_replica_runs("model.json"),
    output:
        metrics="results/metrics/{model}/replicas.json",
        figure=report(
            "results/replicas/{model}/validation_seeds.png",
            caption="../report/replicas.rst",
            category="Training",
            subcategory="seeds",
        ),
        figure_pdf="results/replicas/{model}/validation_seeds.pdf",
    log:
        "logs/replicas/{model}.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    params:
        seeds=" ".join(map(str, REPLICA_SEEDS)),
        figures=subpath(output.figure, parent=True),
    shell:
        "mlpf replicas summary --history {input.history} --info {input.info} --seeds {params.seeds}"
        " --metrics {output.metrics} --figures {params.figures} > {log} 2>&1"
