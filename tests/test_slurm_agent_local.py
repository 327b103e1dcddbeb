"""`slurm/sweep_agent.sh --local SWEEP_FILE N`: array task i runs row i of the sweep, once."""

from __future__ import annotations

import json

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
