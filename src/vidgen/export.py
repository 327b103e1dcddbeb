"""`vidgen export ckpt=PATH out=DIR [format=diffusers|safetensors] [config=RUN/config.yaml]`

Turns a training checkpoint into weights the rest of the project (and diffusers) can load:

- a ZeRO checkpoint (a folder, as `strategy=deepspeed_zero2*` writes `last.ckpt/`) is consolidated
  with Lightning's `convert_zero_checkpoint_to_fp32_state_dict`; a plain Lightning checkpoint is
  read with `torch.load(weights_only=True)`;
- `format=diffusers` (default) writes `DIR/<transformer|unet>/` (config.json + safetensors, via
  `save_pretrained`), which `backbone.weights=DIR` loads;
- `format=safetensors` writes `DIR/denoiser.safetensors`: the method's whole denoiser state dict
  (e.g. with a method's extra layers), plus `DIR/config.yaml` of the run.

The run's resolved config (`config.yaml` in the run folder, found next to `checkpoints/`) says
which backbone and method the weights belong to; `config=PATH` points elsewhere.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from vidgen.errors import ConfigError, VidgenError

FORMATS = ("diffusers", "safetensors")
USAGE = "usage: vidgen export ckpt=PATH out=DIR [format=diffusers|safetensors] [config=RUN/config.yaml]"


def _parse(argv: list[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in ("ckpt", "out", "format", "config"):
            raise ConfigError(f"export: unexpected argument {item!r}; {USAGE}")
        args[key] = value
    for key in ("ckpt", "out"):
        if not args.get(key):
            raise ConfigError(f"export: {key}= is required; {USAGE}")
    fmt = args.setdefault("format", "diffusers")
    if fmt not in FORMATS:
        raise ConfigError(f"export: format={fmt} is not valid; use one of {', '.join(FORMATS)}")
    return args


def find_config(ckpt: Path) -> Path:
    """config.yaml of the run a checkpoint belongs to (checkpoints/x.ckpt or hpc_ckpt_N.ckpt)."""
    for folder in (ckpt.parent, ckpt.parent.parent, ckpt.parent.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    raise ConfigError(f"export: no config.yaml found in the run folder of {ckpt}; pass config=RUN/config.yaml")


def load_state_dict(ckpt: str | Path) -> dict[str, torch.Tensor]:
    """The LightningModule state dict of a checkpoint: a ZeRO folder (consolidated in fp32) or a file."""
    ckpt = Path(ckpt)
    if not ckpt.exists():
        raise ConfigError(f"export: ckpt={str(ckpt)!r} does not exist")
    if ckpt.is_dir():
        try:
            from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict
        except ImportError as err:  # deepspeed missing
            raise ConfigError(f"export: ckpt={str(ckpt)!r} is a DeepSpeed (ZeRO) folder; {err}") from None
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "consolidated.ckpt"
            convert_zero_checkpoint_to_fp32_state_dict(str(ckpt), str(out))
            # the converter pickles a few non-tensor objects (e.g. the DeepSpeed config)
            checkpoint = torch.load(out, map_location="cpu", weights_only=False)
    else:
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"export: {ckpt} has no 'state_dict' (not a Lightning checkpoint?)")
    return state


def build_denoiser(cfg: Any, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The method's denoiser (`module.model`) with the checkpoint's weights."""
    from vidgen.backbones import get_backbone
    from vidgen.methods import method_class

    spec = get_backbone(cfg.backbone.name)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    weights = cfg.backbone.get("weights")
    if weights is None:
        cfg.backbone.init = "random"  # the weights come from the checkpoint
    model = method_class(cfg.method.name).build_model(cfg, spec)
    sub = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    if not sub:
        raise ConfigError("export: the checkpoint holds no denoiser weights (no 'model.' keys)")
    model.load_state_dict(sub, strict=True)
    return model.eval()


def export(ckpt: str | Path, out: str | Path, fmt: str = "diffusers", config: str | Path | None = None) -> Path:
    ckpt, out = Path(ckpt), Path(out)
    if not ckpt.exists():
        raise ConfigError(f"export: ckpt={str(ckpt)!r} does not exist")
    cfg = OmegaConf.load(config or find_config(ckpt))
    state = load_state_dict(ckpt)
    model = build_denoiser(cfg, state)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(tensors, str(out / "denoiser.safetensors"), metadata={"backbone": str(cfg.backbone.name)})
        OmegaConf.save(cfg, out / "config.yaml")
        return out / "denoiser.safetensors"
    from vidgen.backbones import get_backbone

    spec = get_backbone(cfg.backbone.name)
    inner = getattr(model, "model", None)
    if inner is None or not isinstance(inner, torch.nn.Module):
        raise ConfigError(
            f"export: method={cfg.method.name}'s denoiser is not a plain backbone; use format=safetensors"
        )
    folder = out / spec.weights_subfolder
    if folder.exists():
        shutil.rmtree(folder)
    if hasattr(inner, "save_pretrained"):
        inner.save_pretrained(str(folder), safe_serialization=True)
    else:  # a native model: config.json + safetensors, as vidgen.backbones loads it
        import json

        from safetensors.torch import save_file

        folder.mkdir(parents=True)
        config = dict(getattr(inner, "config", None) or spec.config_for(cfg.backbone.size))
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_file({k: v.contiguous() for k, v in inner.state_dict().items()}, str(folder / "model.safetensors"))
    return folder


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    try:
        args = _parse(argv)
        path = export(args["ckpt"], args["out"], args["format"], args.get("config"))
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    hint = f"  (load with backbone.weights={args['out']})" if args["format"] == "diffusers" else ""
    print(f"exported {args['ckpt']} -> {path}{hint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
