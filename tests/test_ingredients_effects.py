"""Shapes-world effects of Ingredients (benchmarks/ingredients_routing.py): ~3 CPU-minutes, and
Table 3's direction in the pixels at the scaled T2V-init setting: 28 min (both slow)."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).parents[1] / "benchmarks" / "ingredients_routing.py"


@pytest.mark.slow
def test_routing_loss_trains_the_router_and_stage1_faces_match_their_references(tmp_path):
    spec = importlib.util.spec_from_file_location("ingredients_routing", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "result.json"
    # the recorded setting (benchmarks/results/ingredients_routing.json), seed 0
    steps = ["--pre-steps", "1500", "--stage1-steps", "1000", "--stage2-steps", "600"]
    bench.main([*steps, "--eval-every", "200", "--seeds", "0", "--plain-captions", "--out", str(out)])
    result = json.loads(out.read_text())
    checks = result["checks"]
    assert checks["ce_routing_rises"]  # Fig. 6: the router becomes more accurate with L_route
    assert checks["ce_beats_none_routing"]  # Table 3's direction at the router
    run = result["seeds"]["0"]
    # stage 1 alone: the generated faces match their own references above the same generations'
    # chance (ID shifts) and above every other held-out clip's references; that this comes through the
    # reference faces is not shown (benchmarks/ingredients_probe.py: swapping them leaves it)
    assert run["stage1"]["right_id"]["excess_ci95"][0] > 0
    assert run["stage1"]["right_id"]["above_other_clips"] == len(run["clips"]["held_out"]) - 1
    assert run["references"]["codec_ceiling"]["fraction"] > 0.85
    # ce vs none on the right-ID fraction is recorded, not asserted: not shown at this budget, nor at the
    # paper's 3000 / 2000 steps (results/ingredients_routing_paper_steps.json, docs/methods/ingredients.md),
    # nor reachable at --size 128: there too swapping only the routed features leaves the right-ID
    # fraction (results/ingredients_routing_size128_stage1*.json), so stage 2 was not run at 128;
    # it is shown without the canvas (the next test)


@pytest.mark.slow
def test_routing_loss_puts_the_right_id_in_the_generated_faces_without_the_canvas(tmp_path):
    """Table 3's direction in the pixels: the recorded scaled setting with T2V init (the canvas never
    reaches the model) and stage-1 routing by labels (results/ingredients_routing_t2v_scaled_labels.json,
    docs/methods/ingredients.md "Without the canvas"), seed 0."""
    spec = importlib.util.spec_from_file_location("ingredients_routing", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "result.json"
    data = ["--pool", "1800", "--clips", "1024", "--eval-clips", "64", "--batch", "16", "--plain-captions"]
    steps = ["--pre-steps", "6000", "--stage1-steps", "6000", "--stage2-steps", "3000"]
    evals = ["--eval-every", "1000", "--stage1-eval-every", "2000"]
    knobs = ["--init", "t2v", "--stage1-routing", "labels"]
    bench.main([*data, *steps, *evals, *knobs, "--seeds", "0", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["checks"]["ce_routing_rises"] and result["checks"]["ce_beats_none_routing"]
    run = result["seeds"]["0"]
    # with L_route more face pixels carry their reference's ID: paired over the 64 held-out clips
    assert run["ce_minus_none"]["clip_ci95"][0] > 0
    assert run["stage2"]["ce"]["right_id"]["fraction"] > run["stage2"]["none"]["right_id"]["fraction"] + 0.03


def test_keep_reuses_a_phase_and_refuses_one_trained_otherwise(tmp_path):
    """--keep: a kept phase comes back bit for bit without retraining; other arguments are refused."""
    spec = importlib.util.spec_from_file_location("ingredients_routing", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(keep=tmp_path)
    weight = torch.randn(3, 4)
    calls = []

    def make():
        calls.append(1)
        return {"w": weight, "tied": weight}, {"loss_last": 0.5}

    state, record = bench.kept(args, 0, "stage1", {"stage1_steps": 10, "keep": tmp_path}, make)
    again, record_again = bench.kept(args, 0, "stage1", {"stage1_steps": 10, "keep": tmp_path}, make)
    assert len(calls) == 1 and record_again == record == {"loss_last": 0.5}
    assert torch.equal(again["w"], weight) and torch.equal(again["tied"], weight)
    assert sorted(p.name for p in (tmp_path / "seed0").iterdir()) == ["stage1.json", "stage1.safetensors"]
    with pytest.raises(SystemExit, match=r"seed0/stage1\.json: .*'stage1_steps': \(10, 20\)"):
        bench.kept(args, 0, "stage1", {"stage1_steps": 20, "keep": tmp_path}, make)
    assert len(calls) == 1


def test_clip_bootstrap_draws_whole_clips_and_pairs_two_arms():
    """Intervals over clips (a clip's regions are correlated): one clip-level ratio per draw, and the
    paired difference of two arms drawn on the same clips."""
    spec = importlib.util.spec_from_file_location("ingredients_routing", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    same = [[5, 10]] * 6  # every clip 0.5: no spread
    assert bench.clip_bootstrap([same], 0) == [[0.5, 0.5]]
    better = [[8, 10]] * 6
    (a, b, diff) = bench.clip_bootstrap([better, same], 0)
    assert a == [0.8, 0.8] and b == [0.5, 0.5] and diff == pytest.approx([0.3, 0.3])
    # one clip carries all the right pixels: drawn clips, not regions, so the interval reaches 0
    lumpy = [[10, 10]] + [[0, 10]] * 5
    low, high = bench.clip_bootstrap([lumpy], 0)[0]
    assert low == 0.0 and high > 1 / 6
    # paired: the arms move together clip by clip, so their difference does not spread
    shifted = [[r + 1, t] for r, t in lumpy]
    assert bench.clip_bootstrap([shifted, lumpy], 0)[2] == pytest.approx([0.1, 0.1])
