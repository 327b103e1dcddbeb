"""SIGUSR1 / SIGTERM from process start to exit (vidgen.preemption), in-process on the CPU.

A callback sends the signal to this process at a chosen point (start-up, step k, after training);
`vidgen.train.main` runs as `python -m vidgen.train` would. The requeue itself (scontrol) is
recorded instead of run; tests/test_slurm.py runs the same paths on a real SLURM cluster.
"""

from __future__ import annotations

import os
import signal

import lightning as L
import pytest
import torch

from vidgen import preemption
from vidgen.report.wandb_offline import read_run
from vidgen.runs import read_metrics, read_summary
from vidgen.slurm_requeue import StopOnSignal, sigterm_tolerant_wandb_logger
from vidgen.train import main


class SignalAt(L.Callback):
    """Send `sig` to this process at `when`: "startup" (on_fit_start), a step number, or "end"."""

    def __init__(self, sig: int, when):
        self.sig, self.when = sig, when

    def on_fit_start(self, trainer, pl_module):
        if self.when == "startup":
            os.kill(os.getpid(), self.sig)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.when:
            os.kill(os.getpid(), self.sig)

    def on_fit_end(self, trainer, pl_module):
        if self.when == "end":
            os.kill(os.getpid(), self.sig)


@pytest.fixture
def signals(monkeypatch):
    """Schedule signals per training call; record requeues; restore this process's handlers after."""
    saved = {sig: signal.getsignal(sig) for sig in preemption.HANDLED}
    schedule: list[tuple[int, object] | None] = []
    requeues: list[int | None] = []

    def callbacks(cfg, run_dir):
        planned = schedule.pop(0) if schedule else None
        if planned is not None and not isinstance(planned, L.Callback):
            planned = SignalAt(*planned)
        return [*([planned] if planned else []), StopOnSignal(run_dir, requeue=True)]

    monkeypatch.setattr("vidgen.train.cluster_callbacks", callbacks)
    monkeypatch.setattr("vidgen.slurm_requeue.requeue_job", lambda step: requeues.append(step) or True)
    yield schedule, requeues
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    preemption._reset()


def _losses(run_dir):
    return [(int(r["step"]), r["train/loss"], r["lr"]) for r in read_metrics(run_dir)]


def _history_steps(run_dir):
    """Optimizer steps with a train/loss row in every W&B segment of the run (wandb's protobuf records)."""
    steps = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        steps += [int(h["trainer/global_step"]) for h in read_run(path).history if "train/loss" in h]
    return steps


def test_sigusr1_during_startup_requeues_before_the_first_step_saving_nothing(
    smoke, tmp_path, signals, capsys
):
    schedule, requeues = signals
    schedule.append((signal.SIGUSR1, "startup"))
    run = tmp_path / "run"
    assert (
        main(smoke("logger=none")) == 0
    )  # was: killed by SIGUSR1's default action (exit 138), never requeued
    assert requeues == [0]
    summary = read_summary(run)
    assert summary["status"] == "requeued" and summary["global_step"] == 0 and "error" not in summary
    assert not list(run.rglob("*.ckpt")) and read_metrics(run) == []
    assert "SIGUSR1 at step 0: nothing new to save; stopping (requeued)" in capsys.readouterr().out


