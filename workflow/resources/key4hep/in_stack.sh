#!/usr/bin/env bash
# Run one Key4HEP job script inside the stack, in a scratch directory, and place its reconstructed events
# atomically: the output appears only complete (copied to a hidden temporary name, then renamed).
#
#   in_stack.sh --output OUT.root --script 'commands...' [--setup SETUP.sh [--release R]]
#               [--image IMAGE.sif [--runtime apptainer|singularity]] [--scratch DIR]
#
# The script's lines run with `set -euo pipefail` in the scratch directory; $MLPF_KEY4HEP_RESOURCES points to
# this directory (cards, steering, generator options). The last command must leave reco.edm4hep.root.
set -euo pipefail

usage() {
  echo "usage: in_stack.sh --output OUT --script TEXT [--setup FILE [--release R]] [--image SIF [--runtime R]] [--scratch DIR]" >&2
  exit 2
}

output="" script="" setup="" release="" image="" runtime="apptainer" scratch="${TMPDIR:-/tmp}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --output) output="$2"; shift 2 ;;
    --script) script="$2"; shift 2 ;;
    --setup) setup="$2"; shift 2 ;;
    --release) release="$2"; shift 2 ;;
    --image) image="$2"; shift 2 ;;
    --runtime) runtime="$2"; shift 2 ;;
    --scratch) scratch="$2"; shift 2 ;;
    *) usage ;;
  esac
done
[[ -n "$output" && -n "$script" ]] || usage
if [[ -z "$image" && ! -f "$setup" ]]; then
  echo "in_stack.sh: no Key4HEP stack: setup script '${setup}' not found and no image given" >&2
  exit 2
fi

MLPF_KEY4HEP_RESOURCES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export MLPF_KEY4HEP_RESOURCES
export APPTAINERENV_MLPF_KEY4HEP_RESOURCES="$MLPF_KEY4HEP_RESOURCES"
export SINGULARITYENV_MLPF_KEY4HEP_RESOURCES="$MLPF_KEY4HEP_RESOURCES"

mkdir -p "$scratch"
workdir="$(mktemp -d "${scratch}/mlpf-key4hep.XXXXXX")"
trap 'rm -rf "$workdir"' EXIT
{
  echo "set -euo pipefail"
  echo "set -x"
  printf '%s\n' "$script"
} > "$workdir/job.sh"

# The Key4HEP setup scripts read unset variables, so they are sourced without `set -u`.
source_line="true"
if [[ -n "$setup" ]]; then
  source_line="source $(printf '%q' "$setup")${release:+ -r $(printf '%q' "$release")}"
fi
inner="set +u; ${source_line}; cd $(printf '%q' "$workdir") && bash job.sh"

echo "in_stack.sh: job directory $workdir"
if [[ -n "$image" ]]; then
  "$runtime" exec --bind "$workdir" --bind "$MLPF_KEY4HEP_RESOURCES" "$image" bash -c "$inner"
else
  bash -c "$inner"
fi

result="$workdir/reco.edm4hep.root"
if [[ ! -s "$result" ]]; then
  echo "in_stack.sh: the job finished but left no reco.edm4hep.root" >&2
  exit 1
fi
mkdir -p "$(dirname "$output")"
tmp="$(dirname "$output")/.$(basename "$output").tmp"
cp "$result" "$tmp"
mv -f "$tmp" "$output"
echo "in_stack.sh: wrote $output"
