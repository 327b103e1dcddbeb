"""Shapes-world effects of STIV part 2 (benchmarks/stiv_frame_replacement.py), at a few steps.

The full-length numbers are recorded in benchmarks/results/stiv_frame_replacement.json; this test
checks what a few steps can show: frame 0 is the condition, bit for bit, in every TI2V sample; every
arm starts from the same init; the faithfulness score is discriminative (the data's codec round trip
scores 1, the untrained init 0); every number is recorded."""

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
    argv = ["--steps", "4", "--batch", "2", "--eval-samples", "4", "--eval-steps", "3", "--out", str(out)]
    rc = bench.main(argv)
    record = json.loads(out.read_text())
    assert rc == 0 and record["frame0_exact"] is True and record["same_init"] is True
    results = record["results"]
    assert results["data"]["round_trip"]["faithful_rate"] == 1.0
    assert results["untrained"]["t2v"]["faithful_rate"] == 0.0
    for arm in ("t2v", "stiv", "stiv_jit"):
        assert 0.0 <= results[arm]["t2v"]["faithful_rate"] <= 1.0
    for arm in ("untrained", "stiv", "stiv_jit"):
        r = results[arm]["ti2v"]
        assert r["frame0_exact"] and r["frame0_psnr_vs_codec_db"] == float("inf")
        # vs the image itself: the lossy shapes codec's round trip (~19-23 dB)
        assert r["frame0_psnr_vs_image_db"] > 10
    assert isinstance(record["table6_direction_shown"], bool)
    assert isinstance(record["table7_direction_shown"], bool)
