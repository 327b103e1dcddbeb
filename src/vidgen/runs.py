"""The run folder: resolved config, checkpoints, metrics.csv, summary.json and the W&B run.

    <run.dir>/config.yaml              resolved config of the latest (re)start (vidgen.run_config)
    <run.dir>/config.resume-N.yaml     a resume that accepted config changes (run.accept_config_changes)
    <run.dir>/.lock                    held by the live run's rank 0 (vidgen.run_lock)
    <run.dir>/checkpoints/last.ckpt    + checkpoints/step=N.ckpt every train.checkpoint_every steps
    <run.dir>/metrics.csv              one row per optimizer step: step, train/loss, lr, ... (appended)
    <run.dir>/summary.json             exp, status, global_step, world_size, train/loss, restarts, ...
    <run.dir>/wandb_id                 the W&B run id, fixed for the folder's lifetime
    <run.dir>/wandb/                   the W&B run files (offline unless logger.wandb.online)

Opening the folder for a run (lock, checks, leftovers) is vidgen.run_folder; see docs/reliability.md.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from vidgen import csv_table
from vidgen.errors import ConfigError, DataError

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
STATUSES = ("running", "completed", "failed", "interrupted", "requeued")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: ranks never share a temp file
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_global_zero() -> bool:
    """Rank 0 of the job, known before the Trainer exists (Lightning reads RANK / LOCAL_RANK /
    SLURM_PROCID at import); run-folder files are written by rank 0 only."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def prepare_run_dir(cfg: DictConfig) -> Path:
    run_dir = Path(cfg.run.dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    if is_global_zero():
        _atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    return run_dir


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest of checkpoints/last.ckpt and the SLURM requeue saves <run.dir>/hpc_ckpt_N.ckpt.

    A checkpoint may be a folder (DeepSpeed writes one per checkpoint).
    """
    run_dir = Path(run_dir)
    found = [p for p in (run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")) if p.exists()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def wandb_run_id(run_dir: Path) -> str | None:
    """A W&B id fixed per run folder, so a resumed run continues the same W&B run.

    Under a sweep agent (`WANDB_RUN_ID` set, as `wandb agent` sets it) the folder takes the agent's
    id: the run the agent created is the one that receives the metrics, and a requeued task (which
    replays the agent's variables) resumes it. A folder that already belongs to another W&B run
    refuses the agent's. Otherwise the id is minted with wandb's own generator. Written by rank 0
    only (the other ranks log nothing to W&B): two ranks must never write different ids for one run.
    """
    path = Path(run_dir) / "wandb_id"
    agent_id = os.environ.get("WANDB_RUN_ID") or None
    if path.is_file():
        run_id = path.read_text().strip()
        if agent_id and agent_id != run_id:
            raise ConfigError(
                f"{path}: this run folder belongs to W&B run {run_id!r}, but the sweep agent started run "
                f"{agent_id!r} (WANDB_RUN_ID). Give the sweep's run its own folder (leave run.dir / run.name "
                "unset), or unset WANDB_RUN_ID to resume the folder's own run"
            )
        return run_id
    if not is_global_zero():
        return agent_id
    if agent_id is None:
        from wandb.sdk.lib.runid import generate_id  # wandb.util.generate_id moved here in wandb 0.2x

        run_id = generate_id()
    else:
        run_id = agent_id
    _atomic_write_text(path, run_id)
    return run_id


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """metrics.csv's rows; a damaged file is a DataError naming the line (see vidgen.csv_table)."""
    return csv_table.read_rows(Path(run_dir) / METRICS_FILE)


def needs_closing(trainer: L.Trainer, run_dir: Path) -> bool:
    """The run reached max_steps but its end-of-training hooks never ran (killed after the final
    checkpoint): Lightning skips the training loop, and with it on_train_start/on_train_end, so the
    callbacks finish the run from on_fit_end instead."""
    done = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
    return done and read_summary(run_dir).get("status") != "completed"


def data_epoch(trainer: L.Trainer) -> int:
    """metrics.csv's `epoch`: the pass over the training data the step's last sample came from,
    from the step count (as the resumable sampler places a resumed run). Lightning's current_epoch
    is no such count: training is one endless epoch, and a resume from the checkpoint saved at the
    max_steps stop starts Lightning's epoch 1, so a resumed run's column jumped from 0 to 1."""
    datamodule = getattr(trainer, "datamodule", None)
    per_rank = getattr(getattr(datamodule, "train_sampler", None), "per_rank", 0)
    consumed = trainer.global_step * trainer.accumulate_grad_batches * getattr(datamodule, "micro_batch_size", 1)
    return (consumed - 1) // per_rank if per_rank and consumed else 0


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints to a temporary file and rename: a crash never leaves a half-written one.

    Reading goes through `vidgen.checkpoints.load_checkpoint` (weights only, clean errors).
    """

    def load_checkpoint(self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        from vidgen.checkpoints import load_checkpoint

        return load_checkpoint(path)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


class RunRecorder(L.Callback):
    """Writes metrics.csv (one row per optimizer step) and summary.json; counts restarts."""

    def __init__(self, run_dir: Path, exp: str, extra_summary: dict[str, Any] | None = None):
        self.run_dir = Path(run_dir)
        self.exp = exp
        self.extra_summary = dict(extra_summary or {})
        self.restarts = 0
        self._losses: list[torch.Tensor] = []
        self._last: dict[str, float] = {}
        self._started = time.time()
        self._training = False  # set once the loop runs: a failure while restoring keeps the old summary

    # -- checkpoint state: the restart counter travels with the checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"restarts": self.restarts}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.restarts = int(state_dict.get("restarts", 0)) + 1  # loading a checkpoint = a restart

    # -- files
    def _write_summary(self, trainer: L.Trainer, status: str, error: str | None = None) -> None:
        if not trainer.is_global_zero:
            return
        summary = {
            "exp": self.exp,
            "status": status,
            "global_step": int(trainer.global_step),
            "max_steps": int(trainer.max_steps),
            "world_size": int(trainer.world_size),
            "num_nodes": int(trainer.num_nodes),
            "restarts": self.restarts,
            "wall_time_s": round(time.time() - self._started, 3),
            **self.extra_summary,
            **self._last,
        }
        if error:
            summary["error"] = error
        _atomic_write_text(self.run_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")


    # -- hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:  # no step twice: drop rows after the resumed step (atomic rewrite)
            csv_table.cut_after(self.run_dir / METRICS_FILE, trainer.global_step)
        self._training = True
        self._write_summary(trainer, "running")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._losses.append(loss.detach().float())
        if (batch_idx + 1) % trainer.accumulate_grad_batches != 0:
            return
        step_loss = torch.stack(self._losses).mean()
        self._losses.clear()
        step_loss = trainer.strategy.reduce(step_loss, reduce_op="mean")
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        row = {"step": trainer.global_step, "train/loss": float(step_loss), "lr": float(lr), "epoch": data_epoch(trainer)}
        self._last = {"train/loss": row["train/loss"], "lr": row["lr"]}
        if trainer.is_global_zero and trainer.global_step % max(1, trainer.log_every_n_steps) == 0:
            csv_table.append_row(self.run_dir / METRICS_FILE, row)
            if trainer.loggers:
                self._log_step(trainer, row)

    @staticmethod
    def _log_step(trainer: L.Trainer, row: dict[str, float]) -> None:
        """One logger record per optimizer step: loss, lr and the method's train/* terms.

        Lightning would send two (its own for `self.log`, LearningRateMonitor's for the lr), each
        a W&B call; one record halves that cost (benchmarks/step_overhead.py). The step is the
        row's: W&B's `trainer/global_step` and `_step` equal metrics.csv's `step`.
        """
        metrics = {"train/loss": row["train/loss"], "lr": row["lr"]}
        for key, value in trainer.callback_metrics.items():
            if key.startswith("train/") and key not in metrics:
                metrics[key] = float(value)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=int(row["step"]))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        self._write_summary(trainer, "completed" if done else "interrupted")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._training and needs_closing(trainer, self.run_dir):  # killed before its end hook
            rows = read_metrics(self.run_dir) if trainer.is_global_zero else []
            self._last = {k: rows[-1][k] for k in ("train/loss", "lr") if rows and k in rows[-1]}
            self._write_summary(trainer, "completed")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not self._training and not isinstance(exception, DataError):
            return  # a refused restore keeps the old summary; bad data (found in setup) fails the run
        interrupted = isinstance(exception, KeyboardInterrupt) or type(exception).__name__ == "SIGTERMException"
        self._write_summary(trainer, "interrupted" if interrupted else "failed", error=repr(exception)[:2000])


class StepProgressBar(RichProgressBar):
    """Training is step-based over an infinite sampler: show steps, not a meaningless epoch count."""

    def _get_train_description(self, current_epoch: int) -> str:
        return "train"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """The count is the run's micro-batches so far, from global_step (the bar's total is the
        run's too): Lightning's is the batch index in its epoch, which a resume restarts or carries
        on depending on where the checkpoint was saved, so a resumed bar could read `8/3`."""
        accumulate = trainer.accumulate_grad_batches
        done = trainer.global_step * accumulate + (batch_idx + 1) % accumulate
        super().on_train_batch_end(trainer, pl_module, outputs, batch, done - 1)

    @property
    def total_train_batches(self) -> int | float:
        """The whole run's micro-batches: the bar's count resumes with the run, so its total must
        too (Lightning's is the steps left, which showed `60/19` after a resume)."""
        if self.trainer.max_steps > 0:
            return self.trainer.max_steps * self.trainer.accumulate_grad_batches
        return super().total_train_batches
