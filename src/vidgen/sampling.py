"""`vidgen sample exp=NAME ckpt=PATH prompt="..." [out=PATH] [overwrite=true] [overrides]`: write an mp4.

Instance-grounded methods (InstanceV) also take `instances=LAYOUT.json`: the instance prompts and
boxes of the clip (format: `vidgen.instances.layout_file`), checked like training data, encoded
by the same text encoder, and sampled with the experiment's guidance (InstanceV: SAUG at CFG 5,
whose unconditional branch is built from the layout, not from `negative_prompt`);
`draw_layout=true` draws the requested boxes over the written clip.

The checkpoint is read by `vidgen.checkpoints.load_checkpoint` (`weights_only=True`; with EMA on,
Lightning stores the averaged weights in its `state_dict`) and must be of this config's method
and backbone. An existing `out=` file is refused unless `overwrite=true` (`sample.overwrite`);
the mp4 is written to a temp file and renamed into place. The prompt is encoded by the data's text encoder (the shapes
world's caption embedder, or a local text-encoder folder for shards) and the latents are decoded
by the data's codec (the shapes codec or a local VAE folder).
Identity-preserving methods also take `ids=[a.png,b.png]`, one reference face image per ID
(`vidgen.faces.sampling.reference_inputs`), passed to the method's `generate_faces`;
`routing_maps=true` also writes the router's ID assignment beside the mp4 (`<name>.routing.png`,
Ingredients Fig. 5).
STIV also takes `image=` / `video=` (condition frames) and `upsampler=TUP_RUN`: the STIV-JIT-TUP
cascade (`vidgen.methods.stiv.cascade`), the clip upsampled by a temporal-upsampler run.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from vidgen.backbones import get_backbone
from vidgen.checkpoints import CheckpointError, check_matches, load_checkpoint, resume_checkpoint
from vidgen.config import load_config, overrides_help, wants_help
from vidgen.errors import ConfigError, VidgenError
from vidgen.methods import method_class
from vidgen.run_folder import check_writable_dir
from vidgen.train import build_datamodule, data_resolution

SHORTHANDS = (
    *("ckpt", "prompt", "negative_prompt", "out", "overwrite", "steps", "guidance_scale", "seed"),
    *("instances", "draw_layout"),  # instance layout (InstanceV and the instance baselines)
    *("ids", "routing_maps"),  # reference faces, Fig. 5 routing maps (Ingredients)
    *("image", "video"),  # conditioning frames (STIV TI2V / V2V / TUP)
    "upsampler",  # STIV-JIT-TUP: a temporal-upsampler run cascaded after the model (STIV App. K)
)
QUOTED = tuple(
    f"sample.{k}"
    for k in ("prompt", "negative_prompt", "ckpt", "out", "instances", "image", "video", "upsampler")
)


def expand_shorthands(argv: list[str]) -> list[str]:
    """`ckpt=PATH` -> `sample.ckpt=PATH` etc.; quotes the prompt for Hydra's parser."""
    out = []
    for item in argv:
        key, sep, value = item.partition("=")
        if sep and key in SHORTHANDS:
            key = f"sample.{key}"
        if sep and key in QUOTED:
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        out.append(f"{key}{sep}{value}" if sep else item)
    return out


def load_weights(module: torch.nn.Module, ckpt: Path, cfg: DictConfig | None = None) -> None:
    hint = "sample with the same exp/preset/backbone overrides the checkpoint was trained with"
    checkpoint = load_checkpoint(ckpt)  # a checkpoint file, or a DeepSpeed (ZeRO) checkpoint folder
    if cfg is not None:
        check_matches(checkpoint, cfg, ckpt, hint)
    missing, unexpected = module.load_state_dict(checkpoint["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{ckpt}: checkpoint does not match the model of this config "
            f"(missing {len(missing)} keys e.g. {missing[:3]}, unexpected {len(unexpected)} e.g. {unexpected[:3]}); "
            + hint
        )


def output_path(cfg: DictConfig) -> Path:
    """Where the mp4 goes; refused before sampling if it is a folder, or a file without overwrite."""
    out = cfg.sample.out
    if not out:
        slug = re.sub(r"[^a-z0-9]+", "-", str(cfg.sample.prompt).lower()).strip("-")[:48] or "empty"
        tup = "-tup" if cfg.sample.get("upsampler") else ""  # a cascade never takes the plain sample's name
        out = Path(cfg.run.dir) / "samples" / f"{slug}-seed{int(cfg.sample.seed)}{tup}.mp4"
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"out={out} is a folder; give the path of the .mp4 file to write")
    if out.exists() and not cfg.sample.get("overwrite", False):
        raise ConfigError(f"out={out} exists; pass overwrite=true (sample.overwrite=true) to replace it")
    check_writable_dir(out.parent, "out's folder")
    return out


