"""slurm/train.sh and slurm/sweep_agent.sh on a real one-node SLURM cluster (tests/slurm_cluster.py).

CPU-only allocations (`--gpus-per-node=0 --ntasks-per-node=2`): two DDP ranks over gloo, launched
by srun, Lightning's SLURMEnvironment reading the ranks. The smoke preset's global batch of 2
splits over the 2 ranks (micro batch 1 each). Signals are sent as SLURM sends them: `scancel
--signal=USR1` reaches every task of the job step, like `--signal=SIGUSR1@90` before the time limit.
The two-node cluster's tests are in tests/test_slurm_multinode.py.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
import torch
import yaml

from slurm_cluster import slurm_fixture
from vidgen.report.wandb_offline import read_run
from vidgen.runs import read_metrics, read_summary

REPO = Path(__file__).resolve().parents[1]
TRAIN_SH = REPO / "slurm" / "train.sh"
SWEEP_SH = REPO / "slurm" / "sweep_agent.sh"
CPU_ALLOC = ("--gpus-per-node=0", "--ntasks-per-node=2")
SMOKE = ("exp=ft_cogvideox", "preset=smoke")
STEPS = 40  # long enough to signal mid-run; the smoke steps take ~0.1-0.3 s each
LONG = (f"train.max_steps={STEPS}", "train.checkpoint_every=1000", "train.eval_at_end=false")

slurm = slurm_fixture()
pytestmark = pytest.mark.timeout(900)  # generous: a shared 2-core machine can take minutes per start


# ----------------------------------------------------------------------------- helpers
def job_log(slurm, job: str) -> str:
    path = slurm.job_field(job, "StdOut")
    return Path(path).read_text() if path and Path(path).is_file() else f"(no log for job {job})"


def wait_for_rows(run: Path, rows: int, slurm, job: str, timeout: float = 600) -> int:
    """Wait until metrics.csv has >= rows rows while the job runs; return the row count."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        n = len(read_metrics(run))
        if n >= rows:
            return n
        if slurm.state_of(job) not in ("PENDING", "RUNNING", "CONFIGURING", "REQUEUED"):
            break
        time.sleep(0.2)
    raise AssertionError(f"run {run} never reached {rows} steps:\n{job_log(slurm, job)}")


def wait_for_step(slurm, job: str, timeout: float = 600) -> None:
    """Wait until the job's srun step exists (its tasks are starting)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if slurm.run("squeue", "-h", "-s", "-j", job, check=False).stdout.strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job} never started its step:\n{job_log(slurm, job)}")


def wait_for_requeue(slurm, job: str, restarts: int, timeout: float = 300) -> None:
    """Wait until the job has been requeued `restarts` times and is waiting (PENDING)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if int(slurm.job_field(job, "Restarts") or 0) >= restarts and slurm.state_of(job) == "PENDING":
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job} was not requeued ({restarts}):\n{job_log(slurm, job)}")


def losses(run: Path) -> list[tuple[int, float, float]]:
    return [(int(r["step"]), r["train/loss"], r["lr"]) for r in read_metrics(run)]


def wandb_steps(run: Path) -> list[int]:
    """The optimizer steps with a train/loss row, over every W&B segment of the run, read from the
    offline `.wandb` files through wandb's own protobuf records (vidgen.report.wandb_offline)."""
    steps = []
    for path in sorted((run / "wandb").glob("offline-run-*/run-*.wandb")):
        steps += [int(h["trainer/global_step"]) for h in read_run(path).history if "train/loss" in h]
    return sorted(steps)


def assert_clean_requeue(slurm, job: str) -> None:
    """No task ended by a signal: SLURM never had to SIGKILL the step after KillWait."""
    log = job_log(slurm, job)
    assert "Killed" not in log and "Terminated" not in log and "Traceback" not in log, log
    for path in slurm.state.glob("slurmd-*.log"):
        assert not [ln for ln in path.read_text().splitlines() if "SIGKILL" in ln and job in ln], (
            path.read_text()
        )


def submit(slurm, tmp_path: Path, *overrides: str, alloc=CPU_ALLOC) -> tuple[str, Path]:
    job = slurm.sbatch(
        *alloc, str(TRAIN_SH), *SMOKE, *overrides, f"run.root={tmp_path / 'runs'}", cwd=tmp_path
    )
    return job, tmp_path / "runs" / "ft_cogvideox" / f"slurm-{job}"  # the run folder is named by the job


@pytest.fixture(scope="module")
def straight(slurm, tmp_path_factory):
    """An uninterrupted 2-rank run of STEPS steps: the reference for every resumed run."""
    tmp = tmp_path_factory.mktemp("straight")
    job, run = submit(slurm, tmp, *LONG)
    assert slurm.wait(job, timeout=900) == "COMPLETED", job_log(slurm, job)
    return job, run


