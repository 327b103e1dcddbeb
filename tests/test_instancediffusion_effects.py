"""Shapes-world effect of InstanceDiffusion (benchmarks/instancediffusion_layout.py): ~1 h on 2 shared CPU cores."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "benchmarks" / "instancediffusion_layout.py"


@pytest.mark.slow
def test_instancediffusion_beats_finetuning_and_maskattn_mis_do_not_hurt(tmp_path):
    spec = importlib.util.spec_from_file_location("instancediffusion_layout", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "result.json"
    bench.main(["--pre-steps", "400", "--steps", "400", "--eval-samples", "8", "--out", str(out)])
    r = json.loads(out.read_text())["results"]
    assert r["instancediffusion"]["layout_iou"] > r["finetune"]["layout_iou"]
    assert r["instancediffusion"]["box_ap50"] > r["finetune"]["box_ap50"]
    # MaskAttn / MIS: recorded in benchmarks/README.md; asserted only not to lower layout IoU
    assert r["instancediffusion"]["layout_iou"] >= r["instancediffusion_no_maskattn"]["layout_iou"]
    assert r["instancediffusion"]["layout_iou"] >= r["instancediffusion_no_mis"]["layout_iou"]