def generate_layout(cfg: DictConfig, module, datamodule, text: torch.Tensor, text_mask: torch.Tensor, size):
    """Latents [1, C, F', H', W'] of the caption grounded on the `instances=` layout, and its Instances.

    The layout goes through the method's own sample transform (the training data's checks, SAUG's
    sentinels) and its ``generate_instances`` (``sample.guidance`` at ``sample.guidance_scale``).
    """
    from vidgen.data.sample import VideoSample, collate
    from vidgen.instances.layout_file import load_layout

    if not hasattr(module, "generate_instances"):
        raise ConfigError(
            f"instances={cfg.sample.instances}: method={cfg.method.name} takes no instance layout. "
            "Fix: drop instances=, or sample an instance-grounded experiment (e.g. exp=instancev_wan)"
        )
    frames, height, width = size
    max_instances = int(cfg.method.get("max_instances") or cfg.data.max_instances)
    instances = load_layout(cfg.sample.instances, frames, max_instances)
    instances.prompt_embeds, instances.prompt_mask = datamodule.text_encoder().encode(instances.prompts)
    sample_ = VideoSample(
        key="layout",
        latents=torch.zeros(module.latent_shape(frames, height, width)),
        text_embeds=text,
        text_mask=text_mask,
        caption=str(cfg.sample.prompt),
        frame_size=(frames, height, width),
        instances=instances,
    )
    sample_ = module.sample_transform(cfg, datamodule)(sample_)
    batch = collate([sample_]).to(module.device)
    latents = module.generate_instances(batch, int(cfg.sample.steps), int(cfg.sample.seed))
    return latents, instances


def sample(cfg: DictConfig) -> Path:
    spec = get_backbone(cfg.backbone.name)
    ckpt = cfg.sample.ckpt
    if not ckpt and Path(cfg.run.dir).is_dir():
        ckpt = resume_checkpoint(Path(cfg.run.dir))[0]  # the run's newest loadable checkpoint
    if not ckpt:
        raise ConfigError(f"no checkpoint given and none in {cfg.run.dir}/checkpoints; pass ckpt=PATH")
    ckpt = Path(ckpt)
    out = output_path(cfg)
    cfg = OmegaConf.merge(cfg, {"backbone": {"init": "random", "weights": None}})  # weights come from ckpt
    module = method_class(cfg.method.name)(cfg)
    load_weights(module, ckpt, cfg)
    module.eval()
    datamodule = build_datamodule(cfg, spec, micro_batch_size=1)
    encoder, codec = datamodule.text_encoder(), datamodule.codec()
    embeds, mask = encoder.encode([str(cfg.sample.prompt)])
    null_embeds, null_mask = encoder.encode([str(cfg.sample.negative_prompt)])
    frames, height, width = data_resolution(cfg, spec)
    upsampler = None
    if cfg.sample.get("upsampler"):  # STIV-JIT-TUP: the upsampler run is loaded and checked before sampling
        from vidgen.methods.stiv.cascade import load_upsampler

        shape = module.latent_shape(frames, height, width)
        upsampler = load_upsampler(cfg.sample.upsampler, module, shape, embeds.shape[-1])
    maps = _routing_maps_path(cfg, module, out)
    if cfg.sample.get("ids") is not None:  # identity-preserving methods: reference faces (vidgen.faces)
        latents = _generate_faces(
            cfg, module, embeds, mask, null_embeds, null_mask, (frames, height, width), codec
        )
        _write(out, module.decode_sample(latents, codec))
        if maps is not None:
            try:
                module.save_routing_maps(maps)  # Ingredients Fig. 5, beside the mp4
            except BaseException:
                out.unlink(missing_ok=True)
                raise
        return out
    image_latents = None
    if spec.image_condition:
        if cfg.data.name != "shapes":
            raise ConfigError(
                f"{spec.name} is image-conditioned; sampling it needs data=shapes (first frame of clip 0)"
            )
        image_latents = datamodule.dataset[0].image_latents[None]
    layout = cfg.sample.get("instances")
    instances = None
    if layout:
        latents, instances = generate_layout(
            cfg, module, datamodule, embeds[0], mask[0], (frames, height, width)
        )
    else:
        if hasattr(module, "condition_latents"):  # image= / video= conditioning frames (STIV)
            image_latents = module.condition_latents(cfg, codec, frames, height, width)
        latents = module.generate(
            embeds,
            mask,
            null_embeds,
            null_mask,
            latent_shape=module.latent_shape(frames, height, width),
            steps=int(cfg.sample.steps),
            guidance=str(cfg.sample.guidance),
            guidance_scale=float(cfg.sample.guidance_scale),
            seed=int(cfg.sample.seed),
            image_latents=image_latents,
        )
        if upsampler is not None:
            latents = upsampler(latents, embeds, mask, null_embeds, null_mask, int(cfg.sample.seed))
    video = module.decode_sample(latents, codec)
    if instances is not None and cfg.sample.get("draw_layout"):
        from vidgen.instances.layout_file import draw_layout

        video = draw_layout(video[0], instances)[None]
    return _write(out, video, fps=16 if upsampler is not None else 8)  # TUP: twice the frame rate


