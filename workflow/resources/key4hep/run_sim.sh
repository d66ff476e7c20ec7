#!/usr/bin/env bash
# One shard of any sample through the Key4HEP chain, outside Snakemake (what the key4hep rule runs):
#   workflow/resources/key4hep/run_sim.sh SAMPLE SHARD OUTPUT.root [CONFIG.yaml]
# e.g. run_sim.sh ttbar 0 resources/edm4hep/key4hep/ttbar/0.root
# Pythia8 (k4run pythia.py with pythia/<card>) -> ddsim CLIC_o3_v14 (clic_steer.py of key4hep.clic_config_dir)
# -> k4run CLIC reconstruction, as key4hep.production ran it.
# Add --dry-run via MLPF_DRY_RUN=1 to print the job's commands without running them.
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: run_sim.sh SAMPLE SHARD OUTPUT [CONFIG]" >&2; exit 2; }
exec mlpf key4hep-run --sample "$1" --shard "$2" --output "$3" ${4:+--config "$4"} ${MLPF_DRY_RUN:+--dry-run}
