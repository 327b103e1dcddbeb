#!/bin/bash
# Run a sweep on SLURM: a job array whose tasks each run ONE sweep run.
#
#   slurm/sweep_agent.sh [sbatch options] SWEEP_ID [N]             # N tasks (default 1), each `wandb agent --count 1`
#   slurm/sweep_agent.sh [sbatch options] --local SWEEP_FILE [N] [-- OVERRIDES]   # the project's runner, no W&B
#
#   slurm/sweep_agent.sh my-team/vidgen/abc123 8                   # 8 runs, one 8-GPU node each
#   slurm/sweep_agent.sh --gpus-per-node=1 --ntasks-per-node=1 my-team/vidgen/abc123 16
#
# sbatch options go before the sweep, in --option=value form. Run this script with bash: it submits
# itself as the array (`sbatch slurm/sweep_agent.sh ...` also works, as one task, from any folder).
# `-- OVERRIDES` (as in `vidgen sweep run SWEEP --local -- OVERRIDES`) add Hydra overrides to every
# row of a --local sweep (= VIDGEN_LOCAL_SWEEP_ARGS). Each task's run folder is
# ${VIDGEN_SWEEP_ROOT:-outputs/sweeps}/<sweep>/slurm-<arrayjob>_<task>; it records the command the
# agent gave it (agent_command.json), so a requeued task resumes its own run. A run that needs
# several GPUs/nodes is launched with srun (slurm/train.sh) on all tasks of the allocation.
# Environment: as slurm/train.sh (VIDGEN_ENV, slurm/env.sh, or .venv). See docs/slurm.md.
#
#SBATCH --job-name=vidgen-sweep
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=12
#SBATCH --mem=0
#SBATCH --time=48:00:00
#SBATCH --signal=SIGUSR1@90
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%A_%a.out
set -euo pipefail

usage() {
    echo "usage: $0 [sbatch options] SWEEP_ID [N]  |  $0 [sbatch options] --local SWEEP_FILE [N] [-- OVERRIDES...]" >&2
    exit 2
}

# ---- arguments (the same whether run with bash, or submitted with sbatch directly)
sbatch_opts=(); mode=(); positional=(); overrides=()
while (( $# )); do
    case "$1" in
        --local) mode=(--local) ;;
        -h|--help) usage ;;
        --) shift; overrides=("$@"); break ;;   # `vidgen sweep run SWEEP --local -- OVERRIDES` syntax
        -*) if (( ${#positional[@]} )); then usage; fi; sbatch_opts+=("$1") ;;
        *) positional+=("$1") ;;
    esac
    shift
done
(( ${#positional[@]} >= 1 && ${#positional[@]} <= 2 )) || usage
sweep=${positional[0]}
n=${positional[1]:-1}
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive integer, got '$n'" >&2; exit 2; }
if (( ${#overrides[@]} )); then
    if (( ! ${#mode[@]} )); then
        echo "overrides after -- apply to --local sweeps; a W&B sweep's runs take theirs from the sweep file" \
             "(its command or parameters)" >&2
        exit 2
    fi
    # the local runner's extra overrides (vidgen.slurm_agent reads them in every task)
    VIDGEN_LOCAL_SWEEP_ARGS="${VIDGEN_LOCAL_SWEEP_ARGS:+$VIDGEN_LOCAL_SWEEP_ARGS }$(printf '%q ' "${overrides[@]}")"
    export VIDGEN_LOCAL_SWEEP_ARGS
fi
if (( ${#mode[@]} )); then   # the task runs from the repo root: make the sweep file absolute
    base=${SLURM_SUBMIT_DIR:-$PWD}
    [[ -n "${SLURM_JOB_ID:-}" ]] || base=$PWD
    [[ "$sweep" == /* ]] || sweep="$base/$sweep"
    [[ -f "$sweep" ]] || { echo "no sweep file $sweep" >&2; exit 2; }
fi

if [[ -z "${SLURM_JOB_ID:-}" ]]; then
    # ---- submit: sbatch this script as an array of N tasks
    VIDGEN_REPO=${VIDGEN_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
    export VIDGEN_REPO
    exec sbatch --array="0-$((n - 1))" "${sbatch_opts[@]}" "$VIDGEN_REPO/slurm/sweep_agent.sh" "${mode[@]}" "$sweep"
fi

# ---- inside a task: where the repository is (sbatch runs a copy of this script from the spool folder)
if [[ -z "${VIDGEN_REPO:-}" ]]; then
    script="${BASH_SOURCE[0]}"
    cmd=$(scontrol show job -o "${SLURM_JOB_ID}" 2>/dev/null | tr ' ' '\n' | sed -n 's/^Command=//p' | head -n 1 || true)
    [[ -n "$cmd" && -f "$cmd" ]] && script="$cmd"
    VIDGEN_REPO=$(cd "$(dirname "$script")/.." && pwd)
    [[ -f "$VIDGEN_REPO/pyproject.toml" ]] || VIDGEN_REPO="${SLURM_SUBMIT_DIR:-$PWD}"
fi
if [[ ! -f "$VIDGEN_REPO/slurm/activate_env.sh" ]]; then
    echo "vidgen-sweep: cannot find the vidgen repository (tried $VIDGEN_REPO); set VIDGEN_REPO=/path/to/vidgen" >&2
    exit 2
fi
if [[ -z "${SLURM_ARRAY_TASK_ID:-}" ]] && (( n > 1 )); then
    echo "vidgen-sweep: submitted with sbatch, not as an array: this job runs task 0 only;" \
         "for $n tasks run \`bash slurm/sweep_agent.sh ... $n\`" >&2
fi
export VIDGEN_REPO
cd "$VIDGEN_REPO"
# shellcheck source=slurm/activate_env.sh
source "$VIDGEN_REPO/slurm/activate_env.sh"
export VIDGEN_TRAIN_SH="$VIDGEN_REPO/slurm/train.sh"
export PYTHONUNBUFFERED=1
echo "vidgen-sweep: job ${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID} task ${SLURM_ARRAY_TASK_ID:-0} restart ${SLURM_RESTART_COUNT:-0}:" \
     "${mode[*]} $sweep${VIDGEN_LOCAL_SWEEP_ARGS:+ (overrides: $VIDGEN_LOCAL_SWEEP_ARGS)}"
exec "${VIDGEN_PYTHON:-python}" -m vidgen.slurm_agent task "${mode[@]}" "$sweep"
