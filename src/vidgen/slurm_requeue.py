"""Stopping on SIGUSR1 / SIGTERM inside the training loop, and `scontrol requeue` for this job.

The process side (handlers from process start, status, exit code) is vidgen.preemption.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import lightning as L
import torch

from vidgen.preemption import HPC_GLOB, STATE, Interrupted, handler, signal_code


def slurm_job_id() -> str | None:
    """The id `scontrol requeue` takes: `<array job>_<task>` for an array task, else the job id."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array_job}_{task}" if array_job and task else os.environ.get("SLURM_JOB_ID")


def requeue_job(step: int | None) -> bool:
    """Requeue this job; print what happened. Called after every rank saved and W&B was flushed:
    the requeue SIGTERMs every process of the job at once."""
    job = slurm_job_id()
    if job is None:
        print(
            f"stopped at step {step} for a requeue, but this is not a SLURM job: rerun to resume", flush=True
        )
        return False
    try:
        res = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
        ok, detail = res.returncode == 0, res.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        ok, detail = False, str(err)
    print(
        f"job {job} {'requeued' if ok else f'requeue failed: {detail}'} (stopped at step {step})", flush=True
    )
    return ok


class StopOnSignal(L.Callback):
    """Stop at an optimizer step every rank agrees on (an all-reduce of the signal flag, max).

    Stopping ends the epoch, and ModelCheckpoint (`save_on_train_epoch_end=True` in vidgen.train)
    saves `checkpoints/last.ckpt` there, unless that step's periodic save already wrote it: one save
    per preemption, never a second full checkpoint. Outcome `requeued` on SIGUSR1 (when `requeue`),
    else `interrupted`. A signal during start-up stops before the first step: nothing is saved (the
    state is the one just loaded). `hpc_ckpt_*` files of older vidgen versions (Lightning's requeue
    save) are deleted once a newer last.ckpt exists.
    """

    def __init__(self, run_dir: Path, requeue: bool):
        self.run_dir, self.requeue = Path(run_dir), requeue

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stepped = False
        if STATE.phase == "off":
            return  # train() called in-process without install(): leave the signals to Lightning
        # Lightning's SIGTERM handler broadcasts inside the handler, which deadlocks when another rank
        # waits in a collective; take SIGTERM back (Lightning restores ours at its teardown).
        signal.signal(signal.SIGTERM, handler())
        STATE.phase = "training"
        self._check(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if STATE.phase == "training" and (batch_idx + 1) % trainer.accumulate_grad_batches == 0:
            self._stepped = True
            self._check(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if STATE.phase == "training":
            STATE.phase = "finished"
        if trainer.is_global_zero:
            remove_stale_hpc_checkpoints(self.run_dir)

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        flag = torch.tensor(float(signal_code(STATE.received)), device=pl_module.device)
        agreed = int(trainer.strategy.reduce(flag, reduce_op="max"))
        if agreed == 0:
            return
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            STATE.phase = "finished"  # the last step: training is complete, nothing to requeue
            return
        STATE.step, STATE.phase, STATE.agreed = int(trainer.global_step), "finished", True
        STATE.outcome = "requeued" if agreed == 1 and self.requeue else "interrupted"
        if trainer.is_global_zero:
            name = "SIGTERM" if agreed == 2 else "SIGUSR1"
            what = "saving checkpoints/last.ckpt" if self._stepped else "nothing new to save"
            print(f"{name} at step {STATE.step}: {what}; stopping ({STATE.outcome})", flush=True)
        if not self._stepped:
            raise Interrupted()  # every rank agreed, so every rank leaves here
        trainer.should_stop = True


def remove_stale_hpc_checkpoints(run_dir: Path) -> list[Path]:
    """Delete `hpc_ckpt_*.ckpt` (Lightning's requeue saves) older than checkpoints/last.ckpt: each is
    a full checkpoint, and without this every preemption of an older version left one for good."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        return []
    removed = []
    for path in run_dir.glob(HPC_GLOB):
        if path.stat().st_mtime_ns < last.stat().st_mtime_ns:
            shutil.rmtree(path) if path.is_dir() else path.unlink()  # DeepSpeed saves a folder
            removed.append(path)
    return removed


def sigterm_tolerant_wandb_logger(base: type | None = None, **kwargs):
    """Lightning's WandbLogger whose `log_metrics` survives wandb's service dying of the job's SIGTERM
    (SLURM signals every process of the job): without this the W&B call of the stop step raises and
    the stop never reaches the save of last.ckpt. Before a SIGTERM every error is raised as before.
    `base`: the WandbLogger class to extend (vidgen.wandb_runs logs at step=global_step)."""
    from lightning.pytorch.loggers import WandbLogger

    class _Logger(base or WandbLogger):
        def log_metrics(self, metrics, step=None) -> None:
            try:
                super().log_metrics(metrics, step)
            except Exception:
                if STATE.received != signal.SIGTERM:
                    raise

    return _Logger(**kwargs)
