"""`scontrol requeue` for this job: the last act of rank 0 after a SIGUSR1 (vidgen.preemption)."""

from __future__ import annotations

import os
import subprocess


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
