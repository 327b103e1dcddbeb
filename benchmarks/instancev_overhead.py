"""InstanceV Table 1 overhead on Wan2.1-1.3B at 480P, 81 frames, 5 instances (paper: +20.65 % params,
+15.02 % FLOPs, +9.14 % time).

    PYTHONPATH=src .venv/bin/python benchmarks/instancev_overhead.py [--time]

Counts parameters and forward FLOPs of the plain backbone and of InstanceV on the meta device
(``vidgen.profile.profile``: batch 1, 5 instances of 512 umT5 tokens covering every token), splits
the parameters into IMCA / gates / STAPE, gives the analytic IMCA mask memory at 10 instances,
and the FLOPs a per-frame projection of the instance tokens would add (see docs/methods/instancev.md).
``--time`` (CUDA only) adds median bf16 forward times from CUDA events after warm-up, with the GPU's
name. Writes benchmarks/results/instancev_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "instancev_overhead.json"
PAPER = {"params_pct": 20.65, "fwd_flops_pct": 15.02, "fwd_time_pct": 9.14}


def measure(time: bool) -> dict:
    from omegaconf import OmegaConf

    from vidgen.backbones import get_backbone
    from vidgen.config import load_config
    from vidgen.instances.attention import mask_bytes
    from vidgen.methods.instancev.module import PROFILE_INSTANCES, InstanceVModule
    from vidgen.profile import profile

    cfg = load_config(["exp=instancev_wan"])
    result = profile(cfg, time=time)
    spec = get_backbone(cfg.backbone.name)
    cfg = OmegaConf.merge(cfg, {"backbone": {"init": "random", "weights": None}})
    with torch.device("meta"):
        model = InstanceVModule.build_model(cfg, spec)
    count = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
    imca_attn = count(p for m in model.imca for p in m.attn.parameters())
    imca_norm = count(p for m in model.imca for p in m.norm.parameters())
    gates = count(m.m_v for m in model.imca) + model.stape.m_t.numel()
    stape = count(model.stape.parameters()) - model.stape.m_t.numel()
    backbone = result["backbone"]["params"]
    frames, height, width = (result["resolution"][k] for k in ("frames", "height", "width"))
    _, f, h, w = spec.latent_shape(frames, height, width)
    s, d, blocks, tokens = (
        (h // 2) * (w // 2),
        model.model.config.num_attention_heads * 128,
        len(model.imca),
        512,
    )
    kv_per_frame = (
        2 * 2 * PROFILE_INSTANCES * tokens * d * d * (f - 1) * blocks
    )  # K, V of I^t for frames 2..F'
    result["breakdown"] = {
        "imca_attention_copies_pct": 100 * imca_attn / backbone,
        "imca_norm_copies_pct": 100 * imca_norm / backbone,
        "gates_pct": 100 * gates / backbone,
        "stape_pct": 100 * stape / backbone,
        "per_frame_kv_extra_flops_pct": 100 * kv_per_frame / result["backbone"]["fwd_flops"],
        "imca_mask_bytes_10_instances_cfg_batch2": mask_bytes(2, f, s, 10, tokens),
    }
    result["paper"] = PAPER
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time", action="store_true", help="CUDA forward times (needs a GPU)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.time and not torch.cuda.is_available():
        print(
            "error: --time needs a CUDA GPU; run without --time for parameter and FLOP counts",
            file=sys.stderr,
        )
        return 2
    result = measure(args.time)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
