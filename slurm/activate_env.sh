# Sourced by slurm/train.sh and slurm/sweep_agent.sh: the site's environment, without editing them.
# VIDGEN_ENV (a file to source), else slurm/env.sh, else the repo's .venv. Activation scripts may
# read unset variables, hence set +u around it.
set +u
if [[ -n "${VIDGEN_ENV:-}" ]]; then
    # shellcheck disable=SC1090
    source "$VIDGEN_ENV"
elif [[ -f "$VIDGEN_REPO/slurm/env.sh" ]]; then
    # shellcheck disable=SC1091
    source "$VIDGEN_REPO/slurm/env.sh"
elif [[ -f "$VIDGEN_REPO/.venv/bin/activate" ]]; then
    # shellcheck disable=SC1091
    source "$VIDGEN_REPO/.venv/bin/activate"
fi
set -u
