"""JDM's forward-time overhead (Table 6; paper, one A100, batch 1: CogVideoX +2.14%, ModelScope +0.88%).

    .venv/bin/python benchmarks/jdm_overhead.py [--exps jdm_cogvideox jdm_modelscope] [--iters 20]

For each experiment: parameters (exact counts) and the median bf16 forward time of the plain
backbone and of the inflated JDM model at the experiment's resolution (CogVideoX-2B 49 x 480 x
720, ModelScope 16 x 256 x 256), batch 1, CUDA events after warm-up; random weights (timing does
not depend on them). Needs a CUDA GPU and refuses to run without one. Writes
benchmarks/results/jdm_overhead.json with the GPU's name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "jdm_overhead.json"
PAPER = {"jdm_cogvideox": {"params_b": (1.6938, 1.6940), "fwd_s": (0.4946, 0.5052), "fwd_pct": 2.14},
         "jdm_modelscope": {"params_b": (1.4112, 1.4113), "fwd_s": (0.4226, 0.4263), "fwd_pct": 0.88}}


def measure(exp: str, warmup: int, iters: int) -> dict:
    from omegaconf import OmegaConf

    from vidgen.backbones import build_backbone, get_backbone
    from vidgen.config import load_config
    from vidgen.methods import method_class
    from vidgen.profile import _forward_ms
    from vidgen.train import data_resolution

    cfg = load_config([f"exp={exp}"])
    cfg = OmegaConf.merge(cfg, {"backbone": {"init": "random", "weights": None, "gradient_checkpointing": False}})
    spec = get_backbone(cfg.backbone.name)
    method = method_class(cfg.method.name)
    frames, height, width = data_resolution(cfg, spec)
    out: dict = {"resolution": [frames, height, width], "batch": 1}
    for key, builder in (("backbone", lambda: build_backbone(spec, size="real", init="random")),
                         ("jdm", lambda: method.build_model(cfg, spec))):
        with torch.device("cuda"):
            net = builder().to(torch.bfloat16).eval()
            inputs = method.example_inputs(spec, "real", frames, height, width, model=net)
        out[key] = {"params": sum(p.numel() for p in net.parameters()), "fwd_ms": _forward_ms(net, inputs, warmup, iters)}
        del net, inputs
        torch.cuda.empty_cache()
    out["params_pct"] = 100.0 * (out["jdm"]["params"] - out["backbone"]["params"]) / out["backbone"]["params"]
    out["fwd_time_pct"] = 100.0 * (out["jdm"]["fwd_ms"] - out["backbone"]["fwd_ms"]) / out["backbone"]["fwd_ms"]
    out["paper"] = PAPER.get(exp)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exps", nargs="+", default=["jdm_cogvideox", "jdm_modelscope"])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: jdm_overhead.py measures CUDA forward times and needs a GPU; none is visible here. "
              "Parameter overheads need no GPU: `vidgen profile exp=jdm_cogvideox --json`.", file=sys.stderr)
        return 2
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "dtype": "bfloat16",
              "experiments": {exp: measure(exp, args.warmup, args.iters) for exp in args.exps}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
