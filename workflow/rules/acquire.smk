# Acquire: EDM4HEP event files resources/edm4hep/{events}/{sample}/{shard}.root from the configured source.
# Exactly one source is active, so exactly one rule can produce these files.


if config["source"] == "fastsim":

    rule fastsim:
        """Pythia8 events through the CLICdet-like parametric detector and the baseline PF."""
        output:
            root="resources/edm4hep/{events}/{sample}/{shard}.root",
        log:
            "logs/acquire/{events}/{sample}/{shard}.log",
        benchmark:
            "benchmarks/fastsim/{events}/{sample}/{shard}.tsv"
        conda:
            "../../envs/mlpf.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        params:
            settings=section_json("fastsim"),
            seed=config["seed"],
        shell:
            "mlpf fastsim --sample {wildcards.sample} --shard {wildcards.shard} --seed {params.seed}"
            " --settings {params.settings:q} --output {output.root} > {log} 2>&1"


include: "zenodo.smk"
include: "key4hep.smk"
