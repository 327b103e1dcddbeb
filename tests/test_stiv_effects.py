"""Shapes-world effects of STIV part 2 (benchmarks/stiv_frame_replacement.py), at a few steps.

The full-length numbers are recorded in benchmarks/results/stiv_frame_replacement.json; this test
checks the exact part (frame 0 is the condition, bit for bit, in every TI2V sample) and that every
number is recorded."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "benchmarks" / "stiv_frame_replacement.py"


@pytest.mark.slow
def test_frame_replacement_benchmark_records_every_number(tmp_path):
    spec = importlib.util.spec_from_file_location("stiv_frame_replacement", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "r.json"
    rc = bench.main(["--steps", "4", "--eval-samples", "2", "--eval-steps", "3", "--out", str(out)])
    record = json.loads(out.read_text())
    assert rc == 0 and record["frame0_exact"] is True
    for arm in ("t2v", "stiv", "stiv_jit"):
        assert 0.0 <= record["results"][arm]["t2v_detection_rate"] <= 1.0
    for arm in ("stiv", "stiv_jit"):
        r = record["results"][arm]
        assert r["ti2v_frame0_exact"] and r["ti2v_frame0_psnr_vs_codec_db"] == float("inf")
        # vs the image itself: the lossy shapes codec's round trip (~19 dB)
        assert r["ti2v_frame0_psnr_vs_image_db"] > 10
    assert isinstance(record["table6_direction_shown"], bool)
