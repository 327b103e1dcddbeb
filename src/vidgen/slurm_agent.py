"""One sweep run per SLURM array task, requeue-safe (driven by slurm/sweep_agent.sh).

    python -m vidgen.slurm_agent task SWEEP_ID            # W&B: `wandb agent --count 1 SWEEP_ID`
    python -m vidgen.slurm_agent task --local SWEEP_FILE  # row $SLURM_ARRAY_TASK_ID of the sweep file, as
                                                          # `vidgen sweep run SWEEP_FILE --local` plans it
    python -m vidgen.slurm_agent launch -- OVERRIDES...   # (internal) the run command the agent starts

How a task gets its run, once:

1. The task folder is `<VIDGEN_SWEEP_ROOT or outputs/sweeps>/<sweep>/slurm-<arrayjob>_<task>`;
   it is also the run folder (`run.dir=`) of the task's training run.
2. First start: the agent runs with a shim folder first on PATH, so the command it launches for its
   run (`vidgen train ...`, or `python -m vidgen.train ...`) reaches `launch` instead. `launch`
   records the overrides and the agent's W&B variables (WANDB_RUN_ID, ...) in
   `<task folder>/agent_command.json`, fixes the run's W&B id to the agent's (`wandb_id`), and
   starts the run with slurm/train.sh, i.e. `srun` on every task of the allocation: a run that
   needs several GPUs or nodes gets its command from the agent once, on the batch host only.
3. Requeued (preemption, `scontrol requeue`, node failure): `agent_command.json` exists, so the
   task re-runs that command in the same folder (resuming from its last checkpoint, same W&B run)
   and never asks the sweep for a new configuration.

W&B overrides may come as `--key=value` (`${args}`) or `key=value` (`${args_no_hyphens}`); both
are passed to Hydra as `key=value`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

RECORD_FILE = "agent_command.json"
SHIM_DIR = ".agent_bin"
TASK_DIR_ENV = "VIDGEN_AGENT_TASK_DIR"
# W&B variables an agent sets for its run; replayed on requeue so the run stays the sweep's run.
AGENT_ENV_PREFIXES = ("WANDB_",)


def _slurm_task_name() -> str:
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"slurm-{array_job}_{task}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}"
    return f"local-{os.getpid()}"


def task_dir(sweep: str, root: str | Path | None = None) -> Path:
    """The folder of this array task's run (stable across requeues: named by array job and task)."""
    root = Path(root or os.environ.get("VIDGEN_SWEEP_ROOT") or "outputs/sweeps")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(sweep).stem if sweep.endswith((".yaml", ".yml")) else sweep)
    return (root / slug.strip("_") / _slurm_task_name()).resolve()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_record(folder: Path) -> dict | None:
    path = Path(folder) / RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def normalize_overrides(argv: list[str]) -> list[str]:
    """W&B's `--key=value` -> Hydra's `key=value`; everything else as is."""
    return [a[2:] if a.startswith("--") and "=" in a else a for a in argv]


# ----------------------------------------------------------------------------- launching a run
def train_command(overrides: list[str], folder: Path) -> list[str]:
    """The command that trains `overrides` in `folder`: slurm/train.sh (srun on all tasks) under
    SLURM, else `python -m vidgen.train`."""
    overrides = list(overrides)
    if not any(o.split("=", 1)[0].lstrip("+") == "run.dir" for o in overrides):
        # quoted for Hydra: sweep row folders hold '=' and ','
        quoted = str(folder).replace("\\", "\\\\").replace("'", "\\'")
        overrides.append(f"run.dir='{quoted}'")
    if os.environ.get("SLURM_JOB_ID"):
        repo = Path(os.environ.get("VIDGEN_REPO") or Path(__file__).resolve().parents[2])
        train_sh = os.environ.get("VIDGEN_TRAIN_SH") or str(repo / "slurm" / "train.sh")
        return ["bash", train_sh, *overrides]
    return [sys.executable, "-m", "vidgen.train", *overrides]


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the training run: no agent shims on PATH, plus the agent's W&B vars."""
    env = dict(os.environ)
    env.pop(TASK_DIR_ENV, None)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.endswith(SHIM_DIR))
    env.update(extra or {})
    return env


def run_recorded(folder: Path) -> int:
    record = read_record(folder)
    assert record is not None
    cmd = train_command(record["overrides"], folder)
    print(f"vidgen.slurm_agent: running the recorded command of {folder}:\n  {shlex.join(cmd)}", flush=True)
    return subprocess.call(cmd, env=_clean_env(record.get("env")))


