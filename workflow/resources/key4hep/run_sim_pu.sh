#!/usr/bin/env bash
# One shard of ttbar with Poisson(10) gamma gamma -> hadrons overlay (sample ttbar_pu10), outside Snakemake:
#   workflow/resources/key4hep/run_sim_pu.sh SHARD OUTPUT.root [CONFIG.yaml]
# Signal pythia/p8_ee_tt_ecm380.cmd + pile-up pythia/p8_ee_gg_ecm380.cmd merged by pileup_overlay.cc,
# then ddsim and the CLIC reconstruction as for the other samples.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: run_sim_pu.sh SHARD OUTPUT [CONFIG]" >&2; exit 2; }
exec "$(dirname "${BASH_SOURCE[0]}")/run_sim.sh" ttbar_pu10 "$@"
