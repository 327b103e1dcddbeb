#!/usr/bin/env bash
# Everything that needs a GPU, in one command (< 8 min on one H200): see run_all.py.
#   bash benchmarks/gpu/run_all.sh                  # on a CUDA machine
#   bash benchmarks/gpu/run_all.sh --dry-run        # = --device cpu --tiny: every part, tiny, on CPU
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${VIDGEN_PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python="$(command -v python3 || command -v python)"; fi
fi
if ! "$python" -c "import torch" 2>/dev/null; then
  echo "error: $python cannot import torch: activate the project's environment or set VIDGEN_PYTHON=/path/to/python" >&2
  exit 2
fi
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
cd "$root"
exec "$python" "$root/benchmarks/gpu/run_all.py" "$@"