# ----------------------------------------------------------------------------- default suite
def test_cpu_allocation_trains_with_two_ranks(slurm, straight, tmp_path):
    job, run = straight
    log = job_log(slurm, job)
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["world_size"] == 2 and summary["num_nodes"] == 1
    assert [s for s, _, _ in losses(run)] == list(range(1, STEPS + 1))
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["trainer"]["devices"] == 2 and config["trainer"]["accelerator"] == "cpu"
    assert "2 task(s), accelerator=cpu" in log and Path(slurm.job_field(job, "StdOut")).is_file()
    assert "weights_only" not in log  # Lightning's "`weights_only` was not set" on every save, every rank
    assert slurm.job_field(job, "ExitCode") == "0:0"


def test_sigusr1_requeues_cleanly_and_resumes_exactly_with_full_wandb_history(slurm, straight, tmp_path):
    job, run = submit(slurm, tmp_path, *LONG)
    wait_for_rows(run, 6, slurm, job)
    wandb_id = (run / "wandb_id").read_text()
    slurm.run("scancel", "--signal=USR1", job)  # what --signal=SIGUSR1@90 does before the time limit
    wait_for_requeue(slurm, job, restarts=1)
    summary = read_summary(run)  # during the wait: the real step, not "running, step 0"
    assert summary["status"] == "requeued" and summary["stop_signal"] == "SIGUSR1", summary
    assert summary["global_step"] == len(read_metrics(run)) >= 6
    assert slurm.wait(job, timeout=900) == "COMPLETED", job_log(slurm, job)
    log = job_log(slurm, job)
    assert (
        f"SIGUSR1 at step {summary['global_step']}: saving checkpoints/last.ckpt; stopping (requeued)" in log
    )
    assert f"job {job} requeued (stopped at step {summary['global_step']})" in log
    assert "resuming from" in log and "last.ckpt" in log
    assert_clean_requeue(slurm, job)
    assert losses(run) == losses(straight[1])  # every loss and lr bit-identical to the straight run
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["global_step"] == STEPS and summary["restarts"] == 1
    assert (run / "wandb_id").read_text() == wandb_id  # the same W&B run, two segments
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(wandb_id in p.name for p in offline)  # "-1" is appended within one second
    assert wandb_steps(run) == list(range(1, STEPS + 1))  # nothing lost at the requeue, nothing twice
    assert not list(run.glob("hpc_ckpt_*")) and not list(run.rglob("*.tmp"))


def _stub_agent(tmp_path: Path, steps: int) -> Path:
    """A fake `wandb` that, like `wandb agent --count 1`, runs the sweep's command for one run."""
    stub = tmp_path / "bin" / "wandb"
    stub.parent.mkdir()
    stub.write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {tmp_path}/agent_calls.log\n'
        "export WANDB_RUN_ID=sweeprun01 WANDB_SWEEP_ID=stubsweep\n"
        f"exec vidgen train {' '.join('--' + o for o in SMOKE[2:])} {' '.join(SMOKE[:2])} "
        f"train.max_steps={steps} optim.lr=1e-4\n"
    )
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return stub


def test_requeued_sweep_array_task_resumes_its_own_run(slurm, tmp_path):
    steps = 24
    stub = _stub_agent(tmp_path, steps)
    env = {**os.environ, "VIDGEN_WANDB": str(stub), "VIDGEN_SWEEP_ROOT": str(tmp_path / "sweeps")}
    res = slurm.run(
        "bash", str(SWEEP_SH), *CPU_ALLOC, "team/vidgen/stubsweep", "1", env=slurm.env(env), cwd=tmp_path
    )
    job = res.stdout.strip().split()[-1]
    task = f"{job}_0"
    run = tmp_path / "sweeps" / "team_vidgen_stubsweep" / f"slurm-{task}"
    wait_for_rows(run, 5, slurm, task)
    record = json.loads((run / "agent_command.json").read_text())
    assert record["overrides"][:2] == ["exp=ft_cogvideox", "preset=smoke"]  # W&B's -- stripped
    assert record["env"]["WANDB_RUN_ID"] == "sweeprun01"
    slurm.run("scontrol", "requeue", task)  # preempted / node lost: the task starts again from the top
    state = slurm.wait(task, timeout=900)
    log = job_log(slurm, task)
    assert state == "COMPLETED", log
    assert int(slurm.job_field(task, "Restarts")) >= 1
    assert "requeued (restart 1): resuming its own run" in log
    assert (
        "Killed" not in log and "interrupted by SIGTERM at step" in log
    )  # the requeue's SIGTERM: a clean stop
    assert (tmp_path / "agent_calls.log").read_text().splitlines() == [
        "agent --count 1 team/vidgen/stubsweep"
    ]
    assert [s for s, _, _ in losses(run)] == list(range(1, steps + 1))
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["restarts"] >= 1 and summary["world_size"] == 2
    assert (run / "wandb_id").read_text() == "sweeprun01"  # the sweep's W&B run, both times


