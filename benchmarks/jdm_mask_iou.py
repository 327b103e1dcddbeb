"""Shapes-world learning check for JDM: does a short CPU training teach the model to generate masks?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/jdm_mask_iou.py [--steps 8000] [--lr 1e-3] [--eval-steps 50] ...

Trains `exp=jdm_cogvideox preset=smoke` (tiny CogVideoX, 9 x 64 x 64 shapes-world clips) with
longer training and a higher learning rate than the paper's (given as overrides), then scores
the jointly generated masks with JDM Table 3's protocol (`JDMModule.evaluate`): each clip's
global caption -> video + mask; the mask against the exact shapes-world segmentation of the
*generated video* (`mask_*`). It also records the previous protocol's number from the same run
(`source_mask_*`: the mask against the source clip's all-objects mask) and two trivial baselines
against the generated videos' segmentation: an all-zero mask and a uniform random mask (p = 0.5).
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


def regenerate(cfg, ckpt: Path, seed: int) -> dict:
    """The final checkpoint's Table 3 generations again, scored with the trivial baselines too."""
    from vidgen.eval.mask_metrics import mask_metrics
    from vidgen.methods.jdm import evaluation
    from vidgen.methods.jdm.module import JDMModule
    from vidgen.sampling import load_weights
    from vidgen.train import build_datamodule

    module = JDMModule(cfg)
    datamodule = build_datamodule(cfg, module.spec)
    datamodule.transform = JDMModule.sample_transform(cfg, datamodule)
    module.set_null_text(*datamodule.null_text())
    load_weights(module, ckpt)
    module.eval()
    take = module._dataset_samples(datamodule)
    prompts = evaluation.eval_prompts(module.hp, datamodule, take)
    shape = (2 * module.channels, *take(1)[0].latents.shape[1:])
    videos, masks = module.generate_joint(prompts, shape, datamodule.codec(), int(module.hp.eval_steps))
    reference = torch.stack([evaluation.segment_named_objects(v, p.text) for v, p in zip(videos, prompts)])
    gen = torch.Generator().manual_seed(seed)
    return {
        "trained": mask_metrics(masks, reference),
        "all_zero": mask_metrics(torch.zeros_like(reference), reference),
        "random_p0.5": mask_metrics(torch.rand(reference.shape, generator=gen) < 0.5, reference),
        "generated_foreground_fraction": float(reference.float().mean()),
        "generated_mask_fraction": float(masks.float().mean()),
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
        again = regenerate(cfg, run_dir / "checkpoints" / "last.ckpt", args.seed)
    trained = {k: summary[f"eval/{k}"] for k in ("mask_iou", "mask_f1", "mask_pixel_acc")}
    source = {k: summary[f"eval/source_{k}"] for k in ("mask_iou", "mask_f1", "mask_pixel_acc")}
    beats = trained["mask_iou"] > max(again["all_zero"]["mask_iou"], again["random_p0.5"]["mask_iou"])
    result = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/jdm_mask_iou.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "train_overrides": [o for o in ov if not o.startswith("run.dir")],
        "training": {
            "steps": args.steps,
            "micro_batch": int(cfg.train.micro_batch_size),
            "clips_seen": args.steps * int(cfg.train.global_batch_size),
            "num_clips": args.num_clips,
            "final_train_loss": summary.get("train/loss"),
            "wall_s": round(wall, 1),
        },
        "evaluation": {
            "clips": args.eval_samples,
            "sampler_steps": args.eval_steps,
            "guidance_scale": float(cfg.sample.guidance_scale),
            "reference": "JDM Table 3 protocol: exact shapes-world segmentation of the generated video",
        },
        "trained": trained,
        "trained_vs_source_clip_mask": source,
        "eval_curve": curve,
        "baselines": {k: again[k] for k in ("all_zero", "random_p0.5")},
        "regenerated_trained": again["trained"],
        "generated_foreground_fraction": again["generated_foreground_fraction"],
        "generated_mask_fraction": again["generated_mask_fraction"],
        "beats_baselines": bool(beats),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                "trained": trained,
                "source": source,
                "baselines": result["baselines"],
                "beats_baselines": beats,
                "wall_s": round(wall, 1),
            },
            indent=2,
        )
    )
    return 0 if beats else 1


if __name__ == "__main__":
    sys.exit(main())
