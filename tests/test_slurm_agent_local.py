"""`slurm/sweep_agent.sh --local SWEEP_FILE N`: array task i runs row i of the sweep, once."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

from vidgen.runs import read_summary
from vidgen.slurm_agent import RECORD_FILE, local_task
from vidgen.sweeps.agent import plan
from vidgen.sweeps.schema import load_sweep

SWEEP = "sweeps/jdm/table3_mask_quality.yaml"


def test_array_task_runs_its_own_row_and_a_rerun_trains_nothing(tmp_path, monkeypatch, capsys):
    extra = f"preset=smoke logger=none run.root={tmp_path}"
    monkeypatch.setenv("VIDGEN_LOCAL_SWEEP_ARGS", extra)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    rows = plan(load_sweep(SWEEP), extra.split())
    assert local_task(SWEEP) == 0
    done, untouched = rows[1].run_dir, rows[0].run_dir
    assert read_summary(done)["status"] == "completed" and read_summary(done)["exp"] == "jdm_cogvideox"
    assert not untouched.exists()  # task 1 ran row 1 only
    record = json.loads((done / RECORD_FILE).read_text())
    assert record["overrides"] == rows[1].overrides
    mtime = (done / "summary.json").stat().st_mtime_ns
    assert local_task(SWEEP) == 0  # requeued or rerun: the row is complete, nothing trains
    assert (done / "summary.json").stat().st_mtime_ns == mtime
    assert "already completed" in capsys.readouterr().out
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    assert local_task(SWEEP) == 0 and "only 2 row(s)" in capsys.readouterr().out


SWEEP_SH = Path(__file__).resolve().parents[1] / "slurm" / "sweep_agent.sh"


def _stub_sbatch(tmp_path: Path) -> dict[str, str]:
    """A fake `sbatch` first on PATH: records its arguments and VIDGEN_LOCAL_SWEEP_ARGS, submits nothing."""
    stub = tmp_path / "bin" / "sbatch"
    stub.parent.mkdir()
    stub.write_text(
        f'#!/bin/bash\necho "$*" > {tmp_path}/args\necho "$VIDGEN_LOCAL_SWEEP_ARGS" > {tmp_path}/env\n'
    )
    stub.chmod(0o755)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "VIDGEN_LOCAL_SWEEP_ARGS"
    }
    return {**env, "PATH": f"{stub.parent}:{env['PATH']}"}


def test_sweep_agent_sh_takes_overrides_after_a_double_dash_from_any_folder(tmp_path):
    env = _stub_sbatch(tmp_path)
    sweep = Path(__file__).resolve().parents[1] / SWEEP
    work = tmp_path / "elsewhere"  # outside the repository; the sweep file given relative to it
    work.mkdir()
    relative = os.path.relpath(sweep, work)
    cmd = [
        "bash",
        str(SWEEP_SH),
        "--gpus-per-node=0",
        "--local",
        relative,
        "2",
        "--",
        "preset=smoke",
        "run.root=/tmp/x y",
    ]
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    args = (tmp_path / "args").read_text().split()
    assert args == ["--array=0-1", "--gpus-per-node=0", str(SWEEP_SH), "--local", f"{work}/{relative}"]
    assert shlex.split((tmp_path / "env").read_text()) == ["preset=smoke", "run.root=/tmp/x y"]


def test_sweep_agent_sh_refuses_overrides_for_a_wandb_sweep(tmp_path):
    env = _stub_sbatch(tmp_path)
    res = subprocess.run(
        ["bash", str(SWEEP_SH), "team/vidgen/abc", "--", "preset=smoke"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and not (tmp_path / "args").exists()
    assert "overrides after -- apply to --local sweeps" in res.stderr and "usage" not in res.stderr