def test_deepspeed_on_a_cpu_allocation_fails_with_a_clear_message(slurm, tmp_path):
    job, _ = submit(
        slurm, tmp_path, "strategy=deepspeed_zero2", alloc=("--gpus-per-node=0", "--ntasks-per-node=1")
    )
    assert slurm.wait(job, timeout=900) == "FAILED"
    log = job_log(slurm, job)
    assert "strategy=deepspeed_zero2 needs CUDA GPUs" in log and "Traceback" not in log


# ----------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_sigusr1_during_startup_requeues_without_saving(slurm, straight, tmp_path):
    job, run = submit(slurm, tmp_path, *LONG)
    wait_for_step(slurm, job)
    deadline = time.time() + 600
    while not (run / "config.yaml").is_file() and time.time() < deadline:  # the tasks run python
        time.sleep(0.05)
    slurm.run("scancel", "--signal=USR1", job)  # they are building the model / starting DDP
    assert slurm.wait(job, timeout=900) == "COMPLETED", job_log(slurm, job)
    log = job_log(slurm, job)
    assert int(slurm.job_field(job, "Restarts")) == 1, log  # requeued, not FAILED (exit 138)
    assert "SIGUSR1 at step 0: nothing new to save; stopping (requeued)" in log
    assert "resuming from" not in log  # nothing was saved: the second start begins at step 0
    assert_clean_requeue(slurm, job)
    assert losses(run) == losses(straight[1])


@pytest.mark.slow
def test_sigusr1_after_training_ends_the_job_completed(slurm, tmp_path):
    job, run = submit(slurm, tmp_path, "train.max_steps=12", "train.eval_at_end=true")
    wait_for_rows(run, 12, slurm, job)
    while slurm.state_of(job) == "RUNNING":  # final evaluation, W&B finish, exit: signal all along
        slurm.run("scancel", "--signal=USR1", job, check=False)
        time.sleep(0.3)
    assert slurm.wait(job, timeout=900) == "COMPLETED", job_log(
        slurm, job
    )  # was FAILED (exit 138) with summary completed
    assert slurm.job_field(job, "ExitCode") == "0:0" and int(slurm.job_field(job, "Restarts")) == 0
    assert read_summary(run)["status"] == "completed"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_preemptions_in_one_job_keep_every_step_in_wandb(slurm, straight, tmp_path):
    job, run = submit(slurm, tmp_path, *LONG)
    first = wait_for_rows(run, 6, slurm, job)
    slurm.run("scancel", "--signal=USR1", job)
    wait_for_requeue(slurm, job, restarts=1)
    first = read_summary(run)["global_step"]
    wait_for_rows(run, first + 6, slurm, job)
    slurm.run("scancel", "--signal=USR1", job)
    wait_for_requeue(slurm, job, restarts=2)
    second = read_summary(run)["global_step"]
    assert read_summary(run)["status"] == "requeued" and first < second < STEPS
    assert slurm.wait(job, timeout=900) == "COMPLETED", job_log(slurm, job)
    assert_clean_requeue(slurm, job)
    assert losses(run) == losses(straight[1])
    assert len(list((run / "wandb").glob("offline-run-*"))) == 3
    assert wandb_steps(run) == list(range(1, STEPS + 1))  # segments 1 and 2 held 0 records before the fix
    assert read_summary(run)["restarts"] == 2


@pytest.mark.slow
def test_sigterm_interrupts_with_the_real_step_and_exit_143(slurm, tmp_path):
    job, run = submit(slurm, tmp_path, *LONG)
    wait_for_rows(run, 6, slurm, job)
    slurm.run("scancel", "--signal=TERM", job)  # what scancel / a hard kill sends first
    slurm.wait(job, timeout=900)
    log = job_log(slurm, job)
    summary = read_summary(run)
    assert summary["status"] == "interrupted" and summary["stop_signal"] == "SIGTERM", log
    assert summary["global_step"] == len(read_metrics(run)) and "error" not in summary
    assert f"interrupted by SIGTERM at step {summary['global_step']}; the run resumes from" in log
    assert "Rerun:" in log and f"run.dir={run}" in log and "Killed" not in log
    assert (
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
        == summary["global_step"]
    )
    assert slurm.job_field(job, "ExitCode").split(":")[0] == "143"
    # No W&B check: SLURM's SIGTERM reaches wandb's service too; what it had not written is lost.
