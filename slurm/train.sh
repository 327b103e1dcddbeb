#!/bin/bash
# Train on SLURM:   sbatch [sbatch options] slurm/train.sh exp=NAME [hydra overrides...]
#
#   sbatch slurm/train.sh exp=jdm_cogvideox                      # one 8-GPU node (defaults below)
#   sbatch --nodes=4 slurm/train.sh exp=jdm_cogvideox strategy=deepspeed_zero2
#   sbatch --gpus-per-node=0 --ntasks-per-node=2 slurm/train.sh exp=ft_cogvideox preset=smoke
#
# Every #SBATCH default below can be overridden on the sbatch command line. Everything after the
# script name goes to `vidgen train` as Hydra overrides. trainer.num_nodes / trainer.devices /
# trainer.accelerator are derived from the allocation unless given. The run folder is
# <run.root>/<exp>/slurm-<jobid> (array jobs: slurm-<arrayjobid>_<taskid>), so a requeued job
# resumes its own run. See docs/slurm.md.
#
# Site setup without editing this file: VIDGEN_ENV=/path/to/activate-script (sourced), or
# slurm/env.sh (sourced when present; see slurm/env.sh.example), else the repo's .venv.
#
#SBATCH --job-name=vidgen
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=12
#SBATCH --mem=0
#SBATCH --time=48:00:00
#SBATCH --signal=SIGUSR1@90
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

# ---- where the repository is (sbatch runs a copy of this script from the spool folder)
if [[ -z "${VIDGEN_REPO:-}" ]]; then
    script="${BASH_SOURCE[0]}"
    if [[ -n "${SLURM_JOB_ID:-}" ]]; then
        # the submitted script's path, e.g. /home/me/vidgen/slurm/train.sh
        cmd=$(scontrol show job -o "${SLURM_JOB_ID}" 2>/dev/null | tr ' ' '\n' | sed -n 's/^Command=//p' | head -n 1 || true)
        [[ -n "$cmd" && -f "$cmd" ]] && script="$cmd"
    fi
    VIDGEN_REPO=$(cd "$(dirname "$script")/.." && pwd)
    [[ -f "$VIDGEN_REPO/pyproject.toml" ]] || VIDGEN_REPO="${SLURM_SUBMIT_DIR:-$PWD}"
fi
if [[ ! -f "$VIDGEN_REPO/slurm/activate_env.sh" ]]; then
    echo "vidgen: cannot find the vidgen repository (tried $VIDGEN_REPO); set VIDGEN_REPO=/path/to/vidgen" >&2
    exit 2
fi
export VIDGEN_REPO
cd "$VIDGEN_REPO"

# ---- environment: VIDGEN_ENV, else slurm/env.sh, else .venv  (activation scripts may read unset vars)
# shellcheck source=slurm/activate_env.sh
source "$VIDGEN_REPO/slurm/activate_env.sh"
PYTHON=${VIDGEN_PYTHON:-python}

# ---- NCCL and threading defaults (the site's env.sh may set its own first)
export NCCL_ASYNC_ERROR_HANDLING=${NCCL_ASYNC_ERROR_HANDLING:-1}   # fail fast instead of hanging
export TORCH_NCCL_ASYNC_ERROR_HANDLING=${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
export TORCH_NCCL_BLOCKING_WAIT=${TORCH_NCCL_BLOCKING_WAIT:-0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
export PYTHONUNBUFFERED=1

# ---- the allocation -> trainer.num_nodes / trainer.devices / trainer.accelerator
nodes=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
tasks_per_node=${SLURM_NTASKS_PER_NODE:-}
tasks_per_node=${tasks_per_node%%(*}      # "8(x4)" -> "8"
if [[ -z "$tasks_per_node" ]]; then
    tasks_per_node=$(( ${SLURM_NTASKS:-1} / nodes ))
fi
gpus=${SLURM_GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-0}}
gpus=${gpus##*:}                          # "a100:8" -> "8"
gpus=${gpus%%(*}
if [[ "${gpus:-0}" =~ ^[0-9]+$ ]] && (( gpus > 0 )); then accelerator=gpu; else accelerator=cpu; fi

derived=()
has_override() { local key=$1; shift; local a; for a in "$@"; do [[ "${a#+}" == "$key="* ]] && return 0; done; return 1; }
has_override trainer.num_nodes "$@" || derived+=("trainer.num_nodes=$nodes")
has_override trainer.devices "$@" || derived+=("trainer.devices=$tasks_per_node")
has_override trainer.accelerator "$@" || derived+=("trainer.accelerator=$accelerator")

echo "vidgen: job ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+ (array task $SLURM_ARRAY_TASK_ID)} restart ${SLURM_RESTART_COUNT:-0}" \
     "on ${SLURM_JOB_NODELIST:-?}: $nodes node(s) x $tasks_per_node task(s), accelerator=$accelerator"
echo "vidgen: repo $VIDGEN_REPO, python $(command -v "$PYTHON")"

# One process per task; Lightning reads ranks from SLURM (SLURMEnvironment). `vidgen train` handles
# SIGUSR1 (save, requeue) and SIGTERM (save, exit 143) from its first instant (vidgen.preemption).
# --kill-on-bad-exit: one failed rank ends the step instead of leaving the others hanging.
# VIDGEN_SRUN_ARGS: extra srun options, e.g. "--cpu-bind=none".
read -r -a srun_extra <<< "${VIDGEN_SRUN_ARGS:-}"
exec srun --kill-on-bad-exit=1 "${srun_extra[@]}" \
    "$PYTHON" -m vidgen.cli train "${derived[@]}" "$@"
