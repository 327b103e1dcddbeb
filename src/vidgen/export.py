"""`vidgen export ckpt=PATH out=DIR [format=diffusers|safetensors] [config=RUN/config.yaml] [--overwrite]`

Turns a training checkpoint into weights the rest of the project (and diffusers) can load:

- a ZeRO checkpoint (a folder, as `strategy=deepspeed_zero2*` writes `last.ckpt/`) is consolidated
  with Lightning's `convert_zero_checkpoint_to_fp32_state_dict`; a plain Lightning checkpoint is
  read with `torch.load(weights_only=True)` (both by `vidgen.checkpoints.load_checkpoint`);
- `format=diffusers` (default) writes `DIR/<transformer|unet>/` (config.json + safetensors, via
  `save_pretrained`), which `backbone.weights=DIR` loads;
- `format=safetensors` writes `DIR/denoiser.safetensors`: the method's whole denoiser state dict
  (e.g. with a method's extra layers), plus `DIR/config.yaml` of the run.

The run's resolved config (`config.yaml` in the run folder, found next to `checkpoints/`) says
which backbone and method the weights belong to; `config=PATH` points elsewhere.

A non-empty `out=` is refused unless `--overwrite` (or `export.overwrite=true`); the export is
written into a temp folder beside `out` and renamed into place, so a failed or killed export
leaves `out` as it was. `--overwrite` replaces what an export writes and never deletes other files.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from vidgen.checkpoints import check_matches, load_checkpoint, load_matching_state
from vidgen.errors import ConfigError, VidgenError
from vidgen.run_folder import check_writable_dir, remove_dead_temp

FORMATS = ("diffusers", "safetensors")
USAGE = (
    "usage: vidgen export ckpt=PATH out=DIR [format=diffusers|safetensors] [config=RUN/config.yaml] "
    "[--overwrite | export.overwrite=true]"
)
# What an export writes into a diffusers folder: the only files --overwrite may replace there.
EXPORT_FILES = ("config.json", ".safetensors", ".safetensors.index.json")
TRUE = ("true", "1", "yes")


def _parse(argv: list[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for item in argv:
        if item == "--overwrite":
            args["overwrite"] = "true"
            continue
        key, sep, value = item.partition("=")
        key = key.removeprefix("export.")
        if not sep or key not in ("ckpt", "out", "format", "config", "overwrite"):
            raise ConfigError(f"export: unexpected argument {item!r}; {USAGE}")
        args[key] = value
    for key in ("ckpt", "out"):
        if not args.get(key):
            raise ConfigError(f"export: {key}= is required; {USAGE}")
    fmt = args.setdefault("format", "diffusers")
    if fmt not in FORMATS:
        raise ConfigError(f"export: format={fmt} is not valid; use one of {', '.join(FORMATS)}")
    if args.setdefault("overwrite", "false").lower() not in (*TRUE, "false", "0", "no"):
        raise ConfigError(f"export: overwrite={args['overwrite']} is not valid; use true or false")
    return args


def find_config(ckpt: Path) -> Path:
    """config.yaml of the run a checkpoint belongs to (checkpoints/x.ckpt or hpc_ckpt_N.ckpt)."""
    for folder in (ckpt.parent, ckpt.parent.parent, ckpt.parent.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    raise ConfigError(
        f"export: no config.yaml found in the run folder of {ckpt}; pass config=RUN/config.yaml"
    )


def load_state_dict(ckpt: str | Path) -> dict[str, torch.Tensor]:
    """The LightningModule state dict of a checkpoint: a ZeRO folder (consolidated in fp32) or a file."""
    return load_checkpoint(ckpt)["state_dict"]


def build_denoiser(
    cfg: Any, state: dict[str, torch.Tensor], ckpt: str | Path = "checkpoint"
) -> torch.nn.Module:
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
        raise ConfigError(f"export: {ckpt} holds no denoiser weights (no 'model.' keys)")
    load_matching_state(model, sub, ckpt, "pass config= of the run this checkpoint was trained in")
    return model.eval()


def check_out(out: Path, overwrite: bool) -> None:
    """out= is a new or empty folder, or --overwrite is given; nothing is written here."""
    check_writable_dir(out, "export: out")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and not overwrite:
        raise ConfigError(
            f"export: out={out} is not empty (holds {', '.join(held[:5])}{', ...' if len(held) > 5 else ''}); "
            "choose a new folder, or pass --overwrite (export.overwrite=true) to replace what an export "
            "writes there (other files are kept)"
        )


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished export from its temp folder into out/: a rename, entry by entry."""
    if not out.exists() or not any(out.iterdir()):
        os.replace(tmp, out)  # a rename onto a missing or empty folder
        return
    for entry in tmp.iterdir():  # --overwrite: check every entry before moving any
        dest = out / entry.name
        if dest.is_dir():
            foreign = [p.name for p in dest.rglob("*") if p.is_file() and not p.name.endswith(EXPORT_FILES)]
            if foreign or not entry.is_dir():
                raise ConfigError(
                    f"export: {dest} holds files an export does not write ({', '.join(foreign[:5])}); "
                    "they are not deleted: move them, or export into another folder"
                )
        elif dest.exists() and entry.is_dir():
            raise ConfigError(f"export: {dest} is a file where the export writes a folder; move it")
    for entry in list(tmp.iterdir()):
        dest = out / entry.name
        if dest.is_dir():
            os.replace(dest, tmp / f".old-{entry.name}")  # swapped out, deleted with the temp folder
        os.replace(entry, dest)


def export(
    ckpt: str | Path,
    out: str | Path,
    fmt: str = "diffusers",
    config: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    ckpt, out = Path(ckpt), Path(out)
    checkpoint = load_checkpoint(ckpt)
    cfg = OmegaConf.load(config or find_config(ckpt))
    check_out(out, overwrite)
    check_matches(checkpoint, cfg, ckpt, "pass config= of the run this checkpoint was trained in")
    model = build_denoiser(cfg, checkpoint["state_dict"], ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temp(out.parent, f".{out.name}.*.tmp")  # what a killed export left
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.mkdir()
        written = _write(model, cfg, tmp, fmt)
        _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / written.relative_to(tmp)


def _write(model: torch.nn.Module, cfg: Any, out: Path, fmt: str) -> Path:
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
    if hasattr(inner, "save_pretrained"):
        inner.save_pretrained(str(folder), safe_serialization=True)
    else:  # a native model: config.json + safetensors, as vidgen.backbones loads it
        import json

        from safetensors.torch import save_file

        folder.mkdir(parents=True)
        config = dict(getattr(inner, "config", None) or spec.config_for(cfg.backbone.size))
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_file(
            {k: v.contiguous() for k, v in inner.state_dict().items()}, str(folder / "model.safetensors")
        )
    return folder


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    try:
        args = _parse(argv)
        overwrite = args["overwrite"].lower() in TRUE
        path = export(args["ckpt"], args["out"], args["format"], args.get("config"), overwrite=overwrite)
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    hint = f"  (load with backbone.weights={args['out']})" if args["format"] == "diffusers" else ""
    print(f"exported {args['ckpt']} -> {path}{hint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
