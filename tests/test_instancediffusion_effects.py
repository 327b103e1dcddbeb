"""Shapes-world effect of InstanceDiffusion on held-out layouts (benchmarks/instancediffusion_layout.py,
the setting of benchmarks/results/instancediffusion_layout_heldout.json): ~30 min on 2 shared CPU cores;
the second test, the setting of ..._background_ramp.json, ~2 h."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "benchmarks" / "instancediffusion_layout.py"


@pytest.mark.slow
def test_instancediffusion_beats_finetuning_on_heldout_layouts_through_maskattn(tmp_path):
    spec = importlib.util.spec_from_file_location("instancediffusion_layout", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "result.json"
    bench.main(["--out", str(out)])  # defaults: 2000 + 1000 steps, 256 clips, 64 images of eval seed 1000
    record = json.loads(out.read_text())
    r, paired = record["results"], record["paired_layout_iou"]
    # shown: InstanceDiffusion beats ft_sd15 on held-out layout IoU (interval above 0) and box AP50,
    # and MaskAttn is what carries it (without it, no better than fine-tuning)
    assert paired["instancediffusion - ft_sd15"]["ci95"][0] > 0
    assert r["instancediffusion"]["box_ap50"] > r["ft_sd15"]["box_ap50"]
    assert paired["instancediffusion - instancediffusion_no_maskattn"]["ci95"][0] > 0
    # MIS: not shown either way at this size (-0.002, interval across 0); asserted only not to lower
    # layout IoU beyond the interval
    assert paired["instancediffusion - instancediffusion_no_mis"]["ci95"][1] >= 0
    # the probe: the MaskAttn model uses the layout on held-out clips; the unmasked one ignores it
    held = record["grounding_probe_eps_mse"]
    assert (
        held["instancediffusion"]["eval_clips"]["true"]
        < 0.9 * held["instancediffusion"]["eval_clips"]["locations_of_another_clip"]
    )
    plain = held["instancediffusion_no_maskattn"]["eval_clips"]
    assert abs(plain["true"] - plain["locations_of_another_clip"]) < 1e-3 * plain["true"]


@pytest.mark.slow
def test_instancediffusion_from_gligens_backbone_beats_its_fine_tuning_and_mis_helps(tmp_path):
    """The setting of benchmarks/results/instancediffusion_layout_background_ramp.json: the backbone and
    the 20,000-step `ft_sd15` of GLIGEN's section-7 run (ramp world, batch 16, 4,096 clips), the arms
    2,000 steps. ~2 h on 2 CPU cores."""
    spec = importlib.util.spec_from_file_location("instancediffusion_layout", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "result.json"
    argv = ["--batch", "16", "--num-clips", "4096", "--pre-steps", "4000", "--ft-steps", "20000"]
    argv += ["--steps", "2000", "--background-ramp", "0.2", "--out", str(out)]
    assert bench.main(argv) == 0
    record = json.loads(out.read_text())
    r, paired = record["results"], record["paired_layout_iou"]
    assert paired["instancediffusion - ft_sd15"]["ci95"][0] > 0.2
    assert r["instancediffusion"]["box_ap50"] > r["ft_sd15"]["box_ap50"] + 0.1
    assert paired["instancediffusion - instancediffusion_no_maskattn"]["ci95"][0] > 0.2
    assert paired["instancediffusion - instancediffusion_no_mis"]["ci95"][0] > 0  # MIS raises it here
