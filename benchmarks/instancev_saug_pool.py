"""Pool `instancev_layout_iou.py` runs over seeds: SAUG against plain CFG.

    PYTHONPATH=src .venv/bin/python benchmarks/instancev_saug_pool.py benchmarks/results/instancev_saug_small_overlap_seed{0,1,2,3}.json
    PYTHONPATH=src .venv/bin/python benchmarks/instancev_saug_pool.py benchmarks/results/instancev_saug_keep_default_seed{0,1,2,3}.json --out benchmarks/results/instancev_saug_keep_default_pooled.json

Each run trains its arms from its own backbone on its own clips; within a run the arms share the
backbone, clips and sampler seeds, so instances pair up. For each comparison a - b this prints the
per-seed differences and the pooled one with a bootstrap 95% interval that resamples seeds, then
instances within each seed (both levels of noise). Metrics: area-weighted layout IoU over all
instances; with `--small-overlap` runs also the mean IoU of the designated small instances (clip
index 1) and of the large ones (0). Writes benchmarks/results/instancev_saug_small_overlap_pooled.json
unless `--out` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from vidgen.benchmark_runs import write_record

OUT = Path(__file__).parent / "results" / "instancev_saug_small_overlap_pooled.json"
COMPARISONS = {  # name: (a, b) arms of instancev_layout_iou.py
    "saug_minus_cfg": ("instancev_wan", "instancev_wan_no_saug"),
    "saug_guidance_only": ("instancev_wan", "instancev_wan+method.saug=false"),
    "keep_minus_cfg": ("instancev_wan_saug_caption_keep", "instancev_wan_no_saug"),
    "keep_minus_saug": ("instancev_wan_saug_caption_keep", "instancev_wan"),
}


def _stat(iou_a: torch.Tensor, iou_b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean of a - b over the last dim ([..., M] -> [...])."""
    return ((iou_a - iou_b) * weight).sum(-1) / weight.sum(-1).clamp_min(1e-12)


def pooled(runs: list[dict], a: str, b: str, metric: str, draws: int = 2000) -> dict:
    """a - b per seed and pooled (seeds weighted equally), with a two-level bootstrap interval."""
    gen = torch.Generator().manual_seed(0)
    per_seed, boot = [], torch.zeros(draws)
    seeds = torch.randint(len(runs), (draws, len(runs)), generator=gen)
    for i, run in enumerate(runs):
        ra, rb = run["per_instance"][a], run["per_instance"][b]
        ia, ib, area = (torch.tensor(x) for x in (ra["iou"], rb["iou"], ra["area"]))
        index = torch.tensor(ra.get("index", [-1] * len(ia)))
        keep = {"aw": torch.ones_like(index, dtype=torch.bool), "small": index == 1, "large": index == 0}[
            metric
        ]
        ia, ib, area = ia[keep], ib[keep], area[keep]
        weight = area if metric == "aw" else torch.ones_like(area)
        per_seed.append(float(_stat(ia, ib, weight)))
        idx = torch.randint(len(ia), (draws, len(ia)), generator=gen)
        per_draw = _stat(ia[idx], ib[idx], weight[idx])  # [draws]: instances resampled within seed i
        boot += (seeds == i).sum(1) * per_draw / len(runs)  # seed i counted as often as it is drawn
    return {
        "per_seed": per_seed,
        "mean": sum(per_seed) / len(per_seed),
        "ci95": [float(boot.quantile(0.025)), float(boot.quantile(0.975))],
        "seeds_positive": sum(d > 0 for d in per_seed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    runs = [json.loads(p.read_text()) for p in args.results]
    overlap = {bool(r["args"].get("small_overlap")) for r in runs}
    if len(overlap) != 1:
        raise SystemExit("pool runs of one setting: all with --small-overlap or all without")
    metrics = ("aw", "small", "large") if overlap.pop() else ("aw",)
    record = {"results": [str(p) for p in args.results], "seeds": [r["args"]["seed"] for r in runs]}
    for name, (a, b) in COMPARISONS.items():
        if all(a in r["per_instance"] and b in r["per_instance"] for r in runs):
            record[name] = {m: pooled(runs, a, b, m) for m in metrics}
    write_record(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
