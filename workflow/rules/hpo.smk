# Hyperparameter optimisation (docs/hpo.md): an Optuna study of short trainings on the training shards, scored
# on their validation split, run by hpo.n_workers parallel worker jobs that share one storage; then the best
# configuration, the trial table, the study's figures and the default vs tuned comparison in results/hpo.
#
#   snakemake --cores all results/hpo --configfile config/hpo.yaml
#
# The study's storage (a journal file by default) is its state, not a job's output: a killed or rerun worker
# continues the same study, and raising hpo.n_trials continues a finished one.


rule hpo_study:
    input:
        datasets=get_training_datasets,
    output:
        record="results/studies/{study}/study.json",
    log:
        "logs/hpo/{study}/study.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    params:
        hpo=section_json("hpo"),
        model=section_json("model"),
        training=section_json("training"),
        dataset=section_json("dataset"),
        jets=jet_settings_json(),
        seed=config["seed"],
        study_dir=subpath(output.record, parent=True),
    shell:
        "mlpf hpo create --study-dir {params.study_dir} --hpo-settings {params.hpo:q}"
        " --model-settings {params.model:q} --training-settings {params.training:q}"
        " --dataset-settings {params.dataset:q} --jet-settings {params.jets:q} --seed {params.seed}"
        " --train {input.datasets}"
        " --output {output.record} > {log} 2>&1"


rule hpo_worker:
    input:
        study=rules.hpo_study.output.record,
        datasets=get_training_datasets,
    output:
        record="results/studies/{study}/workers/{worker}.json",
    log:
        "logs/hpo/{study}/worker{worker}.log",
    benchmark:
        "benchmarks/hpo/{study}/worker{worker}.tsv"
    conda:
        "../../envs/mlpf.yaml"
    threads: 8
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=1,
    params:
        hpo=section_json("hpo"),
        model=section_json("model"),
        training=section_json("training"),
        dataset=section_json("dataset"),
        jets=jet_settings_json(),
        seed=config["seed"],
        study_dir=subpath(input.study, parent=True),
    shell:
        "mlpf hpo worker --study-dir {params.study_dir} --hpo-settings {params.hpo:q}"
        " --model-settings {params.model:q} --training-settings {params.training:q}"
        " --dataset-settings {params.dataset:q} --jet-settings {params.jets:q} --seed {params.seed}"
        " --train {input.datasets}"
        " --index {wildcards.worker} --threads {threads} --output {output.record} > {log} 2>&1"


rule hpo_best:
    input:
        workers=get_hpo_workers,
        datasets=get_training_datasets,
    output:
        best="results/studies/{study}/best.yaml",
        trials="results/studies/{study}/trials.csv",
    log:
        "logs/hpo/{study}/best.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    params:
        hpo=section_json("hpo"),
        model=section_json("model"),
        training=section_json("training"),
        dataset=section_json("dataset"),
        jets=jet_settings_json(),
        seed=config["seed"],
        study_dir=subpath(output.best, parent=True),
    shell:
        "mlpf hpo best --study-dir {params.study_dir} --hpo-settings {params.hpo:q}"
        " --model-settings {params.model:q} --training-settings {params.training:q}"
        " --dataset-settings {params.dataset:q} --jet-settings {params.jets:q} --seed {params.seed}"
        " --train {input.datasets}"
        " --best {output.best} --trials {output.trials} > {log} 2>&1"


# The tuned configuration trained like the main model (same data, split, seed and training.epochs), beside it.
rule hpo_train_tuned:
    input:
        best=rules.hpo_best.output.best,
        datasets=get_training_datasets,
    output:
        checkpoint="results/studies/{study}/tuned/seed{seed}/checkpoint.pt",
        history="results/studies/{study}/tuned/seed{seed}/history.csv",
        info="results/studies/{study}/tuned/seed{seed}/model.json",
    log:
        "logs/hpo/{study}/tuned_seed{seed}.log",
    benchmark:
        "benchmarks/hpo/{study}/tuned_seed{seed}.tsv"
    conda:
        "../../envs/mlpf.yaml"
    threads: 8
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=1,
    params:
        model=section_json("model"),
        training=section_json("training"),
        dataset=section_json("dataset"),
        jets=jet_settings_json(),
        split_seed=config["seed"],
        outdir=subpath(output.checkpoint, parent=True),
    shell:
        "mlpf hpo train-best --best {input.best} --train {input.datasets} --model-settings {params.model:q}"
        " --training-settings {params.training:q} --dataset-settings {params.dataset:q} --jet-settings {params.jets:q}"
        " --seed {wildcards.seed} --split-seed {params.split_seed} --threads {threads}"
        " --output-dir {params.outdir} > {log} 2>&1"


rule hpo:
    input:
        best=hpo_study_file("best.yaml"),
        trials=hpo_study_file("trials.csv"),
        default_history=get_default_runs("history.csv"),
        default_info=get_default_runs("model.json"),
        tuned_history=get_tuned_runs("history.csv"),
        tuned_info=get_tuned_runs("model.json"),
    output:
        summary=report(
            directory("results/hpo"),
            patterns=["{name}.png"],
            caption="../report/hpo.rst",
            category="Hyperparameter optimisation",
        ),
    log:
        "logs/hpo/report.log",
    localrule: True
    conda:
        "../../envs/mlpf.yaml"
    threads: 1
    params:
        hpo=section_json("hpo"),
        model=section_json("model"),
        training=section_json("training"),
        dataset=section_json("dataset"),
        jets=jet_settings_json(),
        seed=config["seed"],
        study_dir=subpath(input.best, parent=True),
        datasets=get_training_datasets(None),
    shell:
        "mlpf hpo report --study-dir {params.study_dir} --hpo-settings {params.hpo:q}"
        " --model-settings {params.model:q} --training-settings {params.training:q}"
        " --dataset-settings {params.dataset:q} --jet-settings {params.jets:q} --seed {params.seed}"
        " --train {params.datasets}"
        " --best {input.best} --trials {input.trials}"
        " --default-history {input.default_history} --default-info {input.default_info}"
        " --tuned-history {input.tuned_history} --tuned-info {input.tuned_info}"
        " --output {output.summary} > {log} 2>&1"
