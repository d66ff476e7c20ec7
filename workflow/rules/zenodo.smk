# Acquire from Zenodo (source: zenodo): the published CLIC EDM4HEP files (record 8260741 by default).
# The record's listing is fetched once (local rule); each sample's files are chosen from it by the sample's
# patterns (zenodo.samples) in a checkpoint that writes the sample's manifest (files, sizes, md5s: the
# provenance of its shards); each chosen file is downloaded once by a local rule (md5-verified, resumable,
# retried with backoff); shard k of a sample is the k-th ROOT file of its files, extracted on its own.
# With zenodo.local_dir set, nothing is listed or downloaded: the patterns are matched in that local copy.
# The helpers live in mlpf.io.zenodo (tested there).

from mlpf.io.zenodo import (
    DEFAULT_DOWNLOAD_DIR,
    listing_path,
    selection_settings_json,
    settings_subset_json,
    transfer_settings_json,
)


if config["source"] == "zenodo":
    ZENODO = config["zenodo"]
    ZENODO_LOCAL = bool(ZENODO["local_dir"])
    ZENODO_LISTING = [] if ZENODO_LOCAL else [listing_path(ZENODO["record"], DEFAULT_DOWNLOAD_DIR)]

    if not ZENODO_LOCAL:

        rule zenodo_listing:
            """The record's file listing (keys, sizes, md5s, links), kept so that every later step reads the
            same listing; fails at once, with one line, where Zenodo cannot be reached."""
            output:
                listing=f"{DEFAULT_DOWNLOAD_DIR}/{{record}}.listing.json",
            log:
                "logs/download/{record}.listing.log",
            wildcard_constraints:
                record=r"\d+",
            localrule: True
            conda:
                "../../envs/mlpf.yaml"
            params:
                settings=transfer_settings_json(ZENODO),
            shell:
                "mlpf download --list --record {wildcards.record} --output {output.listing}"
                " --settings {params.settings:q} > {log} 2>&1"

        rule zenodo_download:
            """One record file from Zenodo: md5-verified, resumed after interruptions, retried with backoff.
            Protected: a multi-GB verified download is never deleted by a rerun."""
            input:
                listing=f"{DEFAULT_DOWNLOAD_DIR}/{{record}}.listing.json",
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
                settings=transfer_settings_json(ZENODO),
            shell:
                "mlpf download --record {wildcards.record} --listing {input.listing} --file {wildcards.file:q}"
                " --output {output.archive:q} --settings {params.settings:q} > {log} 2>&1"

    checkpoint zenodo_select:
        """The sample's files chosen by its patterns, with sizes and md5s; a pattern that matches nothing
        fails here, with one line naming the files there are."""
        input:
            listing=ZENODO_LISTING,
        output:
            manifest="resources/edm4hep/{events}/{sample}/zenodo_files.json",
        log:
            "logs/acquire/{events}/{sample}/zenodo_files.log",
        localrule: True
        conda:
            "../../envs/mlpf.yaml"
        params:
            settings=lambda wildcards: selection_settings_json(ZENODO, wildcards.sample),
            listing=" ".join(f"--listing {path}" for path in ZENODO_LISTING),
        shell:
            "mlpf download --select {wildcards.sample} {params.listing} --output {output.manifest}"
            " --settings {params.settings:q} > {log} 2>&1"

    rule zenodo_shard:
        """Shard k of a sample: the k-th ROOT file of its files, extracted (or linked) atomically."""
        input:
            manifest="resources/edm4hep/{events}/{sample}/zenodo_files.json",
            sources=zenodo_sample_files,
        output:
            root="resources/edm4hep/{events}/{sample}/{shard}.root",
        log:
            "logs/acquire/{events}/{sample}/{shard}.log",
        conda:
            "../../envs/mlpf.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=30,
        params:
            settings=settings_subset_json(ZENODO, ("local_link",)),
        shell:
            "mlpf download --sample {wildcards.sample} --shard {wildcards.shard} --manifest {input.manifest}"
            " --output {output.root} --settings {params.settings:q} > {log} 2>&1"
