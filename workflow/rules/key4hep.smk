# Acquire with Key4HEP (source: key4hep): Pythia8 -> ddsim (CLIC_o3_v14, CLIC steering) -> CLIC
# reconstruction with Pandora, one job per shard, inside a Key4HEP stack (CVMFS setup script or Apptainer
# image), as the production set in key4hep.production ran it. The job's full command lines come from
# mlpf.io.key4hep and show in `snakemake -n -p`; the cards, generator options, the tracking settings and the
# runner live in workflow/resources/key4hep/, the steering and reconstruction files in key4hep.clic_config_dir.

from mlpf.io.key4hep import stack_arguments_shell, workflow_mem_mb, workflow_script


if config["source"] == "key4hep":

    rule key4hep_generate:
        """One shard through the Key4HEP chain; fails at once, with one line, where no stack exists."""
        output:
            root="resources/edm4hep/{events}/{sample}/{shard}.root",
        log:
            "logs/acquire/{events}/{sample}/{shard}.log",
        benchmark:
            "benchmarks/key4hep/{events}/{sample}/{shard}.tsv"
        conda:
            "../../envs/mlpf.yaml"
        threads: 1
        resources:
            # Cited from the production's batch requests (mlpf.io.key4hep.job_mem_mb): guns 35 GB, others 6 GB.
            mem_mb=workflow_mem_mb,
            runtime=600,  # minutes; not measured (the production set no time limit)
        params:
            settings=section_json("key4hep"),
            # Called in place (not from Snakemake's source cache): it finds the cards next to itself.
            runner=f"{workflow.basedir}/resources/key4hep/in_stack.sh",
            stack=stack_arguments_shell(config["key4hep"]),
            script=workflow_script(config["key4hep"]),
        shell:
            "mlpf key4hep-check --settings {params.settings:q} > {log} 2>&1"
            " && bash {params.runner:q} {params.stack} --output {output.root} --script {params.script:q}"
            " >> {log} 2>&1"