@pytest.mark.slow
def test_sigusr1_mid_run_requeues_and_resumes_exactly_with_every_step_in_wandb(
    smoke, tmp_path, signals, capsys
):
    schedule, requeues = signals
    straight = tmp_path / "straight"
    assert main(smoke("logger=none", run_dir=straight)) == 0
    run = tmp_path / "run"
    argv = smoke("train.log_every=1")
    schedule += [(signal.SIGUSR1, 4), None]

    assert main(argv) == 0  # signal at step 4 (a periodic checkpoint step): saved once, requeued
    assert requeues == [4]
    summary = read_summary(run)
    assert (
        summary["status"] == "requeued"
        and summary["global_step"] == 4
        and summary["stop_signal"] == "SIGUSR1"
    )
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step=4.ckpt"]  # the periodic one is kept
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 4
    assert _history_steps(run) == [1, 2, 3, 4]  # W&B flushed before the requeue

    capsys.readouterr()
    assert main(argv) == 0  # resumes and completes
    assert "8/8" in capsys.readouterr().out  # the progress bar counts the whole run (was 8/4)
    assert requeues == [4] and read_summary(run)["status"] == "completed"
    assert _losses(run) == _losses(straight)  # every loss and lr bit-identical
    assert not list(run.glob("hpc_ckpt_*"))
    assert _history_steps(run) == list(range(1, 9))  # W&B: every step once over the two segments


def test_sigterm_mid_run_stops_records_interrupted_and_says_what_to_rerun(smoke, tmp_path, signals, capsys):
    schedule, requeues = signals
    schedule.append((signal.SIGTERM, 3))
    run = tmp_path / "run"
    assert main(smoke("train.log_every=1")) == preemption.EXIT_INTERRUPTED == 143
    summary = read_summary(run)
    assert (
        summary["status"] == "interrupted"
        and summary["global_step"] == 3
        and summary["stop_signal"] == "SIGTERM"
    )
    assert "error" not in summary and requeues == [] and not list(run.glob("hpc_ckpt_*"))
    err = capsys.readouterr().err
    assert (
        f"interrupted by SIGTERM at step 3; the run resumes from {run / 'checkpoints' / 'last.ckpt'}" in err
    )
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert f"vidgen train exp=ft_cogvideox preset=smoke train.log_every=1 run.dir={run}" in err
    assert _history_steps(run) == [1, 2, 3]  # flushed on the way out
    offline = read_run(next((run / "wandb").glob("offline-run-*/run-*.wandb")))
    assert offline.exit_code == 143


class SigtermThenWandbDies(SignalAt):
    """A hard kill: SIGTERM reaches wandb's service too, and the next W&B call fails."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if trainer.global_step == self.when:
            raise ConnectionResetError("Connection lost")


def test_a_failure_after_sigterm_is_recorded_interrupted_not_failed(smoke, tmp_path, signals, capsys):
    schedule, _ = signals
    schedule.append(SigtermThenWandbDies(signal.SIGTERM, 2))
    assert main(smoke("logger=none")) == 143  # no traceback
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "interrupted" and summary["global_step"] == 2 and "error" not in summary
    assert "interrupted by SIGTERM; the run starts again from step 0" in capsys.readouterr().err


def test_sigterm_during_startup_exits_143(smoke, tmp_path, signals, capsys):
    schedule, _ = signals
    schedule.append((signal.SIGTERM, "startup"))
    assert main(smoke("logger=none")) == 143
    assert "interrupted by SIGTERM during start-up" in capsys.readouterr().err
    assert read_metrics(tmp_path / "run") == []


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_signal_after_training_finishes_normally(smoke, tmp_path, signals, sig):
    schedule, requeues = signals
    schedule.append((sig, "end"))
    assert main(smoke("logger=none", "train.max_steps=2")) == 0
    assert read_summary(tmp_path / "run")["status"] == "completed" and requeues == []


def test_wandb_logger_survives_a_dead_service_only_after_sigterm(tmp_path, signals, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    def dead_service(self, metrics, step=None):
        raise ConnectionResetError("Connection lost")

    monkeypatch.setattr(WandbLogger, "log_metrics", dead_service)
    logger = sigterm_tolerant_wandb_logger(save_dir=str(tmp_path), offline=True)
    with pytest.raises(ConnectionResetError):  # before a SIGTERM: a real failure
        logger.log_metrics({"train/loss": 1.0}, step=1)
    preemption.STATE.received = signal.SIGTERM  # the job's SIGTERM reached wandb's service too
    logger.log_metrics({"train/loss": 1.0}, step=2)  # the stop goes on to save last.ckpt
