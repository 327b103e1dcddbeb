"""`vidgen sweep run SWEEP --local`: run a sweep's rows one after another, without a W&B server.

Each run is started the way `wandb agent` starts it: the sweep's `command` with its macros
filled in by wandb's own `create_sweep_command(_args)` (`${env}` -> /usr/bin/env,
`${args_no_hyphens}` -> `key=value` per parameter; `${interpreter}` -> this Python), the run's parameters written to a W&B sweep-parameter file named by
WANDB_SWEEP_PARAM_PATH (so the W&B run's config carries them, as under an agent), as a
subprocess with an argument list (never a shell). The extra overrides are appended, then
`run.name=<row name>`: every row gets its own deterministic folder
`<run.root>/<exp>/<sweep table>.<parameters>-<hash>` (the hash covers the parameters and the extra
overrides, so a `preset=smoke` run never stands in for a full one), also inside a SLURM job where
vidgen.train would otherwise name every run after the job.

A row whose folder already has `summary.json` with status `completed` is skipped, so rerunning a
sweep resumes it. Each run folder also gets `sweep.json` (sweep, parameters, row, command, return
code, commit, dates): the report joins runs to rows with it. The child's output goes to
`<run.dir>/agent.log`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from vidgen.config import load_config
from vidgen.errors import ConfigError
from vidgen.runs import read_summary
from vidgen.sweeps.schema import RunSpec, Sweep, expand
from vidgen.sweeps.validate import hydra_overrides

SWEEP_FILE = "sweep.json"
PARAMS_FILE = "wandb-sweep-params.yaml"
LOG_FILE = "agent.log"
SWEEP_KEY = "vidgen_sweep"  # added to the W&B run's config: which sweep file the run belongs to


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=cwd, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=cwd, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip()[:12] + ("+dirty" if dirty.stdout.strip() else "")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def expand_command(template: list, params: dict, program: str = "", interpreter: str = "python") -> list[str]:
    """A sweep `command` as `wandb agent` expands it (wandb 0.31 wandb_agent.Agent._command_run):
    `${envvar:NAME}` by wandb's `create_sweep_command`, the argument macros by its
    `create_sweep_command_args`, `${env}` -> /usr/bin/env. The agent's `${interpreter}` is the literal
    `python` (whatever is first on PATH); the local runner passes this Python instead.
    A macro wandb does not know is a ConfigError (the agent would silently drop it)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    macros = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    macros.update(interpreter=[interpreter], program=[program], env=["/usr/bin/env"])
    cmd: list[str] = []
    for chunk in create_sweep_command(list(template)):
        chunk = str(chunk)
        if not (chunk.startswith("${") and chunk.endswith("}")):
            cmd.append(chunk)
        elif chunk[2:-1] in macros and chunk != "${args_dict}":
            cmd.extend(macros[chunk[2:-1]])
        else:
            raise ConfigError(f"command macro {chunk} is not one wandb's agent fills in (or needs a file); "
                              "use ${args_no_hyphens}")
    return cmd


def build_command(sweep: Sweep, run: RunSpec, extra: list[str]) -> list[str]:
    """The argument list `wandb agent` would run, with the extra overrides appended as parameters."""
    if bad := [e for e in extra if "=" not in e]:
        raise ConfigError(f"{' '.join(bad)}: the local runner passes overrides as W&B parameters, key=value")
    params = {**run.params, **dict(e.split("=", 1) for e in extra)}
    try:
        return expand_command(sweep.config["command"], params, str(sweep.config.get("program", "")), sys.executable)
    except ConfigError as err:
        raise ConfigError(f"{sweep.path}: {err}") from None


def agent_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment to run `wandb agent` in: this Python's folder first on PATH, so the literal
    `python` the agent puts in every sweep command (`${interpreter}`) is this Python, the one that
    has vidgen, even from a shell where the environment is not activated."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), *filter(None, env.get("PATH", "").split(os.pathsep))])
    return env


def wandb_agent(sweep_id: str, count: int | None = None) -> int:
    """`vidgen sweep agent SWEEP_ID`: wandb's own agent, started in `agent_env()`."""
    cmd = [sys.executable, "-m", "wandb", "agent", *(["--count", str(count)] if count else []), sweep_id]
    return subprocess.call(cmd, env=agent_env())


def row_run_name(sweep: Sweep, run: RunSpec, extra: list[str]) -> str:
    table = sweep.name.split("/", 1)[-1]
    kept = [e for e in extra if not e.split("=")[0].startswith("run.")]
    digest = hashlib.sha1(repr((sorted(run.params.items()), kept)).encode()).hexdigest()[:6]
    params = ",".join(f"{k}={v}" for k, v in run.params.items() if k != "exp") or "default"
    return re.sub(r"[^A-Za-z0-9.=,_-]+", "_", f"{table}.{params}")[:100] + f"-{digest}"