def launch(argv: list[str]) -> int:
    """Called (through the shims) with the agent's run command: record it once, then train."""
    folder = Path(os.environ[TASK_DIR_ENV])
    existing = read_record(folder)
    overrides = normalize_overrides(argv)
    if existing is not None and existing["overrides"] != overrides:
        print(
            f"vidgen.slurm_agent: {folder} already runs {shlex.join(existing['overrides'])}; one run per array "
            "task (use `wandb agent --count 1`)",
            file=sys.stderr,
        )
        return 3
    if existing is None:
        env = {k: v for k, v in os.environ.items() if k.startswith(AGENT_ENV_PREFIXES)}
        record = {
            "overrides": overrides,
            "env": env,
            "sweep": os.environ.get("VIDGEN_AGENT_SWEEP"),
            "job": _slurm_task_name(),
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        folder.mkdir(parents=True, exist_ok=True)
        if env.get("WANDB_RUN_ID") and not (folder / "wandb_id").is_file():
            _atomic_write(folder / "wandb_id", env["WANDB_RUN_ID"])  # the sweep's run id names the W&B run
        _atomic_write(folder / RECORD_FILE, json.dumps(record, indent=2) + "\n")
    return run_recorded(folder)


# ----------------------------------------------------------------------------- the agent
SHIM = """#!/bin/bash
# vidgen.slurm_agent shim: hands the sweep agent's training command to `vidgen.slurm_agent launch`.
self_dir=$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)
real_path=$(printf '%s' "$PATH" | tr ':' '\\n' | grep -vxF "$self_dir" | paste -sd: -)
{match}
PATH="$real_path" exec {name} "$@"
"""
MATCH = {
    "vidgen": 'if [[ "${{1:-}}" == train ]]; then shift; exec {py} -m vidgen.slurm_agent launch -- "$@"; fi',
    "python": (
        'if [[ "${{1:-}}" == -m && "${{2:-}}" == vidgen.train ]]; then shift 2; '
        'exec {py} -m vidgen.slurm_agent launch -- "$@"; fi'
    ),
}


def write_shims(folder: Path) -> Path:
    shim_dir = folder / SHIM_DIR
    shim_dir.mkdir(parents=True, exist_ok=True)
    py = shlex.quote(sys.executable)
    for name, kind in (("vidgen", "vidgen"), ("python", "python"), ("python3", "python")):
        path = shim_dir / name
        path.write_text(SHIM.format(match=MATCH[kind].format(py=py), name=name))
        path.chmod(0o755)
    return shim_dir


def agent_command(sweep: str) -> list[str]:
    """The W&B agent that picks this task's run: one run per task."""
    wandb = os.environ.get("VIDGEN_WANDB", "wandb")
    return [wandb, "agent", "--count", "1", sweep]


def local_task(sweep_file: str) -> int:
    """`--local`: array task i runs row i of the sweep file as the project's runner plans it
    (`vidgen sweep run --local`, extra overrides from VIDGEN_LOCAL_SWEEP_ARGS). The row's own run
    folder is the task folder, so a requeued task, or a later `vidgen sweep run`, finds that run."""
    from vidgen.sweeps.agent import plan
    from vidgen.sweeps.schema import load_sweep

    extra = shlex.split(os.environ.get("VIDGEN_LOCAL_SWEEP_ARGS", ""))
    index = int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
    planned = plan(load_sweep(sweep_file), extra)
    if index >= len(planned):
        print(f"vidgen.slurm_agent: task {index}: the sweep has only {len(planned)} row(s); nothing to run")
        return 0
    row = planned[index]
    folder = row.run_dir
    if row.status == "completed":
        print(f"vidgen.slurm_agent: row {index} ({row.label}) already completed in {folder}")
        return 0
    if read_record(folder) is None:
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            "overrides": row.overrides,
            "env": {},
            "sweep": sweep_file,
            "row": row.label,
            "job": _slurm_task_name(),
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        _atomic_write(folder / RECORD_FILE, json.dumps(record, indent=2) + "\n")
    else:
        print(f"vidgen.slurm_agent: row {index} requeued (restart {os.environ.get('SLURM_RESTART_COUNT', '?')})")
    return run_recorded(folder)


def task(sweep: str, local: bool = False) -> int:
    if local:
        return local_task(sweep)
    folder = task_dir(sweep)
    if read_record(folder) is not None:
        restarts = os.environ.get("SLURM_RESTART_COUNT", "?")
        print(f"vidgen.slurm_agent: {folder.name} requeued (restart {restarts}): resuming its own run", flush=True)
        return run_recorded(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shim_dir = write_shims(folder)
    from vidgen.sweeps.agent import agent_env

    env = agent_env()  # this Python first: the agent's literal `python` (${interpreter}) has vidgen
    env["PATH"] = f"{shim_dir}{os.pathsep}{env['PATH']}"
    env[TASK_DIR_ENV] = str(folder)
    env["VIDGEN_AGENT_SWEEP"] = sweep
    cmd = agent_command(sweep)
    print(f"vidgen.slurm_agent: {folder.name}: asking the sweep for a run: {shlex.join(cmd)}", flush=True)
    try:
        rc = subprocess.call(cmd, env=env)
    except FileNotFoundError:
        print(
            f"vidgen.slurm_agent: {cmd[0]!r} not found (pip install wandb, or use --local SWEEP_FILE)", file=sys.stderr
        )
        return 2
    if read_record(folder) is None:
        print(f"vidgen.slurm_agent: the agent started no run (sweep finished?); exit code {rc}", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m vidgen.slurm_agent task [--local] SWEEP | launch -- OVERRIDES..."
    if not argv:
        print(usage, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "launch":
        return launch(rest[1:] if rest[:1] == ["--"] else rest)
    if command == "task":
        local = "--local" in rest
        rest = [a for a in rest if a != "--local"]
        if len(rest) != 1:
            print(usage, file=sys.stderr)
            return 2
        return task(rest[0], local=local)
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
