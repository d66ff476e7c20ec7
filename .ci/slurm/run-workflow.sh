#!/usr/bin/env bash
# CI step: the workflow on a real SLURM. Starts the single-node test cluster (.ci/slurm/cluster.sh), then
#   1. mechanics: .ci/slurm/retry/Snakefile through --profile profiles/ci-slurm; every job must reach sbatch
#      and sacct, a job that fails on its first attempt must be reported, retried and COMPLETED; run again
#      without retries, the same failure must end snakemake with exit 1 and a report naming the rule;
#   2. the tiny workflow (.test/config) through --profile profiles/ci-slurm in a fresh directory; every SLURM
#      job must be COMPLETED in sacct and the final outputs must exist.
#   3. its HPO stage (.test/config/hpo.yaml): two workers as SLURM jobs share one study; one worker process is
#      killed (SIGKILL) in the middle of a trial, its job fails, Snakemake resubmits it and the study finishes
#      with the killed trial retried.
# Prints a summary and stops the cluster on every exit path.
#
# Needs root (the daemons run as slurm/munge/mysql; packages via .ci/slurm/install.sh) and snakemake with
# snakemake-executor-plugin-slurm on PATH (the project's `workflow` extra).
#
# Environment: MLPF_SLURM_DIR (cluster state, default /tmp/mlpf-slurm), MLPF_SLURM_WORKDIR (where the
# workflow runs, default a new directory under /tmp), MLPF_SLURM_TIMEOUT (seconds per snakemake run,
# default 1800), MLPF_SLURM_KEEP=1 (leave the cluster running afterwards, for debugging),
# MLPF_SLURM_SKIP_WORKFLOW=1 (only step 1, about 2 minutes), MLPF_SLURM_SKIP_HPO=1 (steps 1 and 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CLUSTER_DIR=${MLPF_SLURM_DIR:-/tmp/mlpf-slurm}
WORK=${MLPF_SLURM_WORKDIR:-$(mktemp -d /tmp/mlpf-slurm-run.XXXXXX)}
RUN_TIMEOUT=${MLPF_SLURM_TIMEOUT:-1800}
PROFILE=$ROOT/profiles/ci-slurm
t0=$(date +%s)
stamp() { echo "[slurm-ci $(($(date +%s) - t0))s] $*"; }
fail() {
  stamp "FAIL: $*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  if [ "${MLPF_SLURM_KEEP:-0}" = 1 ]; then
    stamp "cluster left running (MLPF_SLURM_KEEP=1); stop it with .ci/slurm/cluster.sh stop $CLUSTER_DIR"
  else
    .ci/slurm/cluster.sh stop "$CLUSTER_DIR" || true
  fi
  stamp "exit $rc; logs and outputs in $WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v snakemake >/dev/null || fail "snakemake not on PATH (install the project with the workflow extra)"
stamp "install SLURM packages (.ci/slurm/install.sh)"
.ci/slurm/install.sh
stamp "start the test cluster"
.ci/slurm/cluster.sh start "$CLUSTER_DIR"

# A snakemake run through the SLURM profile, under `timeout`: a controller that loses track of its jobs
# waits forever and ignores SIGTERM, so it gets SIGINT (on which it also cancels its SLURM jobs), then
# SIGKILL 30 s later. The run's full log is kept in $WORK.
run_snakemake() { # run_snakemake NAME EXPECTED_RC ARGS...
  local name=$1 expected=$2 rc=0
  shift 2
  stamp "snakemake ($name): $*"
  timeout -s INT -k 30 "$RUN_TIMEOUT" snakemake --profile "$PROFILE" "$@" >"$WORK/$name.log" 2>&1 || rc=$?
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || {
    tail -n 40 "$WORK/$name.log" >&2
    fail "$name timed out after ${RUN_TIMEOUT}s"
  }
  [ "$rc" -eq "$expected" ] || {
    tail -n 60 "$WORK/$name.log" >&2
    fail "$name exited $rc, expected $expected (log: $WORK/$name.log)"
  }
  stamp "snakemake ($name) exited $rc as expected"
}

# Allocations (one line per SLURM job) submitted after job ID $1: ID|rule comment|state|exit code.
jobs_after() {
  sacct -X -n -P -o JobID,Comment,State,ExitCode --starttime=now-1day | awk -F'|' -v after="$1" '$1 > after'
}
last_jobid() { sacct -X -n -P -o JobID --starttime=now-1day | sort -n | tail -n 1 | grep . || echo 0; }

# The plugin stores each job's comment (rule_<name>_wildcards_...) at submission; sacct shows it once the
# job has been recorded by slurmdbd, which can lag a few seconds behind the end of the job.
wait_accounted() { # wait_accounted AFTER_ID: all jobs after AFTER_ID in a final state with their comment
  local i
  for ((i = 0; i < 30; i++)); do
    jobs_after "$1" | awk -F'|' '$2 == "" || $3 ~ /PENDING|RUNNING|COMPLETING/ {open = 1} END {exit open}' &&
      return 0
    sleep 1
  done
  stamp "warning: sacct still shows unfinished jobs after 30 s"
}

# ---- 1. mechanics: submission, sacct, a failure retried --------------------------------------------------
mkdir -p "$WORK/mechanics"
before=$(last_jobid)
run_snakemake mechanics 0 --snakefile .ci/slurm/retry/Snakefile --directory "$WORK/mechanics"
wait_accounted "$before"
mech=$(jobs_after "$before")
echo "$mech" | column -t -s'|'
grep -q "Error in rule flaky" "$WORK/mechanics.log" || fail "the failing first attempt of rule flaky was not reported"
grep -q "Trying to restart job" "$WORK/mechanics.log" || fail "rule flaky was not retried"
echo "$mech" | awk -F'|' '$2 == "rule_flaky" && $3 == "FAILED"' | grep -q . ||
  fail "sacct shows no FAILED first attempt of rule flaky"
echo "$mech" | awk -F'|' '$2 == "rule_flaky" && $3 == "COMPLETED"' | grep -q . ||
  fail "sacct shows no COMPLETED retry of rule flaky"
bad=$(echo "$mech" | awk -F'|' '$2 != "rule_flaky" && $3 != "COMPLETED"')
[ -z "$bad" ] || fail "jobs not COMPLETED in the mechanics run: $bad"
grep -q "gpu=0" "$WORK/mechanics/out/train.txt" || fail "profiles/ci-slurm did not override gpu for rule train"
n_mech=$(echo "$mech" | grep -c .)

# Without retries the same failure must end the run with exit 1 and name the rule and its SLURM job.
before=$(last_jobid)
run_snakemake failure 1 --snakefile .ci/slurm/retry/Snakefile --directory "$WORK/mechanics" \
  --retries 0 --forcerun flaky
grep -q "Error in rule flaky" "$WORK/failure.log" || fail "the failure without retries was not reported"
grep -q "SLURM status is: 'FAILED'" "$WORK/failure.log" || fail "the report does not carry the SLURM state"
wait_accounted "$before"
[ "$(jobs_after "$before" | cut -d'|' -f2,3)" = "rule_flaky|FAILED" ] ||
  fail "sacct does not show exactly one FAILED flaky job for the run without retries"
[ ! -e "$WORK/mechanics/out/flaky.txt" ] || fail "a failed job left its output behind"

if [ "${MLPF_SLURM_SKIP_WORKFLOW:-0}" = 1 ]; then
  stamp "summary: mechanics $n_mech SLURM jobs (flaky FAILED once, retried, COMPLETED; without retries" \
    "reported, exit 1); workflow skipped (MLPF_SLURM_SKIP_WORKFLOW=1)"
  exit 0
fi

# ---- 2. the tiny workflow ---------------------------------------------------------------------------------
# A fresh directory with only the CI config, so outputs of a local run in .test are not reused.
mkdir -p "$WORK/workflow"
cp -r .test/config "$WORK/workflow/"
before=$(last_jobid)
run_snakemake workflow 0 --snakefile workflow/Snakefile --directory "$WORK/workflow"
wait_accounted "$before"
wf=$(jobs_after "$before")
echo "$wf" | column -t -s'|'
[ -n "$wf" ] || fail "no SLURM job was submitted for the workflow"
bad=$(echo "$wf" | awk -F'|' '$3 != "COMPLETED"')
[ -z "$bad" ] || fail "workflow jobs not COMPLETED in sacct: $bad"
grep -q "Error in rule" "$WORK/workflow.log" && fail "a workflow job failed (and was retried): see $WORK/workflow.log"
test -d "$WORK/workflow/results/figures/ci" || fail "results/figures/ci missing"
grep -q "model \`ci\`" "$WORK/workflow/results/plots/index.md" || fail "results/plots is not the view of ci"
ls "$WORK"/workflow/results/metrics/*/*.json >/dev/null || fail "no metrics written"
n_wf=$(echo "$wf" | grep -c .)
rules=$(echo "$wf" | awk -F'|' '{sub(/^rule_/, "", $2); sub(/_wildcards.*/, "", $2); n[$2]++} END {for (r in n) printf "%s=%d ", r, n[r]}')

