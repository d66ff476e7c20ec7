# Acquire from Zenodo (source: zenodo): the published CLIC EDM4HEP files (record 8260741 by default).
# Each record file (a tar archive of ROOT files) is downloaded once by a local rule (md5-verified, resumable,
# retried with backoff); shard k of a sample is the k-th ROOT file of the sample's archives, extracted on its
# own. With zenodo.local_dir set, nothing is downloaded: the shards come from that existing copy.
# The input and params helpers live in mlpf.io.zenodo (tested there).

from mlpf.io.zenodo import DEFAULT_DOWNLOAD_DIR, transfer_settings_json, workflow_sources


if config["source"] == "zenodo":

    rule zenodo_download:
        """One record file from Zenodo: md5-verified, resumed after interruptions, retried with backoff.
        Protected: a multi-GB verified download is never deleted by a rerun."""
        output:
            archive=protected(f"{DEFAULT_DOWNLOAD_DIR}/{{record}}/{{file}}"),
        log:
            "logs/download/{record}/{file}.log",
        wildcard_constraints:
            record=r"\d+",
            file=r"[^/]+",
        localrule: True
        conda:
            "../../envs/mlpf.yaml"
        params:
            settings=transfer_settings_json(config["zenodo"]),
        shell:
            "mlpf download --record {wildcards.record} --file {wildcards.file:q} --output {output.archive:q}"
            " --settings {params.settings:q} > {log} 2>&1"

    rule zenodo_shard:
        """Shard k of a sample: the k-th ROOT file of its record files, extracted (or linked) atomically."""
        input:
            sources=workflow_sources(config["zenodo"], DEFAULT_DOWNLOAD_DIR),
        output:
            root="resources/edm4hep/{sample}/{shard}.root",
        log:
            "logs/acquire/{sample}/{shard}.log",
        conda:
            "../../envs/mlpf.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=30,
        params:
            settings=section_json("zenodo"),
        shell:
            "mlpf download --sample {wildcards.sample} --shard {wildcards.shard} --archives {input.sources:q}"
            " --output {output.root} --settings {params.settings:q} > {log} 2>&1"
