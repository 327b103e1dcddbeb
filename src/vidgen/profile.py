"""`vidgen profile exp=NAME [--json] [--time]`: what a method adds to its backbone.

Parameters and forward FLOPs (batch 1, at the experiment's resolution) of the plain backbone
and of the method's model, counted on the meta device (torch FlopCounterMode), so real sizes
are checkable on a laptop. `--time` (CUDA only) adds median forward times measured with CUDA
events after warm-up, in bf16.
"""

from __future__ import annotations

import json
import statistics
import sys

import torch
from omegaconf import DictConfig, OmegaConf

from vidgen.backbones import build_backbone, get_backbone
from vidgen.backbones.profiling import forward_flops
from vidgen.config import load_config, overrides_help, wants_help
from vidgen.errors import ConfigError, VidgenError
from vidgen.methods import method_class
from vidgen.train import data_resolution


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _pct(new: float, old: float) -> float:
    return 100.0 * (new - old) / old if old else 0.0


def _forward_ms(model: torch.nn.Module, inputs: dict, warmup: int = 3, iters: int = 10) -> float:
    times = []
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for i in range(warmup + iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(**inputs)
            end.record()
            torch.cuda.synchronize()
            if i >= warmup:
                times.append(start.elapsed_time(end))
    return statistics.median(times)


def profile(cfg: DictConfig, time: bool = False) -> dict:
    spec = get_backbone(cfg.backbone.name)
    cfg = OmegaConf.merge(cfg, {"backbone": {"init": "random", "weights": None, "gradient_checkpointing": False}})
    method = method_class(cfg.method.name)
    frames, height, width = data_resolution(cfg, spec)
    size = cfg.backbone.size
    with torch.device("meta"):
        plain = build_backbone(spec, size=size, init="random", tiny_config=cfg.backbone.tiny_config)
        model = method.build_model(cfg, spec)
        plain_inputs = method.example_inputs(spec, size, frames, height, width, model=plain)
        model_inputs = method.example_inputs(spec, size, frames, height, width, model=model)
    result = {
        "backbone": {
            "name": spec.name,
            "params": _n_params(plain),
            "fwd_flops": forward_flops(plain, plain_inputs),
        },
        "method": {"name": cfg.method.name, "params": _n_params(model), "fwd_flops": forward_flops(model, model_inputs)},
        "resolution": {"frames": frames, "height": height, "width": width, "batch": 1},
    }
    result["overhead"] = {
        "params_pct": _pct(result["method"]["params"], result["backbone"]["params"]),
        "fwd_flops_pct": _pct(result["method"]["fwd_flops"], result["backbone"]["fwd_flops"]),
    }
    if time:
        if not torch.cuda.is_available():
            raise ConfigError("--time measures CUDA forward times and needs a GPU; drop --time on this machine")
        timings = {}
        for key, builder in (("backbone", lambda: build_backbone(spec, size=size, init="random", tiny_config=cfg.backbone.tiny_config)),
                             ("method", lambda: method.build_model(cfg, spec))):
            with torch.device("cuda"):
                net = builder().to(torch.bfloat16).eval()
                inputs = method.example_inputs(spec, size, frames, height, width, model=net)
            timings[key] = _forward_ms(net, inputs)
            del net
            torch.cuda.empty_cache()
        result["backbone"]["fwd_ms"] = timings["backbone"]
        result["method"]["fwd_ms"] = timings["method"]
        result["overhead"]["fwd_time_pct"] = _pct(timings["method"], timings["backbone"])
        result["device"] = torch.cuda.get_device_name()
    return result


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    b, m, o = result["backbone"], result["method"], result["overhead"]
    table = Table(title=f"{b['name']} + {m['name']} @ {result['resolution']}")
    table.add_column("")
    table.add_column("backbone", justify="right")
    table.add_column("method", justify="right")
    table.add_column("overhead", justify="right")
    table.add_row("params", f"{b['params']:,}", f"{m['params']:,}", f"{o['params_pct']:+.4f}%")
    table.add_row("fwd FLOPs", f"{b['fwd_flops']:.4g}", f"{m['fwd_flops']:.4g}", f"{o['fwd_flops_pct']:+.4f}%")
    if "fwd_ms" in b:
        table.add_row("fwd ms", f"{b['fwd_ms']:.2f}", f"{m['fwd_ms']:.2f}", f"{o['fwd_time_pct']:+.2f}%")
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        print(overrides_help("profile", 'exp=NAME [--json] [--time] [overrides...]'))
        return 0
    as_json, time = "--json" in argv, "--time" in argv
    overrides = [a for a in argv if a not in ("--json", "--time")]
    try:
        result = profile(load_config(overrides), time=time)
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        _print_table(result)
    return 0
