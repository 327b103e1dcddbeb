"""benchmarks/gpu/run_all.sh: refuses without CUDA; its CPU dry run runs every part at tiny size."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "benchmarks" / "gpu"


def _run_all():
    sys.path.insert(0, str(GPU))
    try:
        spec = importlib.util.spec_from_file_location("vidgen_bench_run_all", GPU / "run_all.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(GPU))


def test_refuses_clearly_without_cuda(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "results"
    assert _run_all().main(["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU; none is visible here" in err and "run_all.sh --dry-run" in err
    assert not out.exists()  # nothing written


def test_markdown_has_the_gpu_mfu_and_every_method_line():
    run_all = _run_all()
    record = {
        "date": "2026-01-01T00:00:00+00:00", "commit": "abc", "command": "bash benchmarks/gpu/run_all.sh",
        "tiny": False, "machine": {"gpu": "NVIDIA H200", "torch": "2.13.0", "cuda": "12.8"},
        "parts": {
            "matmul_peak": {"status": "ok", "wall_s": 5.0, "result": {"tflops": 800.0, "n": 8192, "dtype": "bfloat16"}},
            "train_step:ddp": {"status": "ok", "wall_s": 60.0, "result": {
                "backbone": "cogvideox-2b (real)", "peak_memory_gib": 40.0, "step_time_s": 2.0,
                "tokens_per_s": 8775.0, "achieved_tflops": 200.0}},
            "train_step:deepspeed_zero2": {"status": "failed", "wall_s": 3.0, "error": "Traceback\nOOM | here"},
            "method_overhead:jdm_cogvideox": {"status": "ok", "wall_s": 30.0, "result": {
                "resolution": {"frames": 49, "height": 480, "width": 720},
                "backbone": {"fwd_ms": 100.0}, "method": {"fwd_ms": 102.0},
                "overhead": {"params_pct": 0.01, "fwd_flops_pct": 0.5, "fwd_time_pct": 2.0}}},
        },
    }  # fmt: skip
    run_all.derive(record)
    assert record["parts"]["train_step:ddp"]["result"]["mfu"] == 0.25  # 200 / 800 TFLOP/s
    md = run_all.to_markdown(record)
    assert md.startswith("# GPU benchmarks: NVIDIA H200")
    assert "| ddp | cogvideox-2b (real) | 40.0 | 2.000 | 8,775 | 200.0 | 25.0% |" in md
    assert "| jdm | jdm_cogvideox | 49x480x720 | +0.01 | +0.50 | 100.0 | 102.0 | +2.00 | +2.14 |" in md
    for _, exp, _, _ in run_all.METHOD_OVERHEAD:  # a line per method, run or not
        assert f"| {exp} |" in md
    assert "| train_step:deepspeed_zero2 | failed | 3.0 | OOM / here |" in md


@pytest.mark.slow
def test_cpu_dry_run_runs_every_part(tmp_path):
    out = tmp_path / "results"
    env = {**os.environ, "VIDGEN_PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(GPU / "run_all.sh"), "--dry-run", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((out / "gpu_cpu_dry_run.json").read_text())
    status = {name: part["status"] for name, part in record["parts"].items()}
    assert status.pop("train_step:deepspeed_zero2") == "skipped"
    assert set(status.values()) == {"ok"}, record["parts"]
    step = record["parts"]["train_step:ddp"]["result"]
    assert step["step_time_s"] > 0 and step["tokens_per_s"] > 0 and 0 < step["mfu"]
    assert record["tiny"] is True and "tiny (dry run)" in (out / "gpu_cpu_dry_run.md").read_text()
