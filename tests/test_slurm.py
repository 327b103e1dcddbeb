"""slurm/train.sh and slurm/sweep_agent.sh on a real one-node SLURM cluster (tests/slurm_cluster.py).

CPU-only allocations (`--gpus-per-node=0 --ntasks-per-node=2`): two DDP ranks over gloo, launched
by srun, Lightning's SLURMEnvironment reading the ranks. The smoke preset's global batch of 2
splits over the 2 ranks (micro batch 1 each).
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
import yaml

from slurm_cluster import slurm_fixture
from vidgen.runs import read_metrics, read_summary

REPO = Path(__file__).resolve().parents[1]
TRAIN_SH = REPO / "slurm" / "train.sh"
SWEEP_SH = REPO / "slurm" / "sweep_agent.sh"
CPU_ALLOC = ("--gpus-per-node=0", "--ntasks-per-node=2")
SMOKE = ("exp=ft_cogvideox", "preset=smoke")

slurm = slurm_fixture()
pytestmark = pytest.mark.timeout(300)


def _log(slurm, job: str, folder: Path) -> str:
    path = slurm.job_field(job, "StdOut")
    return Path(path).read_text() if path and Path(path).is_file() else f"(no log for job {job} in {folder})"


def _wait_for_rows(run: Path, rows: int, slurm, job: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(read_metrics(run)) >= rows:
            return
        if slurm.state_of(job) not in ("PENDING", "RUNNING", "CONFIGURING"):
            break
        time.sleep(0.3)
    raise AssertionError(f"run {run} never reached {rows} steps:\n{_log(slurm, job, run)}")


def _steps(run: Path) -> list[int]:
    return [int(r["step"]) for r in read_metrics(run)]


def test_cpu_allocation_trains_with_two_ranks(slurm, tmp_path):
    job = slurm.sbatch(*CPU_ALLOC, str(TRAIN_SH), *SMOKE, f"run.root={tmp_path / 'runs'}", cwd=tmp_path)
    state = slurm.wait(job)
    run = tmp_path / "runs" / "ft_cogvideox" / f"slurm-{job}"  # the run folder is named by the job
    log = _log(slurm, job, tmp_path)
    assert state == "COMPLETED", log
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["world_size"] == 2 and summary["num_nodes"] == 1
    assert _steps(run) == list(range(1, 9))
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["trainer"]["devices"] == 2 and config["trainer"]["accelerator"] == "cpu"
    assert "2 task(s), accelerator=cpu" in log and (tmp_path / f"slurm-vidgen-{job}.out").is_file()


def test_sigusr1_saves_requeues_and_resumes_the_same_run(slurm, tmp_path):
    steps = 40
    job = slurm.sbatch(
        *CPU_ALLOC, str(TRAIN_SH), *SMOKE, f"train.max_steps={steps}", "train.checkpoint_every=1000",
        f"run.root={tmp_path / 'runs'}", cwd=tmp_path,
    )
    run = tmp_path / "runs" / "ft_cogvideox" / f"slurm-{job}"
    _wait_for_rows(run, 6, slurm, job)
    wandb_id = (run / "wandb_id").read_text()
    # what --signal=SIGUSR1@90 does before the time limit: SIGUSR1 to every task of the job step
    slurm.run("scancel", "--signal=USR1", job)
    state = slurm.wait(job, timeout=240)
    log = _log(slurm, job, tmp_path)
    assert state == "COMPLETED", log
    assert int(slurm.job_field(job, "Restarts")) >= 1, log  # requeued by Lightning (scontrol requeue)
    assert list(run.glob("hpc_ckpt_*.ckpt")), log  # saved on the signal (no periodic checkpoint before it)
    assert "SIGUSR1 at step" in log and "requeued" in log
    assert "resuming from" in log and "hpc_ckpt_1.ckpt" in log
    assert _steps(run) == list(range(1, steps + 1))  # no step twice, ends at the target
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["global_step"] == steps
    assert summary["restarts"] >= 1 and summary["world_size"] == 2
    assert (run / "wandb_id").read_text() == wandb_id  # the same W&B run
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) >= 2 and all(p.name.endswith(wandb_id) for p in offline)


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
    res = slurm.run("bash", str(SWEEP_SH), *CPU_ALLOC, "team/vidgen/stubsweep", "1", env=slurm.env(env), cwd=tmp_path)
    job = res.stdout.strip().split()[-1]
    task = f"{job}_0"
    run = tmp_path / "sweeps" / "team_vidgen_stubsweep" / f"slurm-{task}"
    _wait_for_rows(run, 5, slurm, task)
    record = json.loads((run / "agent_command.json").read_text())
    assert record["overrides"][:2] == ["exp=ft_cogvideox", "preset=smoke"]  # W&B's -- stripped
    assert record["env"]["WANDB_RUN_ID"] == "sweeprun01"
    slurm.run("scontrol", "requeue", task)  # preempted / node lost: the task starts again from the top
    state = slurm.wait(task, timeout=240)
    log = _log(slurm, task, tmp_path)
    assert state == "COMPLETED", log
    assert int(slurm.job_field(task, "Restarts")) >= 1
    assert "requeued (restart 1): resuming its own run" in log
    assert (tmp_path / "agent_calls.log").read_text().splitlines() == ["agent --count 1 team/vidgen/stubsweep"]
    assert _steps(run) == list(range(1, steps + 1))
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["restarts"] >= 1 and summary["world_size"] == 2
    assert (run / "wandb_id").read_text() == "sweeprun01"  # the sweep's W&B run, both times


def test_deepspeed_on_a_cpu_allocation_fails_with_a_clear_message(slurm, tmp_path):
    job = slurm.sbatch(
        "--gpus-per-node=0", "--ntasks-per-node=1", str(TRAIN_SH), "exp=ft_cogvideox", "preset=smoke",
        "strategy=deepspeed_zero2", f"run.root={tmp_path / 'runs'}", cwd=tmp_path,
    )
    assert slurm.wait(job) == "FAILED"
    log = _log(slurm, job, tmp_path)
    assert "strategy=deepspeed_zero2 needs CUDA GPUs" in log and "Traceback" not in log
