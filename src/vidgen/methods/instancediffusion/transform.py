"""The InstanceDiffusion data transform: every location format of a sample's instances, padded to N slots.

Instances of pixel frame 0 on sd1.5 (images, frames = 1). On a video backbone (Wan) every extra
gets a latent-frame axis [F', N, ...]: latent frame k reads pixel frame k T_ds (``grounding_frames``,
as GLIGEN and InstanceV ground their latent frames). Scribble and inside
points are drawn with a generator seeded by the sample key, so a sample's points are the same in
every epoch and on every rank (the released loader redraws them; the paper is silent).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable

import torch
from torch import Tensor

from vidgen.backbones import get_backbone
from vidgen.data.sample import VideoSample
from vidgen.errors import DataError
from vidgen.instances.gated_attention import pool_phrases
from vidgen.instances.grounding import grounding_frames
from vidgen.instances.validate import check_instances
from vidgen.methods.instancediffusion.config import InstanceDiffusionConfig
from vidgen.methods.instancediffusion.denoiser import widths
from vidgen.methods.instancediffusion.locations import location_points
from vidgen.methods.instancediffusion.mask_bits import pack_bits, resize_masks

KEYS = {
    k: f"instancediffusion/{k}"
    for k in ("valid", "text", "boxes", "points", "scribbles", "polygons", "masks")
}


def _pad(x: Tensor, n: int) -> Tensor:
    out = x.new_zeros(n, *x.shape[1:])
    out[: x.shape[0]] = x
    return out


def instance_extras(
    sample: VideoSample, hp: InstanceDiffusionConfig, seg_resolution: int, frame: int = 0
) -> dict[str, Tensor]:
    """extras[KEYS[...]] of one sample at one pixel frame: valid [N], text [N, D], boxes [N, 4],
    points [N, 2], scribbles [N, P_s, 2], polygons [N, P_m, 2], masks [N, r, ceil(r / 8)] uint8: the
    masks resized to the seg tokenizer's r x r and packed 8 pixels a byte (``mask_bits``; N = method.max_instances)."""
    inst, n = sample.instances, hp.max_instances
    present = inst.visible[:, frame].bool()
    boxes = inst.boxes[:, frame].float()
    masks = inst.masks[:, frame].bool() if inst.masks is not None else None
    seed = sample.key if frame == 0 else f"{sample.key}/{frame}"  # frame 0: the image seeds, unchanged
    gen = torch.Generator().manual_seed(zlib.crc32(seed.encode()))
    masks, points, scribbles, polygons = location_points(
        boxes, masks, hp.scribble_points, hp.polygon_boundary_points, hp.polygon_inside_points, gen
    )
    text = pool_phrases(inst.prompt_embeds.float(), inst.prompt_mask, hp.phrase_pool)  # [n, D]
    values = {
        "valid": present, "text": text, "boxes": boxes, "points": points,
        "scribbles": scribbles, "polygons": polygons,
        "masks": pack_bits(resize_masks(masks & present[:, None, None], seg_resolution)),
    }  # fmt: skip
    return {KEYS[k]: _pad(v, n) for k, v in values.items()}


def video_extras(
    sample: VideoSample, hp: InstanceDiffusionConfig, seg_resolution: int, t_ds: int
) -> dict[str, Tensor]:
    """``instance_extras`` of pixel frames 0, T_ds, 2 T_ds, ... stacked: [F', N, ...] (one per latent frame)."""
    per = [
        instance_extras(sample, hp, seg_resolution, int(f))
        for f in grounding_frames(sample.instances.boxes.shape[1], t_ds)
    ]
    return {k: torch.stack([p[k] for p in per]) for k in per[0]}


def make_transform(cfg, datamodule) -> Callable[[VideoSample], VideoSample]:
    hp = InstanceDiffusionConfig.from_cfg(cfg)
    spec = get_backbone(cfg.backbone.name)
    video = spec.family != "sd"  # per-latent-frame grounding on a video backbone
    seg_resolution = widths(hp, cfg.backbone.size == "tiny")[2]
    source = f"data={cfg.data.name}" + (f" (data.root={cfg.data.root})" if cfg.data.get("root") else "")

    def transform(sample: VideoSample) -> VideoSample:
        check_instances(sample.instances, sample.key, hp.max_instances, source)
        if sample.instances.prompt_embeds is None:
            raise DataError(
                f"{source}, sample {sample.key!r}: instances have no prompt_embeds (InstanceDiffusion's "
                "tau(c_i)). Fix: re-run `vidgen precompute` with instance prompts"
            )
        if video:
            extras = video_extras(sample, hp, seg_resolution, spec.vae_scale[0])
        else:
            extras = instance_extras(sample, hp, seg_resolution)
        return dataclasses.replace(sample, extras={**sample.extras, **extras})

    return transform
