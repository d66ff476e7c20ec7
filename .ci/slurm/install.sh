#!/usr/bin/env bash
# Debian packages of the local SLURM test cluster (.ci/slurm/cluster.sh): Slurm 22.05 controller + compute
# daemon, munge authentication, and slurmdbd with MariaDB (sacct reads job states only through slurmdbd);
# iproute2 (ss) and bsdextrautils (column) for the scripts.
# About 30 s. Nothing is started on install (no systemd); cluster.sh starts and stops every daemon itself.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || {
  echo "install.sh: needs root (apt-get)" >&2
  exit 1
}
if command -v sbatch >/dev/null && [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmdbd ] &&
  [ -x /usr/sbin/munged ] && [ -x /usr/sbin/mariadbd ] && command -v mariadb >/dev/null &&
  command -v ss >/dev/null && command -v column >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq slurm-wlm munge slurmdbd mariadb-server mariadb-client iproute2 bsdextrautils >/dev/null
