"""Training-step time and peak GPU memory of STIV T2V-XL-256-20 (the issue's GPU check).

    .venv/bin/python benchmarks/stiv_gpu_step.py [--backbone stiv-xl] [--batch 4] [--iters 10]

One optimizer step = forward + flow-matching loss on the kept tokens + backward + AdaFactor
(beta1 0.9) at bf16 autocast, random weights and inputs (timing does not depend on them), for
MaskDiT 50 % vs unmasked and with / without gradient checkpointing. Median of ``--iters`` CUDA-event
timed steps after 3 warm-up steps; peak memory from ``torch.cuda.max_memory_allocated``. Needs a
CUDA GPU and refuses to run without one. Writes benchmarks/results/stiv_gpu_step.json with the
GPU's name.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "stiv_gpu_step.json"


def one_setting(backbone: str, batch: int, iters: int, mask_ratio: float, checkpointing: bool) -> dict:
    from vidgen.backbones import build_backbone, get_backbone
    from vidgen.methods.stiv.masking import draw_keep
    from vidgen.optim import build_optimizer

    spec = get_backbone(backbone)
    model = (
        build_backbone(spec, size="real", init="random", gradient_checkpointing=checkpointing).cuda().train()
    )
    opt = build_optimizer(model, name="adafactor", lr=2e-4, weight_decay=0.0, beta1=0.9)
    c, f, h, w = spec.latent_shape(20, 256, 256)
    dit = model.model
    spatial = (h // dit.patch_size) * (w // dit.patch_size)
    gen = torch.Generator(device="cuda").manual_seed(0)
    x1 = torch.randn(batch, c, f, h, w, device="cuda")
    text = torch.randn(batch, spec.text_len, spec.text_dim, device="cuda")
    mask = torch.ones(batch, spec.text_len, dtype=torch.bool, device="cuda")

    def step() -> None:
        keep = draw_keep(batch, spatial, mask_ratio, gen)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = model(x1, torch.full((batch,), 500.0, device="cuda"), text, mask, keep_spatial=keep)
        loss = (pred.float() - x1).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    peak = torch.cuda.max_memory_allocated() / 2**30
    return {"step_ms": round(statistics.median(times), 1), "peak_gib": round(peak, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="stiv-xl")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(
            "benchmarks/stiv_gpu_step.py needs a CUDA GPU; the meta-device counts need none: "
            "benchmarks/stiv_memory_flops.py",
            file=sys.stderr,
        )
        return 2
    result = {
        "gpu": torch.cuda.get_device_name(),
        "backbone": args.backbone,
        "batch": args.batch,
        "resolution": "256x256x20",
        "precision": "bf16-autocast",
        "settings": {},
    }
    for ratio in (0.5, 0.0):
        for ckpt in (False, True):
            name = f"mask={ratio},checkpointing={ckpt}"
            result["settings"][name] = one_setting(args.backbone, args.batch, args.iters, ratio, ckpt)
            torch.cuda.empty_cache()  # the previous setting's model and optimizer are gone with its frame
            print(name, result["settings"][name], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
