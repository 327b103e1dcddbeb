"""`python -m vidgen.sweeps.profile_run exp=NAME [profile.time=true] [overrides]`: a profile table's run.

Overhead tables (JDM Table 6) come from `vidgen profile`, not from training. This is the
program their sweep files run: the same `vidgen.profile.profile(cfg)` measurement, recorded like a
training run, so the sweep runner, W&B agents and the report treat both alike:

    <run.dir>/config.yaml    resolved config
    <run.dir>/profile.json   `vidgen profile --json` output
    <run.dir>/summary.json   status, exp, profile/backbone_params, profile/method_params,
                             profile/*_fwd_flops, profile/*_pct, and with profile.time=true (CUDA)
                             profile/backbone_fwd_ms, profile/method_fwd_ms, profile/device

With `logger.wandb.enabled` (the default) the same summary goes to a W&B run (offline unless
`logger.wandb.online=true`), so `vidgen report --wandb` finds it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from vidgen.config import load_config
from vidgen.errors import VidgenError
from vidgen.runs import SUMMARY_FILE, prepare_run_dir, wandb_run_id
from vidgen.sweeps.validate import hydra_overrides
from vidgen.wandb_runs import run_name

PROFILE_FILE = "profile.json"


def summary_of(result: dict[str, Any]) -> dict[str, Any]:
    b, m, o = result["backbone"], result["method"], result["overhead"]
    out: dict[str, Any] = {
        "profile/backbone_params": b["params"],
        "profile/method_params": m["params"],
        "profile/backbone_fwd_flops": b["fwd_flops"],
        "profile/method_fwd_flops": m["fwd_flops"],
        "profile/params_pct": o["params_pct"],
        "profile/fwd_flops_pct": o["fwd_flops_pct"],
    }
    if "fwd_ms" in b:
        out.update({"profile/backbone_fwd_ms": b["fwd_ms"], "profile/method_fwd_ms": m["fwd_ms"],
                    "profile/fwd_time_pct": o["fwd_time_pct"], "profile/device": result.get("device", "")})
    return out


def _write(run_dir: Path, summary: dict[str, Any]) -> None:
    tmp = run_dir / f".{SUMMARY_FILE}.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, run_dir / SUMMARY_FILE)


def _log_wandb(cfg, run_dir: Path, summary: dict[str, Any]) -> None:
    wb = cfg.logger.wandb
    if not wb.enabled:
        return
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    run = wandb.init(project=wb.project, entity=wb.entity, id=wandb_run_id(run_dir), resume="allow",
                     name=run_name(cfg), dir=str(run_dir), tags=list(wb.tags),
                     mode="online" if wb.online else "offline",
                     config=OmegaConf.to_container(cfg, resolve=True))
    run.summary.update(summary)
    run.finish()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    timed = any(a.lower() in ("profile.time=true", "profile.time=1") for a in argv)
    try:
        cfg = load_config(hydra_overrides(argv), run_kind="profile")  # never a training's folder
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    run_dir = prepare_run_dir(cfg)
    base = {"exp": cfg.exp_name, "backbone": cfg.backbone.name, "method": cfg.method.name, "global_step": 0,
            "max_steps": 0, "kind": "profile"}
    _write(run_dir, {**base, "status": "running"})
    start = time.time()
    try:
        from vidgen.profile import profile

        result = profile(cfg, time=timed)
    except VidgenError as err:
        _write(run_dir, {**base, "status": "failed", "error": str(err)})
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except Exception as err:  # a bug: record it, then let it propagate with its traceback
        _write(run_dir, {**base, "status": "failed", "error": repr(err)[:2000]})
        raise
    (run_dir / PROFILE_FILE).write_text(json.dumps(result, indent=2) + "\n")
    summary = {**base, "status": "completed", "wall_time_s": round(time.time() - start, 3), **summary_of(result)}
    try:
        _log_wandb(cfg, run_dir, summary_of(result))
    except VidgenError as err:  # e.g. the folder belongs to another W&B run than the agent's
        _write(run_dir, {**base, "status": "failed", "error": str(err)})
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    _write(run_dir, summary)
    print(json.dumps(result, indent=2))
    print(f"run folder: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
