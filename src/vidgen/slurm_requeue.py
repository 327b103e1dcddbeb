"""Preemption on SLURM: on SIGUSR1, save at a step boundary all ranks agree on, requeue, stop."""

from __future__ import annotations

import os
import signal
import subprocess

import lightning as L
import torch


def _slurm_job_id() -> str:
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array_job}_{task}" if array_job and task else os.environ["SLURM_JOB_ID"]


class SlurmRequeue(L.Callback):
    """Save, requeue, stop on SIGUSR1 (slurm/train.sh: `--signal=SIGUSR1@90` before the time limit).

    The handler only sets a flag. After each optimizer step every rank all-reduces the flag
    (max), so all ranks act on the same step: save `<run.dir>/hpc_ckpt_N.ckpt` (Lightning's
    name; vidgen.runs.last_checkpoint resumes from the newest checkpoint), rank 0 runs
    `scontrol requeue <job>`, and training stops. The requeued job has the same job id, hence
    the same run folder and W&B run; metrics.csv is cut back to the saved step, so no step
    appears twice.
    """

    def __init__(self, sig: int = signal.SIGUSR1):
        self.sig = sig
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        self.requested = True

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._previous = signal.signal(self.sig, self._handler)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._previous is not None:
            signal.signal(self.sig, self._previous)
            self._previous = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches != 0:
            return
        flag = torch.tensor(float(self.requested), device=pl_module.device)
        if float(trainer.strategy.reduce(flag, reduce_op="max")) < 1:
            return
        self.requested = False
        path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            job = _slurm_job_id()
            res = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            status = "requeued" if res.returncode == 0 else f"requeue failed: {res.stderr.strip()}"
            print(f"SIGUSR1 at step {trainer.global_step}: saved {path}; job {job} {status}", flush=True)
        trainer.should_stop = True
