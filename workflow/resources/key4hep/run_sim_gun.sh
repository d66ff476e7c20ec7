#!/usr/bin/env bash
# One shard of a single-particle gun sample (ddsim gun, momentum uniform in 1-100 GeV, isotropic), outside
# Snakemake:
#   workflow/resources/key4hep/run_sim_gun.sh PARTICLE SHARD OUTPUT.root [CONFIG.yaml]
# PARTICLE is one of e, mu, pi, pi0, kl, n, gamma (samples gun_<particle>); e, mu and pi shoot the negative
# particle on even shards and the positive one on odd shards.
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: run_sim_gun.sh PARTICLE SHARD OUTPUT [CONFIG]" >&2; exit 2; }
particle="$1"
shift
exec "$(dirname "${BASH_SOURCE[0]}")/run_sim.sh" "gun_${particle}" "$@"
