"""Shapes-world learning check for JDM: does a short CPU training teach the model to generate masks?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/jdm_mask_iou.py [--steps 8000] [--lr 1e-3] [--eval-steps 50] ...

Trains `exp=jdm_cogvideox preset=smoke` (tiny CogVideoX, 9 x 64 x 64 shapes-world clips) with
longer training and a higher learning rate than the paper's (given as overrides), then compares
the generated-mask IoU / F1 / pixel accuracy (`JDMModule.evaluate`: joint generation from each
clip's global caption, binarised mask vs. the exact all-objects ground truth `jdm/masks[0]`) with
two trivial baselines on the same clips: an all-zero mask and a uniform random mask (p = 0.5).
Also records the step-0 evaluation (the inflated model before training: its mask half is zero).
Writes benchmarks/results/jdm_mask_iou.json; exits 1 if the trained model does not beat both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "jdm_mask_iou.json"


def overrides(args: argparse.Namespace, run_dir: Path) -> list[str]:
    return [
        "exp=jdm_cogvideox",
        "preset=smoke",
        "logger=none",
        f"run.dir={run_dir}",
        f"train.max_steps={args.steps}",
        f"train.checkpoint_every={args.steps}",
        f"train.eval_every={args.eval_every}",
        f"optim.lr={args.lr}",
        "schedule=constant_with_warmup",
        f"schedule.warmup_steps={args.warmup}",
        f"data.num_clips={args.num_clips}",
        f"method.eval_samples={args.eval_samples}",
        f"method.eval_steps={args.eval_steps}",
        f"seed={args.seed}",
    ]


def baselines(cfg, seed: int) -> dict[str, dict[str, float]]:
    from vidgen.eval.mask_metrics import mask_metrics
    from vidgen.methods.jdm.module import MASKS, JDMModule
    from vidgen.train import build_datamodule

    module = JDMModule(cfg)
    datamodule = build_datamodule(cfg, module.spec)
    datamodule.transform = JDMModule.sample_transform(cfg, datamodule)
    target = torch.stack([s.extras[MASKS][0].bool() for s in module._eval_samples(datamodule)])
    gen = torch.Generator().manual_seed(seed)
    module.set_null_text(*datamodule.null_text())
    module.eval()
    return {
        "untrained_step0": module.evaluate(datamodule),
        "all_zero": mask_metrics(torch.zeros_like(target), target),
        "random_p0.5": mask_metrics(torch.rand(target.shape, generator=gen) < 0.5, target),
        "gt_foreground_fraction": float(target.float().mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--num-clips", type=int, default=16)
    parser.add_argument("--eval-samples", type=int, default=16)
    parser.add_argument("--eval-steps", type=int, default=50)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from vidgen.config import load_config
    from vidgen.eval.callback import read_eval
    from vidgen.runs import read_summary
    from vidgen.train import quiet_libraries, resolve_micro_batch, train

    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        ov = overrides(args, run_dir)
        cfg = resolve_micro_batch(load_config(ov))
        start = time.perf_counter()
        train(cfg)
        wall = time.perf_counter() - start
        summary = read_summary(run_dir)
        curve = read_eval(run_dir)
    trained = {k: summary[f"eval/{k}"] for k in ("mask_iou", "mask_f1", "mask_pixel_acc")}
    base = baselines(cfg, args.seed)
    beats = trained["mask_iou"] > max(base["all_zero"]["mask_iou"], base["random_p0.5"]["mask_iou"])
    result = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/jdm_mask_iou.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "train_overrides": [o for o in ov if not o.startswith("run.dir")],
        "training": {"steps": args.steps, "micro_batch": int(cfg.train.micro_batch_size),
                     "clips_seen": args.steps * int(cfg.train.global_batch_size), "num_clips": args.num_clips,
                     "final_train_loss": summary.get("train/loss"), "wall_s": round(wall, 1)},
        "evaluation": {"clips": args.eval_samples, "sampler_steps": args.eval_steps,
                       "guidance_scale": float(cfg.sample.guidance_scale),
                       "reference": "exact shapes-world all-objects mask jdm/masks[0]"},
        "trained": trained,
        "eval_curve": curve,
        "baselines": base,
        "beats_baselines": bool(beats),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "omp_threads": os.environ.get("OMP_NUM_THREADS")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"trained": trained, "baselines": base, "beats_baselines": beats, "wall_s": round(wall, 1)}, indent=2))
    return 0 if beats else 1


if __name__ == "__main__":
    sys.exit(main())
