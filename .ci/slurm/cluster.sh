#!/usr/bin/env bash
# A real single-node SLURM on 127.0.0.1 for workflow tests: munged, MariaDB, slurmdbd, slurmctld, slurmd.
#
#   .ci/slurm/cluster.sh start  [DIR]   fresh cluster (config, keys, state, database all under DIR)
#   .ci/slurm/cluster.sh stop   [DIR]   stop this cluster's daemons (slurmd, slurmctld, slurmdbd, mariadbd, munged)
#   .ci/slurm/cluster.sh status [DIR]   show which of this cluster's daemons run, and the node state
#
# DIR defaults to $MLPF_SLURM_DIR or /tmp/mlpf-slurm. Needs root and the Debian packages slurm-wlm, munge,
# slurmdbd and mariadb-server (.ci/slurm/install.sh). Nothing outside DIR is touched except the symlink
# /etc/slurm/slurm.conf -> DIR/etc/slurm.conf: SLURM clients (sbatch, squeue, sacct) and the jobs themselves
# only find the configuration there, because the SLURM executor plugin strips SLURM_CONF before `srun`.
#
# Every daemon is started here and stopped here by its own PID file, never by name, so other SLURM or
# MariaDB instances on the machine are left alone. `start` on a running cluster and `stop` on a stopped one
# do nothing. Each `start` wipes the state directory and the database together (keeping one but not the
# other restarts job IDs at 1 beside old accounting records).
set -euo pipefail

cmd=${1:-}
DIR=${2:-${MLPF_SLURM_DIR:-/tmp/mlpf-slurm}}
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac

# Ports (override to run beside another cluster). MariaDB is moved off 3306 so a system database is untouched.
CTLD_PORT=${MLPF_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${MLPF_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${MLPF_SLURM_DBD_PORT:-6819}
DB_PORT=${MLPF_SLURM_DB_PORT:-33061}
CLUSTER=mlpfci
PARTITION=debug
SYSTEM_CONF=/etc/slurm/slurm.conf

ETC=$DIR/etc
RUN=$DIR/run
LOG=$DIR/log
STATE=$DIR/state
MUNGE_DIR=$DIR/munge
DB_DIR=$DIR/mysql
# munged listens on the default socket: slurmctld's connection to slurmdbd ignores AuthInfo=socket= (22.05)
# and fails with "Failed to access /run/munge/munge.socket.2", so a private socket path does not work.
MUNGE_SOCKET=/run/munge/munge.socket.2

# Stop order: compute node first, database last, munge (which all of them authenticate through) at the end.
DAEMONS=(slurmd slurmctld slurmdbd mariadbd munged)

log() { echo "[slurm-ci] $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

pidfile() {
  case "$1" in
    munged) echo "$MUNGE_DIR/munged.pid" ;;
    mariadbd) echo "$RUN/mysql/mariadbd.pid" ;;
    *) echo "$RUN/$1.pid" ;;
  esac
}

# PID of a daemon of this cluster if it runs: the PID file exists, the process lives and is that program
# (guards against a recycled PID).
running_pid() {
  local f pid
  f=$(pidfile "$1")
  [ -s "$f" ] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
  echo "$pid"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND... (each probe capped at 5 s: SLURM clients can block)
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  while ((SECONDS < deadline)); do
    if timeout -k 1 5 "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what not ready after ${limit}s (logs in $LOG)"
}

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

stop_daemon() {
  local name=$1 pid i
  pid=$(running_pid "$name") || {
    rm -f "$(pidfile "$name")"
    return 0
  }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do # 20 s, then SIGKILL
    [ -d "/proc/$pid" ] || break
    sleep 0.2
  done
  if [ -d "/proc/$pid" ]; then
    log "$name ($pid) ignored SIGTERM; killing"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$name")"
  log "stopped $name ($pid)"
}

do_stop() {
  local d
  for d in "${DAEMONS[@]}"; do stop_daemon "$d"; done
  # Remove the system-wide pointer only if it is ours.
  if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$ETC/slurm.conf" ]; then
    rm -f "$SYSTEM_CONF"
  fi
}

do_status() {
  local d pid rc=0
  for d in "${DAEMONS[@]}"; do
    if pid=$(running_pid "$d"); then echo "$d: running ($pid)"; else
      echo "$d: stopped"
      rc=1
    fi
  done
  if [ "$rc" -eq 0 ]; then sinfo -N -o "%N %T %c %m"; fi
  return "$rc"
}

all_running() {
  local d
  for d in "${DAEMONS[@]}"; do running_pid "$d" >/dev/null || return 1; done
}

write_configs() {
  # Memory the node offers: three quarters of what is free now, so slurmd never finds less than configured
  # (it drains a node whose RealMemory exceeds the machine's).
  local avail_kb mem_mb cpus db_pass
  avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
  mem_mb=$((avail_kb * 3 / 4 / 1024))
  cpus=$(nproc)
  db_pass=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  echo "$db_pass" >"$ETC/db_pass"
  chmod 600 "$ETC/db_pass"

  cat >"$ETC/slurm.conf" <<EOF
# Single-node test cluster written by .ci/slurm/cluster.sh; everything lives under $DIR.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
# No cgroups in containers without systemd: track processes by parent PID, no task confinement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# Schedule cores and memory, so two 1-core jobs share the node and --mem is honoured.
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default a job that asks no --mem takes the whole node's memory and runs alone.
DefMemPerCPU=500
# Keep finished jobs visible to squeue for 5 minutes (>= 3x the status-check delay used in tests).
MinJobAge=300
ReturnToService=2
# sacct needs accounting through slurmdbd (jobcomp/filetxt does not feed sacct).
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
# Store the comment the executor plugin gives each job (rule and wildcards), so sacct can name the rule.
AccountingStoreFlags=job_comment
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

  cat >"$ETC/slurmdbd.conf" <<EOF
# Accounting daemon of the test cluster (.ci/slurm/cluster.sh).
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=slurm
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
EOF
  # slurmdbd refuses a configuration that others can read (it holds the database password).
  chown slurm:slurm "$ETC/slurmdbd.conf"
  chmod 600 "$ETC/slurmdbd.conf"
  chmod 644 "$ETC/slurm.conf"
}

