"""The run folder's W&B run: one logger per folder, one history across resumes, and `vidgen sync`.

    vidgen sync RUN_DIR... [wandb sync options]    upload the folders' offline segments, in order

A run folder is one W&B run (id in `<run.dir>/wandb_id`, name `<exp>/<folder name>`). Each (re)start
of an offline run writes one segment, `<run.dir>/wandb/offline-run-<time>-<id>`; every record is
logged with `step=trainer/global_step`, so a resumed segment's `_step` continues where the last one
stopped. `wandb sync` (0.31) uploads several segments of one run one after another, in order of
start time, so the whole history lands in the one run; `vidgen sync` hands it every segment.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vidgen.errors import ConfigError
from vidgen.runs import wandb_run_id

SEGMENT_GLOB = "offline-run-*"


def run_name(cfg: DictConfig) -> str:
    """`<exp>/<run folder name>`: fixed for the folder, so a resume never renames the W&B run (the
    derived `run.name` changes with the overrides, e.g. a resume with a larger train.max_steps)."""
    return f"{cfg.exp_name}/{Path(cfg.run.dir).name}"


def build_logger(cfg: DictConfig, run_dir: Path) -> Any:
    """Lightning's WandbLogger for the run folder, logging at `step=global_step` (see StepWandbLogger)."""
    from vidgen.slurm_requeue import sigterm_tolerant_wandb_logger

    wb = cfg.logger.wandb
    os.environ.setdefault("WANDB_SILENT", "true")
    logger = sigterm_tolerant_wandb_logger(
        base=step_logger_class(),
        project=wb.project,
        entity=wb.entity,
        name=run_name(cfg),
        id=wandb_run_id(run_dir),
        resume="allow",
        save_dir=str(run_dir),
        offline=not wb.online,
        tags=list(wb.tags),
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    # Lightning always passes `anonymous`, which wandb >= 0.2x warns about on every run.
    logger._wandb_init.pop("anonymous", None)
    return logger


def step_logger_class() -> type:
    from lightning.pytorch.loggers import WandbLogger
    from lightning.pytorch.utilities import rank_zero_only

    class StepWandbLogger(WandbLogger):
        """Logs each record at W&B `step=global_step` (Lightning's WandbLogger only adds a
        `trainer/global_step` column, so a resumed offline segment's `_step` restarted at 0 and its
        records were dropped when synced into the run whose history had passed that step)."""

        @rank_zero_only
        def log_metrics(self, metrics, step=None) -> None:
            if step is None:
                return super().log_metrics(metrics, step)
            self.experiment.log({**metrics, "trainer/global_step": int(step)}, step=int(step))

    return StepWandbLogger


def offline_segments(run_dir: Path) -> list[Path]:
    """The folder's offline W&B segments, oldest first (the names start with the start time)."""
    return sorted(p for p in (Path(run_dir) / "wandb").glob(SEGMENT_GLOB) if p.is_dir())


def sync_command(run_dirs: list[Path], options: list[str]) -> list[str]:
    """`wandb sync SEGMENT...` for every segment of every folder (a ConfigError if one has none)."""
    segments: list[str] = []
    for run_dir in run_dirs:
        found = offline_segments(run_dir)
        if not found:
            raise ConfigError(
                f"{run_dir}: no offline W&B run under {Path(run_dir) / 'wandb'} ({SEGMENT_GLOB}); "
                "pass a run folder trained with logger.wandb.enabled=true and logger.wandb.online=false"
            )
        segments += [str(p) for p in found]
    wandb = shlex.split(os.environ.get("VIDGEN_WANDB", "")) or [sys.executable, "-m", "wandb"]
    return [*wandb, "sync", *options, *segments]


USAGE = """usage: vidgen sync RUN_DIR... [wandb sync options, e.g. --dry-run, -p PROJECT, -e ENTITY]

Uploads each run folder's offline W&B segments (<run.dir>/wandb/offline-run-*; one per (re)start)
with `wandb sync`, which uploads the segments of one run one after another in order of start time,
so a resumed run's history is one continuous W&B run. Run it where there is internet (the login node)."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0 if argv else 2
    options, run_dirs, takes_value = [], [], False
    for arg in argv:  # options with a value (-p X, -e X, --id X, -n X) keep it
        if takes_value or arg.startswith("-"):
            options.append(arg)
            takes_value = arg in (
                "-p",
                "--project",
                "-e",
                "--entity",
                "--id",
                "-n",
                "--job-type",
                "--replace-tags",
            )
        else:
            run_dirs.append(Path(arg))
    missing = [str(d) for d in run_dirs if not d.is_dir()]
    if missing or not run_dirs:
        raise ConfigError(f"vidgen sync: no such run folder: {', '.join(missing) or '(none given)'}")
    cmd = sync_command(run_dirs, options)
    print(f"vidgen sync: {shlex.join(cmd)}", flush=True)
    return subprocess.call(cmd)