summary="mechanics $n_mech SLURM jobs (flaky FAILED once, retried, COMPLETED; without retries reported, exit 1);"
summary="$summary workflow $n_wf SLURM jobs, all COMPLETED in sacct ($rules)"
if [ "${MLPF_SLURM_SKIP_HPO:-0}" = 1 ]; then
  stamp "summary: $summary; HPO skipped (MLPF_SLURM_SKIP_HPO=1)"
  exit 0
fi

# ---- 3. the HPO stage: two workers as SLURM jobs sharing one study, one of them killed mid-trial --------------
# In the workflow directory of step 2, whose datasets and main model it reuses. The kill is what an
# out-of-memory kill or a lost node does: no clean-up. The job fails, the profile's retries: 1 resubmits it,
# and the new attempt (the same worker) fails its interrupted trial and runs it again.
before=$(last_jobid)
python .ci/slurm/kill_hpo_worker.py "$WORK/workflow" ci --timeout "$RUN_TIMEOUT" >"$WORK/kill.log" 2>&1 &
killer=$!
run_snakemake hpo 0 --snakefile workflow/Snakefile --directory "$WORK/workflow" results/hpo \
  --configfile "$WORK/workflow/config/hpo.yaml"
wait "$killer" || fail "no HPO worker was killed mid-trial: $(cat "$WORK/kill.log")"
cat "$WORK/kill.log"
wait_accounted "$before"
hpo=$(jobs_after "$before")
echo "$hpo" | column -t -s'|'
echo "$hpo" | awk -F'|' '$2 ~ /^rule_hpo_worker/ && $3 != "COMPLETED"' | grep -q . ||
  fail "sacct shows no failed attempt of the killed hpo_worker job"
n_hpo=$(echo "$hpo" | awk -F'|' '$2 ~ /^rule_hpo_worker/ && $3 == "COMPLETED"' | grep -c .)
[ "$n_hpo" -eq 2 ] || fail "expected 2 COMPLETED hpo_worker jobs (one a resubmission), got $n_hpo"
bad=$(echo "$hpo" | awk -F'|' '$2 !~ /^rule_hpo_worker/ && $3 != "COMPLETED"')
[ -z "$bad" ] || fail "HPO jobs not COMPLETED in sacct: $bad"
python .ci/check_hpo.py "$WORK/workflow/results/hpo" --workers 2 --killed || fail "HPO results (see above)"

stamp "summary: $summary; HPO $(echo "$hpo" | grep -c .) SLURM jobs, 2 workers sharing one study," \
  "one killed mid-trial, resubmitted, its trial retried ($(cat "$WORK/kill.log"))"
