#!/bin/bash
# Evaluate on SLURM:   sbatch [sbatch options] slurm/eval.sh RUN_DIR [suite=NAME] [eval.KEY=V ...] [overrides...]
#
#   sbatch slurm/eval.sh outputs/jdm_cogvideox/slurm-1234 suite=vbench eval.prompts=/data/VBench_full_info.json
#   sbatch --ntasks=16 slurm/eval.sh outputs/base_cogvideox/run suite=t2v-compbench eval.prompts=/data/t2vc/prompts
#
# Step 1: every task (srun, SLURM_PROCID of SLURM_NTASKS) generates its shard of the suite's prompts
#         (eval.stage=generate); videos already on disk are skipped, so a requeued job only finishes the rest.
# Step 2: one task computes the metrics into RUN_DIR/eval/<suite>/metrics.json (generates nothing).
# See docs/evaluation.md. Environment as slurm/train.sh: VIDGEN_ENV, slurm/env.sh, else .venv.
#
#SBATCH --job-name=vidgen-eval
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=12
#SBATCH --mem=0
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: sbatch slurm/eval.sh RUN_DIR [suite=NAME] [eval.KEY=V ...] [overrides...]" >&2
    exit 2
fi
VIDGEN_REPO=${VIDGEN_REPO:-${SLURM_SUBMIT_DIR:-$PWD}}
if [[ ! -f "$VIDGEN_REPO/slurm/activate_env.sh" ]]; then
    echo "vidgen: cannot find the vidgen repository (tried $VIDGEN_REPO); set VIDGEN_REPO=/path/to/vidgen" >&2
    exit 2
fi
export VIDGEN_REPO
cd "$VIDGEN_REPO"
# shellcheck source=slurm/activate_env.sh
source "$VIDGEN_REPO/slurm/activate_env.sh"
PYTHON=${VIDGEN_PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
export PYTHONUNBUFFERED=1

echo "vidgen eval: job ${SLURM_JOB_ID:-?} on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-1} task(s), $*"
# 1. each task its shard (CUDA_VISIBLE_DEVICES per task: one GPU each)
srun --kill-on-bad-exit=1 bash -c 'export CUDA_VISIBLE_DEVICES=${SLURM_LOCALID:-0}; exec "$0" -m vidgen.cli eval "$@" eval.stage=generate' \
    "$PYTHON" "$@"
# 2. one task scores the complete suite
SLURM_NTASKS=1 SLURM_PROCID=0 "$PYTHON" -m vidgen.cli eval "$@"
