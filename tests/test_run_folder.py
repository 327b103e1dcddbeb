"""Run folders never lose or corrupt data (issue 8): metrics.csv, config.yaml, the lock, stuck runs,
damaged checkpoints and leftovers. Each test reproduces the fault (a kill at the bad moment, a
second process, a damaged file) on a seconds-long CPU run."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import torch

from vidgen import csv_table
from vidgen.checkpoints import CheckpointError, resume_checkpoint
from vidgen.config import load_config
from vidgen.errors import ConfigError, DataError
from vidgen.eval.callback import EvalCallback, read_eval
from vidgen.methods.base import DiffusionModule
from vidgen.run_folder import RunFolderError, clean_leftovers
from vidgen.run_lock import RunFolderBusy
from vidgen.runs import RunRecorder, read_metrics, read_summary
from vidgen.train import main as train_main
from vidgen.train import train


def _steps(run):
    return [int(r["step"]) for r in read_metrics(run)]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- 1. metrics.csv
def test_kill_during_the_resume_cut_of_metrics_csv_loses_no_rows(smoke, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(load_config(smoke("logger=none", "train.eval_at_end=false", run_dir=run)))
    assert _steps(run) == list(range(1, 9))
    before = (run / "metrics.csv").read_text()
    for name in ("last.ckpt", "step=8.ckpt"):  # resume from step 4: rows 5..8 must be cut
        (run / "checkpoints" / name).unlink()

    class Killed(Exception):
        pass

    def killed(self):
        raise Killed("killed while rewriting")

    with monkeypatch.context() as m:  # the kill lands after the header of the rewritten file
        m.setattr(csv.DictWriter, "writeheader", killed)
        with pytest.raises(Killed):
            train(load_config(smoke("logger=none", "train.eval_at_end=false", run_dir=run)))
    assert (run / "metrics.csv").read_text() == before  # the old file survives whole
    train(load_config(smoke("logger=none", "train.eval_at_end=false", run_dir=run)))
    assert _steps(run) == list(range(1, 9))


def test_damaged_metrics_csv_is_a_clear_error_and_a_torn_line_is_dropped(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,train/loss,lr\n1,0.5,0.1,0\n")  # the 3-column header over 4-column rows
    with pytest.raises(DataError, match=r"metrics.csv: line 2 has 4 fields but the header has 3.*mv "):
        read_metrics(tmp_path)
    path.write_text("step,train/loss\n1,0.5\n2,abc\n")
    with pytest.raises(DataError, match="line 3 holds a value that is not a number"):
        read_metrics(tmp_path)
    path.write_text("step,train/loss\n1,0.5\n2,0.25\n3,0.1")  # a kill during an append tore the last row
    assert read_metrics(tmp_path) == [{"step": 1.0, "train/loss": 0.5}, {"step": 2.0, "train/loss": 0.25}]
    csv_table.cut_after(path, 10)  # the resume repairs it: complete lines only
    assert path.read_text() == "step,train/loss\n1,0.5\n2,0.25\n"
    csv_table.append_row(path, {"step": 3, "train/loss": 0.125, "lr": 1.0})  # no new column mid-file
    assert path.read_text().splitlines()[-1] == "3,0.125"


def test_resume_into_a_damaged_metrics_csv_stops_before_training(smoke, tmp_path):
    run = tmp_path / "run"
    train(load_config(smoke("logger=none", "train.max_steps=2", run_dir=run)))
    (run / "metrics.csv").write_text("step,train/loss,lr\n1,0.5,0.1,0\n")
    summary, config = read_summary(run), (run / "config.yaml").read_bytes()
    with pytest.raises(DataError, match="line 2"):
        train(load_config(smoke("logger=none", "train.max_steps=4", run_dir=run)))
    assert read_summary(run) == summary and (run / "config.yaml").read_bytes() == config
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


# ----------------------------------------------------------------------------- 3. config.yaml
def test_resume_with_another_config_is_refused_and_changes_nothing(smoke, tmp_path):
    run = tmp_path / "run"
    train(load_config(smoke("logger=none", "train.max_steps=2", run_dir=run)))
    config, summary = (run / "config.yaml").read_bytes(), read_summary(run)
    for override, key in [
        ("optim.lr=1e-3", "optim.lr"),
        ("seed=1", "seed"),
        ("backbone=wan2.1-1.3b", "backbone.name"),
    ]:
        with pytest.raises(ConfigError, match=rf"Differing keys: .*{key}: .*run.accept_config_changes=true"):
            train(load_config(smoke("logger=none", "train.max_steps=4", override, run_dir=run)))
        assert (run / "config.yaml").read_bytes() == config and read_summary(run) == summary
    train(
        load_config(smoke("logger=none", "train.max_steps=3", "train.log_every=1", run_dir=run))
    )  # resumable
    assert read_summary(run)["global_step"] == 3 and not list(run.glob("config.resume-*.yaml"))
    train(
        load_config(
            smoke("logger=none", "train.max_steps=4", "seed=1", "run.accept_config_changes=true", run_dir=run)
        )
    )
    assert read_summary(run)["global_step"] == 4
    recorded = (run / "config.resume-1.yaml").read_text()
    assert "#   seed: 0 -> 1" in recorded and "seed: 1" in (run / "config.yaml").read_text()


def test_run_dir_that_is_a_file_or_read_only_is_a_clean_error(smoke, tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert train_main(smoke("logger=none", run_dir=afile)) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and afile.read_text() == "mine"
    assert train_main(smoke("logger=none", run_dir=afile / "run")) == 2
    assert "is a file, so the folder cannot be created" in capsys.readouterr().err
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode))
    assert train_main(smoke("logger=none", run_dir=ro / "run")) == 2  # root ignores chmod: fake the check
    assert "is not writable" in capsys.readouterr().err and not (ro / "run").exists()


def test_a_failed_start_leaves_a_new_run_dir_absent(smoke, tmp_path):
    run = tmp_path / "never"
    with pytest.raises(ConfigError):
        train(
            load_config(
                smoke("logger=none", "train.global_batch_size=3", "train.micro_batch_size=2", run_dir=run)
            )
        )
    assert not run.exists()


# ----------------------------------------------------------------------------- 4. the lock
def test_second_process_is_refused_and_a_dead_holders_lock_is_taken_over(smoke, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from vidgen.run_lock import RunLock; RunLock({str(run)!r}).acquire(); print(1, flush=True);"
         "import time; time.sleep(120)"],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == b"1"
        with pytest.raises(
            RunFolderBusy, match=rf"in use by pid {holder.pid} on host {socket.gethostname()}"
        ):
            train(load_config(smoke("logger=none", "train.max_steps=1", run_dir=run)))
        assert not (run / "metrics.csv").exists() and not (run / "config.yaml").exists()
    finally:
        holder.kill()  # SIGKILL: the holder never releases anything itself
        holder.wait()
    train(load_config(smoke("logger=none", "train.max_steps=1", run_dir=run)))  # stale lock taken over
    assert _steps(run) == [1]


# ----------------------------------------------------------------------------- 5. stuck "running"
def test_a_kill_after_the_final_checkpoint_is_completed_by_the_rerun(smoke, tmp_path, monkeypatch):
    monkeypatch.setattr(DiffusionModule, "evaluate", lambda self, dm: {"score": float(self.global_step)})
    run = tmp_path / "run"
    with monkeypatch.context() as m:  # the process dies after last.ckpt, before the end-of-training hooks
        m.setattr(RunRecorder, "on_train_end", lambda *a: None)
        m.setattr(EvalCallback, "on_train_end", lambda *a: None)
        train(load_config(smoke("logger=none", "train.max_steps=3", run_dir=run)))
    assert read_summary(run)["status"] == "running" and read_eval(run) == []
    train(load_config(smoke("logger=none", "train.max_steps=3", run_dir=run)))
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["global_step"] == 3 and summary["eval/score"] == 3.0
    assert summary["train/loss"] == read_metrics(run)[-1]["train/loss"]
    assert [r["step"] for r in read_eval(run)] == [3.0] and _steps(run) == [1, 2, 3]
    train(load_config(smoke("logger=none", "train.max_steps=3", run_dir=run)))  # a closed run stays closed
    assert len(read_eval(run)) == 1 and read_summary(run)["status"] == "completed"


# ----------------------------------------------------------------------------- 6-7. checkpoints
def test_a_truncated_last_ckpt_falls_back_to_a_periodic_one(smoke, tmp_path, capsys):
    run = tmp_path / "run"
    train(load_config(smoke("logger=none", "train.eval_at_end=false", run_dir=run)))
    ckpts = run / "checkpoints"
    for name in ("last.ckpt", "step=8.ckpt"):  # e.g. a full disk cut both short
        data = (ckpts / name).read_bytes()
        (ckpts / name).write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    train(load_config(smoke("logger=none", "train.eval_at_end=false", run_dir=run)))
    err = capsys.readouterr().err
    assert "last.ckpt is not a readable checkpoint" in err and "resuming from" in err and "step=4.ckpt" in err
    assert {p.name for p in ckpts.iterdir()} == {
        "last.ckpt",
        "step=4.ckpt",
        "step=8.ckpt",
    }  # no step=8-v1.ckpt
    assert torch.load(ckpts / "step=8.ckpt", weights_only=True)["global_step"] == 8
    assert _steps(run) == list(range(1, 9)) and read_summary(run)["status"] == "completed"


def test_no_loadable_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_text("not a checkpoint")
    with pytest.raises(
        CheckpointError, match="no loadable checkpoint in .*last.ckpt is not a readable checkpoint"
    ):
        resume_checkpoint(tmp_path)


def test_leftovers_of_dead_writers_and_duplicate_steps_are_cleaned(tmp_path):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    dead, alive = _dead_pid(), os.getppid()
    for name in (f".last.ckpt.{dead}.tmp", f".step=7.ckpt.{dead}.tmp", f".step=8.ckpt.{alive}.tmp"):
        (ckpts / name).write_bytes(b"x" * 100)
    (tmp_path / f".summary.json.{dead}.tmp").write_text("{}")
    for i, name in enumerate(("step=7.ckpt", "step=7-v1.ckpt", "step=7-v2.ckpt", "step=4.ckpt")):
        (ckpts / name).write_text(name)
        os.utime(ckpts / name, ns=(time.time_ns(), time.time_ns() + i * 10**9))
    clean_leftovers(tmp_path)
    assert sorted(p.name for p in ckpts.iterdir()) == [
        f".step=8.ckpt.{alive}.tmp",
        "step=4.ckpt",
        "step=7.ckpt",
    ]
    assert (ckpts / "step=7.ckpt").read_text() == "step=7-v2.ckpt"  # the newest copy is kept
    assert not list(tmp_path.glob(".*.tmp"))


def test_start_up_removes_a_killed_writes_temp_file(smoke, tmp_path):
    run = tmp_path / "run"
    train(load_config(smoke("logger=none", "train.max_steps=1", run_dir=run)))
    leftover = run / "checkpoints" / f".last.ckpt.{_dead_pid()}.tmp"
    shutil.copy(run / "checkpoints" / "last.ckpt", leftover)
    train(load_config(smoke("logger=none", "train.max_steps=2", run_dir=run)))
    assert not leftover.exists() and not list(run.rglob("*.tmp"))


def test_run_folder_error_is_a_vidgen_error():
    from vidgen.errors import VidgenError

    assert issubclass(RunFolderError, VidgenError) and issubclass(RunFolderBusy, VidgenError)