start_munge() {
  [ ! -S "$MUNGE_SOCKET" ] || ! munge -n --socket="$MUNGE_SOCKET" >/dev/null 2>&1 ||
    die "another munged serves $MUNGE_SOCKET; stop it first"
  mkdir -p "$(dirname "$MUNGE_SOCKET")"
  chown munge:munge "$(dirname "$MUNGE_SOCKET")"
  chmod 755 "$(dirname "$MUNGE_SOCKET")"
  mungekey --create --keyfile="$MUNGE_DIR/munge.key" --force >/dev/null
  chown munge:munge "$MUNGE_DIR/munge.key"
  chmod 400 "$MUNGE_DIR/munge.key"
  runuser -u munge -- /usr/sbin/munged --key-file="$MUNGE_DIR/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed"
  wait_for 10 munged munge -n --socket="$MUNGE_SOCKET"
}

start_mariadb() {
  mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" --auth-root-authentication-method=socket \
    --skip-test-db >"$LOG/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $LOG/mariadb-install.log)"
  # mariadbd stays in the foreground; setsid detaches it from this shell and CI's process group.
  setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB_DIR" --socket="$RUN/mysql/mariadbd.sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$RUN/mysql/mariadbd.pid" --log-error="$LOG/mariadb.log" \
    --innodb-lock-wait-timeout=900 --innodb-buffer-pool-size=64M \
    </dev/null >/dev/null 2>&1 &
  wait_for 30 mariadbd mariadb --no-defaults --socket="$RUN/mysql/mariadbd.sock" -u root -e "SELECT 1"
  local pass
  pass=$(cat "$ETC/db_pass")
  mariadb --no-defaults --socket="$RUN/mysql/mariadbd.sock" -u root <<EOF
CREATE USER 'slurm'@'localhost' IDENTIFIED BY '$pass';
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
}

do_start() {
  [ "$(id -u)" -eq 0 ] || die "needs root (daemons run as users slurm, munge and mysql)"
  local b
  for b in slurmctld slurmd slurmdbd munged mariadbd mungekey sinfo sacctmgr; do
    command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "$b not installed; run .ci/slurm/install.sh"
  done
  if all_running; then
    log "already running in $DIR"
    return 0
  fi
  do_stop # a half-started cluster is restarted from scratch

  if [ -e "$SYSTEM_CONF" ] || [ -L "$SYSTEM_CONF" ]; then
    if [ -L "$SYSTEM_CONF" ] && { [ ! -e "$SYSTEM_CONF" ] || [ "$(readlink "$SYSTEM_CONF")" = "$ETC/slurm.conf" ]; }; then
      rm -f "$SYSTEM_CONF" # a dangling link left by a killed test cluster
    else
      die "$SYSTEM_CONF exists and belongs to another SLURM; not replacing it"
    fi
  fi
  local p
  for p in "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT" "$DB_PORT"; do
    port_free "$p" || die "port $p is in use (set MLPF_SLURM_*_PORT)"
  done

  local t0=$SECONDS
  rm -rf "$STATE" "$DB_DIR" "$RUN" "$MUNGE_DIR" "$ETC" "$LOG"
  mkdir -p "$ETC" "$RUN/mysql" "$LOG" "$STATE/ctld" "$STATE/slurmd" "$MUNGE_DIR" "$DB_DIR"
  chmod 755 "$DIR" "$ETC" "$RUN" "$LOG" "$MUNGE_DIR"
  # Each daemon writes only where its own user may: munged refuses directories others can write to.
  touch "$LOG/slurmctld.log" "$LOG/slurmdbd.log" "$LOG/mariadb.log"
  chown slurm:slurm "$STATE/ctld" "$LOG/slurmctld.log" "$LOG/slurmdbd.log"
  chown munge:munge "$MUNGE_DIR"
  chown mysql:mysql "$DB_DIR" "$RUN/mysql" "$LOG/mariadb.log"
  write_configs
  mkdir -p "$(dirname "$SYSTEM_CONF")"
  ln -s "$ETC/slurm.conf" "$SYSTEM_CONF"

  start_munge
  start_mariadb
  # slurmdbd before slurmctld, so the controller registers the cluster (and root's account) at once.
  # slurmdbd has no -f: it reads slurmdbd.conf next to $SLURM_CONF.
  SLURM_CONF="$ETC/slurm.conf" /usr/sbin/slurmdbd
  wait_for 30 slurmdbd bash -c "ss -Hltn 'sport = :$DBD_PORT' | grep -q ."
  /usr/sbin/slurmctld -f "$ETC/slurm.conf"
  /usr/sbin/slurmd -f "$ETC/slurm.conf" -N localhost
  wait_for 30 "node localhost idle" bash -c "sinfo -h -N -n localhost -o %T | grep -qx idle"
  # sacct and the plugin's account check need the association root/root in the database.
  wait_for 30 "accounting" bash -c "sacctmgr -nP show assoc cluster=$CLUSTER user=root format=account | grep -qx root"
  log "cluster $CLUSTER up in $((SECONDS - t0))s: $(sinfo -h -N -o '%N %T cpus=%c mem=%mMB') (state in $DIR)"
}

case "$cmd" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *)
    echo "usage: $0 start|stop|status [DIR]" >&2
    exit 2
    ;;
esac
