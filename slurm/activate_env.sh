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
# `wandb agent` runs every sweep command with the literal `python` on PATH, and slurm/train.sh runs
# ${VIDGEN_PYTHON:-python}: stop here, naming the fix, if that Python cannot import vidgen.
_vidgen_py=${VIDGEN_PYTHON:-python}
if ! "$_vidgen_py" -c "import vidgen" >/dev/null 2>&1; then
    echo "vidgen: '$_vidgen_py' ($(command -v "$_vidgen_py" || echo "not on PATH")) cannot import vidgen:" \
         "activate the project's environment with VIDGEN_ENV=/path/to/activate-script, slurm/env.sh," \
         "or a .venv in $VIDGEN_REPO (sweep commands run \`python -m ...\` with the python on PATH)" >&2
    exit 2
fi
unset _vidgen_py
