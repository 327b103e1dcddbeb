"""Shapes-world effect check for InstanceV: does grounding beat plain fine-tuning on layout IoU?

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/instancev_layout_iou.py [--pre-steps 400] [--steps 400] [--saug-only]

1. `ft_wan preset=smoke` (tiny Wan2.1, 9 x 64 x 64 shapes clips) is trained `--pre-steps` steps from
   random init and exported (`vidgen export`): the "pretrained" tiny backbone both arms start from.
2. With the same budget of `--steps` further steps from that backbone: `ft_wan` (whole model
   fine-tuned), `instancev_wan` (frozen backbone, IMCA + STAPE + SAUG) and `instancev_wan
   method.saug=false` (plain CFG).
3. Each model generates the first `--eval-samples` clips (`--eval-steps` sampler steps, scale 5);
   every instance is found by its prompt with the shapes world's exact detector and scored by
   box IoU against its ground-truth box (vidgen.eval.instance_metrics): mean and area-weighted mean.
   ft_wan is scored through InstanceVModule with method.imca=false (the plain backbone, bit for bit).
4. SAUG vs plain CFG is compared on the same generated instances (same clips, same sampler seeds):
   the area-weighted IoU difference with a bootstrap 95% interval over instances, and the mean IoU
   of the smaller half of the instances (SAUG's stated target, Sec. 4.3). `--saug-only` skips ft_wan.
5. `--small-overlap` trains and evaluates every arm on `data.small_overlap=true` clips (a small
   instance on a large one in every clip, data/shapes_layouts.py) and adds the paired IoU of the
   designated small instances (and of the large ones) with bootstrap intervals.
   `--keep-arm` adds an arm trained and sampled with `method.saug_caption=keep` (the other reading
   of SAUG's unconditional pass).
Writes benchmarks/results/instancev_layout_iou.json (with per-instance values); exits 1 unless
instancev beats ft_wan on the area-weighted IoU and SAUG does not lower it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from vidgen.benchmark_runs import (
    export_weights,
    generate_clips,
    machine,
    paired_difference,
    smoke_overrides,
    train_run,
    write_record,
)

RESULTS = Path(__file__).parent / "results" / "instancev_layout_iou.json"


def layout_iou(args, overrides: list[str], ckpt: Path | None) -> dict:
    """Means as `InstanceVModule.evaluate` gives them, plus the per-instance records (IoU, area, and
    the instance's index in its clip: with data.small_overlap, 0 is the large and 1 the small one)."""
    from vidgen.eval.instance_metrics import shapes_layout_records, weighted_means

    videos, samples = generate_clips(overrides, ckpt, args.eval_samples, args.eval_steps)
    ious, areas = shapes_layout_records(videos, samples)
    mean, aw = weighted_means(ious, areas)
    index = [k for s in samples for k in range(len(s.instances.prompts))]
    return {
        "layout_iou": mean,
        "layout_iou_aw": aw,
        "iou": ious.tolist(),
        "area": areas.tolist(),
        "index": index,
    }


def paired_subset(a: dict, b: dict, index: int, draws: int = 2000) -> dict:
    """Mean IoU of the instances with clip index ``index`` (data.small_overlap: 1 = small, 0 = large)
    under a and b, and a - b with a bootstrap 95% interval over those instances."""
    keep = torch.tensor(a["index"]) == index
    ia, ib = torch.tensor(a["iou"])[keep], torch.tensor(b["iou"])[keep]
    d = paired_difference(ia, ib, draws)
    return {
        "iou": [float(ia.mean()), float(ib.mean())],
        "diff": d["diff"],
        "diff_ci95": d["ci95"],
        "instances": d["instances"],
    }


def paired(a: dict, b: dict, draws: int = 2000) -> dict:
    """a - b on the same generated instances: AW-IoU difference with a bootstrap 95% interval over
    instances, and the mean IoU of the smaller half of the instances (SAUG's target, Sec. 4.3)."""
    ia, ib, area = torch.tensor(a["iou"]), torch.tensor(b["iou"]), torch.tensor(a["area"])
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(len(ia), (draws, len(ia)), generator=gen)
    w = area[idx]
    diffs = ((ia[idx] - ib[idx]) * w).sum(1) / w.sum(1).clamp_min(1e-12)
    small = area <= area.median()
    return {
        "aw_iou_diff": float(((ia - ib) * area).sum() / area.sum()),
        "aw_iou_diff_ci95": [float(diffs.quantile(0.025)), float(diffs.quantile(0.975))],
        "small_half_iou": [float(ia[small].mean()), float(ib[small].mean())],
        "instances": len(ia),
    }


def _layout_sizes() -> dict:
    from vidgen.data.shapes_layouts import LARGE_SIZE, SMALL_SIZE

    return {"large": list(LARGE_SIZE), "small": list(SMALL_SIZE)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pre-steps", type=int, default=400)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--num-clips", type=int, default=16)
    parser.add_argument("--eval-samples", type=int, default=8)
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--small-overlap",
        action="store_true",
        help="data.small_overlap=true for every arm (SAUG's target case)",
    )
    parser.add_argument(
        "--keep-arm",
        action="store_true",
        help="add an arm with method.saug_caption=keep (trained and sampled)",
    )
    parser.add_argument(
        "--saug-only", action="store_true", help="train only the SAUG and plain-CFG arms (skip ft_wan)"
    )
    parser.add_argument(
        "--cross",
        action="store_true",
        help="also sample each InstanceV arm with the other arm's guidance (training vs sampling effect of SAUG)",
    )
    args = parser.parse_args(argv)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = ["data.small_overlap=true"] if args.small_overlap else []
        pre = train_run(
            [
                "exp=ft_wan",
                *smoke_overrides(tmp / "pre", args.pre_steps, args.lr, args.num_clips, args.seed),
                *data,
            ]
        )
        weights = export_weights(pre, tmp / "pretrained")
        base = [f"backbone.weights={weights}"]
        plain = [
            "exp=instancev_wan",
            "variant=instancev/backbone",
            "preset=smoke",
            f"data.num_clips={args.num_clips}",
            f"seed={args.seed}",
            *data,
        ]
        results = {"pretrained_backbone": layout_iou(args, [*plain, *base], None)}
        if not args.saug_only:
            ft = train_run(
                [
                    "exp=ft_wan",
                    *smoke_overrides(tmp / "ft", args.steps, args.lr, args.num_clips, args.seed),
                    *base,
                    *data,
                ]
            )
            ft_weights = export_weights(ft, tmp / "ft_export")
            results["ft_wan"] = layout_iou(args, [*plain, f"backbone.weights={ft_weights}"], None)
        arms = [("instancev_wan", []), ("instancev_wan_no_saug", ["variant=instancev/imca_stape"])]
        if args.keep_arm:
            arms.append(("instancev_wan_saug_caption_keep", ["method.saug_caption=keep"]))
        for name, extra in arms:
            ov = [
                "exp=instancev_wan",
                *smoke_overrides(tmp / name, args.steps, args.lr, args.num_clips, args.seed),
                *base,
                *data,
                *extra,
            ]
            run = train_run(ov)
            results[name] = layout_iou(args, ov, run / "checkpoints" / "last.ckpt")
            if args.cross and name != "instancev_wan_saug_caption_keep":  # same weights, other guidance
                other = "method.saug=false" if name == "instancev_wan" else "method.saug=true"
                results[f"{name}+{other}"] = layout_iou(args, [*ov, other], run / "checkpoints" / "last.ckpt")
    saug_vs_cfg = paired(results["instancev_wan"], results["instancev_wan_no_saug"])
    if args.small_overlap:
        saug_vs_cfg["small_instance"] = paired_subset(
            results["instancev_wan"], results["instancev_wan_no_saug"], 1
        )
        saug_vs_cfg["large_instance"] = paired_subset(
            results["instancev_wan"], results["instancev_wan_no_saug"], 0
        )
        if args.cross:  # the guidance alone: SAUG-trained weights, SAUG vs plain-CFG sampling
            g = (results["instancev_wan"], results["instancev_wan+method.saug=false"])
            saug_vs_cfg["guidance_only"] = {
                "aw": paired(*g),
                "small_instance": paired_subset(*g, 1),
                "large_instance": paired_subset(*g, 0),
            }
    keep = results.get("instancev_wan_saug_caption_keep")
    if keep is not None:  # the other reading against plain CFG
        saug_vs_cfg["keep_minus_cfg"] = {"aw": paired(keep, results["instancev_wan_no_saug"])}
        if args.small_overlap:
            saug_vs_cfg["keep_minus_cfg"]["small_instance"] = paired_subset(
                keep, results["instancev_wan_no_saug"], 1
            )
    ok = results["instancev_wan"]["layout_iou_aw"] >= results["instancev_wan_no_saug"]["layout_iou_aw"]
    if "ft_wan" in results:
        ok = ok and results["instancev_wan"]["layout_iou_aw"] > results["ft_wan"]["layout_iou_aw"]
    record = {
        "args": vars(args) | {"out": str(args.out)},
        "results": {
            k: {m: v for m, v in r.items() if m not in ("iou", "area", "index")} for k, r in results.items()
        },
        "saug_minus_cfg": saug_vs_cfg,
        "per_instance": {k: {m: r[m] for m in ("iou", "area", "index")} for k, r in results.items()},
        "small_overlap_half_extents": _layout_sizes() if args.small_overlap else None,
        "effect_shown": ok,
        "wall_s": round(time.time() - start, 1),
        **machine(),
    }
    write_record(args.out, record)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
