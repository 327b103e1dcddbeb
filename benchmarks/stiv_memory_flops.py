"""STIV's memory and compute levers, counted on the meta device at real size (no GPU, no memory).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/stiv_memory_flops.py [--backbone stiv-xl] [--tables]

For one training sample of the T2V model at 256^2 x 20 frames (A.1's default), batch 1, no
gradient checkpointing: forward FLOPs (torch.utils.flop_counter) and activation memory (bytes of
the tensors autograd saves for backward, fp32) of
  - MaskDiT 50 % spatial masking vs unmasked (Table 2 "+ MaskDiT", Table 3 "- spatial mask"),
  - temporal patch 1 / 2 / 4 (Table 3), masked,
  - shared vs per-layer AdaLN (parameters; Table 2 "+ Shared AdaLN").
``--tables`` adds Tables 14-15 (training FLOPs per stage beside the paper's; a few minutes on CPU).
Writes benchmarks/results/stiv_memory_flops.json (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "stiv_memory_flops.json"


def measure(backbone: str, task: str, overrides: dict, mask_ratio: float) -> dict:
    from vidgen.backbones import get_backbone
    from vidgen.backbones.profiling import forward_flops
    from vidgen.methods.stiv.flops import STAGES, activation_bytes, meta_inputs
    from vidgen.methods.stiv.masking import keep_count

    spec = get_backbone(backbone)
    config = {**spec.config_for("real", task), **overrides}
    stage = STAGES["T2V-256" if task == "t2v" else "T2I-256"]
    with torch.device("meta"):
        model = spec.model_cls(**config)
    _, f, h, w = spec.latent_shape(stage.frames, stage.resolution, stage.resolution)
    p, pt = config["patch_size"], config["temporal_patch_size"]
    spatial, temporal = (h // p) * (w // p), f // pt
    keep = keep_count(spatial, mask_ratio) if mask_ratio > 0 else None
    inputs = meta_inputs(stage, backbone, "real", keep)
    return dict(
        tokens=temporal * (keep or spatial),
        params=sum(x.numel() for x in model.parameters()),
        forward_gflops=round(forward_flops(model, inputs) / 1e9, 1),
        activation_gib=round(activation_bytes(model, inputs) / 2**30, 3),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="stiv-xl")
    parser.add_argument("--tables", action="store_true", help="also Tables 14-15 (slow)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    b = args.backbone
    result: dict = {
        "backbone": b,
        "resolution": "256x256x20 (T2V), batch 1, fp32",
        "machine": platform.machine(),
    }
    result["maskdit"] = {
        "masked_0.5": measure(b, "t2v", {}, 0.5),
        "unmasked": measure(b, "t2v", {}, 0.0),
    }
    result["temporal_patch"] = {
        f"pt={pt}": measure(b, "t2v", {"temporal_patch_size": pt}, 0.5) for pt in (1, 2, 4)
    }
    result["adaln"] = {
        "shared": measure(b, "t2i", {}, 0.5)["params"],
        "per_layer": measure(b, "t2i", {"shared_adaln": False}, 0.5)["params"],
    }
    if args.tables:
        from vidgen.methods.stiv.flops import flops_table

        result["table14"] = flops_table("table14", b)
        result["table15"] = flops_table("table15", b)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