@dataclass
class Planned:
    run: RunSpec
    overrides: list[str]
    command: list[str]
    run_dir: Path
    label: str
    sweep_name: str = ""

    @property
    def status(self) -> str:
        return str(read_summary(self.run_dir).get("status", "missing"))


def plan(sweep: Sweep, extra: list[str], count: int | None = None, seed: int = 0) -> list[Planned]:
    if bad := [e for e in extra if e.split("=")[0].lstrip("+~") in ("run.name", "run.dir")]:
        raise ConfigError(f"{' '.join(bad)}: the local runner names each row's folder itself; "
                          "choose where they go with run.root=DIR")
    spec = sweep.spec
    planned = []
    for run in expand(sweep, count=count, seed=seed):
        name = row_run_name(sweep, run, extra)
        tail = [*extra, f"run.name='{name}'"]  # quoted: the name holds = and ,
        cfg = load_config(hydra_overrides([*run.args, *tail]))
        label = spec.rows.get(str(run.params.get(spec.row_param)), "?") if spec else ""
        planned.append(Planned(run, [*run.args, *tail], build_command(sweep, run, tail), Path(cfg.run.dir), label,
                               sweep.name))
    return planned


def _describe(p: Planned) -> str:
    params = " ".join(f"{k}={v}" for k, v in p.run.params.items())
    return f"{p.label} ({params})" if p.label else params


def _write_params(p: Planned) -> Path:
    """W&B's sweep-parameter file (what `wandb agent` writes), named by WANDB_SWEEP_PARAM_PATH."""
    path = p.run_dir / PARAMS_FILE
    params = {**p.run.params, SWEEP_KEY: p.sweep_name}
    body = yaml.safe_dump({k: {"value": v} for k, v in params.items()}, sort_keys=False)
    path.write_text("wandb_version: 1\n\n" + body)
    return path


def run_local(
    sweep: Sweep,
    extra: list[str],
    count: int | None = None,
    seed: int = 0,
    dry_run: bool = False,
    verbose: bool = False,
    echo: Callable[[str], None] = print,
) -> int:
    """Run every row not yet completed; returns 0 when all rows completed, 1 otherwise."""
    planned = plan(sweep, extra, count=count, seed=seed)
    commit = git_commit(Path(__file__).parent)
    n, width = len(planned), len(str(len(planned)))
    done = skipped = failed = 0
    echo(f"sweep {sweep.name}: {n} run(s) from {sweep.path}")
    for i, p in enumerate(planned, 1):
        prefix = f"[{i:>{width}}/{n}]"
        if p.status == "completed":
            skipped += 1
            echo(f"{prefix} {_describe(p)}: already completed, skipped ({p.run_dir})")
            continue
        if dry_run:
            echo(f"{prefix} {_describe(p)}\n      folder:  {p.run_dir}\n      command: {' '.join(p.command)}")
            continue
        echo(f"{prefix} {_describe(p)}: running in {p.run_dir} ...")
        p.run_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "sweep": sweep.name,
            "sweep_file": str(sweep.path),
            "params": p.run.params,
            "row": p.label,
            "overrides": p.overrides,
            "command": p.command,
            "commit": commit,
            "started": _now(),
        }
        (p.run_dir / SWEEP_FILE).write_text(json.dumps(record, indent=2) + "\n")
        env = {**os.environ, "WANDB_SWEEP_PARAM_PATH": str(_write_params(p)), "WANDB_SILENT": "true"}
        start = time.time()
        with (p.run_dir / LOG_FILE).open("w") as log:
            proc = subprocess.run(p.command, env=env, stdout=None if verbose else log,
                                  stderr=subprocess.STDOUT if not verbose else None, check=False)
        record.update(returncode=proc.returncode, finished=_now(), wall_time_s=round(time.time() - start, 2))
        (p.run_dir / SWEEP_FILE).write_text(json.dumps(record, indent=2) + "\n")
        status = p.status
        if proc.returncode == 0 and status == "completed":
            done += 1
            echo(f"{prefix} completed in {time.time() - start:.1f}s")
        else:
            failed += 1
            tail = (p.run_dir / LOG_FILE).read_text().splitlines()[-15:] if not verbose else []
            echo(f"{prefix} FAILED (exit code {proc.returncode}, status {status}); log: {p.run_dir / LOG_FILE}")
            for line in tail:
                echo(f"      | {line}")
    if dry_run:
        echo(f"dry run: {n - skipped} run(s) would start, {skipped} already completed")
        return 0
    echo(f"sweep {sweep.name}: {done} completed, {skipped} skipped (already completed), {failed} failed")
    return 1 if failed else 0