def _generate_faces(
    cfg: DictConfig, module, embeds, mask, null_embeds, null_mask, size, codec=None
) -> torch.Tensor:
    """Latents of the prompt with the `ids=[...]` reference faces, by the method's `generate_faces`."""
    if not hasattr(module, "generate_faces"):
        raise ConfigError(
            f"ids={list(cfg.sample.ids)}: method={cfg.method.name} takes no reference faces. "
            "Fix: drop ids=, or sample an identity-preserving experiment (e.g. exp=ingredients_stage2)"
        )
    from vidgen.faces.sampling import reference_inputs

    return module.generate_faces(
        reference_inputs(cfg),
        embeds,
        mask,
        null_embeds,
        null_mask,
        latent_shape=module.latent_shape(*size),
        steps=int(cfg.sample.steps),
        guidance=str(cfg.sample.guidance),
        guidance_scale=float(cfg.sample.guidance_scale),
        seed=int(cfg.sample.seed),
        codec=codec,  # Ingredients encodes the reference faces' composite (the I2V image latent)
    )


def _routing_maps_path(cfg: DictConfig, module, out: Path) -> Path | None:
    """`routing_maps=true`: `<out stem>.routing.png`, refused before sampling where it cannot be written."""
    if not cfg.sample.get("routing_maps"):
        return None
    if cfg.sample.get("ids") is None or not hasattr(module, "save_routing_maps"):
        raise ConfigError(
            f"routing_maps=true: method={cfg.method.name} without ids=[...] has no ID routing to save. "
            "Fix: sample an Ingredients experiment with ids=[a.png,b.png], or drop routing_maps="
        )
    maps = out.with_name(f"{out.stem}.routing.png")
    if maps.exists() and not cfg.sample.get("overwrite", False):
        raise ConfigError(f"{maps} exists; pass overwrite=true (sample.overwrite=true) to replace it")
    return maps


def _write(out: Path, video: torch.Tensor, fps: float = 8) -> Path:
    from vidgen.data.video_io import write_video

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")  # the suffix picks the container
    try:
        write_video(tmp, video[0], fps=fps)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        print(
            overrides_help(
                "sample",
                'exp=NAME ckpt=PATH prompt="..." [out=PATH] [negative_prompt=...] [steps=N] [guidance_scale=S] [seed=N] '
                "[instances=LAYOUT.json [draw_layout=true]] [ids=[a.png,b.png] [routing_maps=true]] [image=PATH | video=PATH] "
                "[upsampler=TUP_RUN] [overrides...]\n"
                '  LAYOUT.json: {"instances": [{"prompt": "a red square", "box": [x1, y1, x2, y2]}, ...]} '
                '(normalised; or "boxes": one [x1, y1, x2, y2] or null per frame)',
            )
        )
        return 0
    try:
        cfg = load_config(expand_shorthands(argv))
        out = sample(cfg)
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"wrote {out}")
    return 0
