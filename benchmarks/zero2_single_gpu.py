"""ZeRO-2 vs. DDP on one GPU at a real size: peak memory, step time, tokens/s, MFU.

    python benchmarks/zero2_single_gpu.py [--backbone cogvideox-2b] [--frames 49 --height 480 --width 720]
        [--strategies ddp,deepspeed_zero2] [--steps 6 --warmup 2] [--out benchmarks/results/zero2_single_gpu.json]

Each strategy trains `--steps` optimizer steps of a real-size, randomly initialised backbone
(`backbone.init=random`, batch 1, bf16-mixed, gradient checkpointing, AdamW) through the same
Trainer as `vidgen train`, in a fresh process. MFU = achieved training FLOP/s (3 x the forward
FLOPs counted by vidgen.profile, i.e. forward + backward; more with gradient checkpointing, which
is not counted) over the GPU's *measured* dense bf16 matmul peak (8192^3 matmuls), recorded with
the GPU name. Needs CUDA: refuses with a clear message otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def measured_bf16_peak(n: int = 8192, iters: int = 50) -> float:
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (time.perf_counter() - start)


def run_one(args) -> dict:
    """One strategy, in this process (the parent starts one process per strategy)."""
    import lightning as L
    import torch

    from vidgen.backbones import get_backbone
    from vidgen.config import load_config
    from vidgen.methods import method_class
    from vidgen.profile import profile
    from vidgen.train import build_datamodule, build_trainer

    run_dir = Path(args.workdir) / args.strategy
    overrides = [
        f"exp={args.exp}", f"backbone={args.backbone}", "backbone.size=real", "backbone.init=random",
        "backbone.gradient_checkpointing=true", f"strategy={args.strategy}", "trainer.accelerator=gpu",
        "trainer.devices=1", "trainer.precision=bf16-mixed", "train.global_batch_size=1", "train.micro_batch_size=1",
        f"train.max_steps={args.steps + args.warmup}", "train.checkpoint_every=1000000", "train.eval_at_end=false",
        "logger=none", f"data.frames={args.frames}", f"data.height={args.height}", f"data.width={args.width}",
        "data.num_clips=4", f"run.dir={run_dir}",
    ]
    cfg = load_config(overrides)
    spec = get_backbone(cfg.backbone.name)
    L.seed_everything(0)
    module_cls = method_class(cfg.method.name)
    datamodule = build_datamodule(cfg, spec)
    datamodule.transform = module_cls.sample_transform(cfg, datamodule)
    module = module_cls(cfg)
    module.set_null_text(*datamodule.null_text())
    times: list[float] = []

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, *a):
            torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_train_batch_end(self, trainer, *a):
            torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t)

    trainer = build_trainer(cfg, run_dir, cfg.exp_name)
    trainer.callbacks.append(Timer())
    torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=datamodule)
    step_s = sum(times[args.warmup :]) / max(1, len(times[args.warmup :]))
    c, f, h, w = spec.latent_shape(args.frames, args.height, args.width)
    pt, ph, pw = spec.patch_size
    tokens = (f // pt) * (h // ph) * (w // pw)
    flops = 3 * profile(cfg)["method"]["fwd_flops"]
    return {
        "strategy": args.strategy,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "step_time_s": step_s,
        "tokens_per_s": tokens / step_s,
        "train_flops_per_step": flops,
        "achieved_tflops": flops / step_s / 1e12,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", default="ft_cogvideox")
    p.add_argument("--backbone", default="cogvideox-2b")
    p.add_argument("--frames", type=int, default=49)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=720)
    p.add_argument("--strategies", default="ddp,deepspeed_zero2")
    p.add_argument("--strategy", help=argparse.SUPPRESS)  # child process: one strategy
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--workdir", default="/tmp/vidgen-zero2-bench")
    p.add_argument("--out", default="benchmarks/results/zero2_single_gpu.json")
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("error: benchmarks/zero2_single_gpu.py measures GPU memory and MFU and needs a CUDA GPU; "
              "none is visible (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    if args.strategy:  # child
        print(json.dumps(run_one(args)))
        return 0
    peak = measured_bf16_peak()
    results = []
    for strategy in args.strategies.split(","):
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--strategy", strategy]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
        line = next((ln for ln in reversed(res.stdout.splitlines()) if ln.startswith("{")), None)
        if res.returncode != 0 or line is None:
            results.append({"strategy": strategy, "error": (res.stderr or res.stdout)[-2000:]})
            continue
        row = json.loads(line)
        row["mfu"] = row["achieved_tflops"] * 1e12 / peak
        results.append(row)
        print(f"{strategy}: {row['peak_memory_gib']:.1f} GiB, {row['step_time_s']:.2f} s/step, "
              f"{row['tokens_per_s']:.0f} tokens/s, MFU {row['mfu']:.1%}")
    record = {
        "gpu": torch.cuda.get_device_name(0),
        "measured_bf16_peak_tflops": peak / 1e12,
        "torch": torch.__version__,
        "setting": {k: getattr(args, k) for k in ("exp", "backbone", "frames", "height", "width", "steps", "warmup")},
        "batch": 1, "precision": "bf16-mixed", "gradient_checkpointing": True, "optimizer": "AdamW",
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
