"""The Ingredients data transform: per clip, face embeddings, routing labels and the global composite.

Reads ``faces`` (crops, ID masks, boxes) of the typed sample; writes the extras below, padded to
``method.max_ids`` so clips with 1, 2 or 3 IDs stack into one batch, and replaces ``image_latents``
with the composite (Sec. 3.2: the global embedding is the I2V image latent).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor

from vidgen.data.sample import VideoSample
from vidgen.errors import DataError
from vidgen.faces import FacesConfig, FacialExtractor
from vidgen.methods.ingredients.composite import composite_latents
from vidgen.methods.ingredients.config import IngredientsConfig
from vidgen.methods.ingredients.losses import box_masks, downsample_labels, mask_channels

ID_GLOBAL = "ingredients/id_global"  # [M, id_dim]: ArcFace ++ CLIP per ID, zero where padded
ID_LOCAL = "ingredients/id_local"  # [S, M, L, C]: the CLIP hidden states per scale and ID
ID_VALID = "ingredients/id_valid"  # [M] bool
LABELS = "ingredients/labels"  # [F' * H'/p * W'/p] long: ID per video token, -1 background (Eq. 5's M)


def pad_ids(x: Tensor, m: int, dim: int = 0) -> Tensor:
    pad = list(x.shape)
    pad[dim] = m - x.shape[dim]
    return torch.cat([x, x.new_zeros(pad)], dim=dim)


def token_labels(faces, valid: Tensor, grid: tuple[int, int, int], labels: str) -> Tensor:
    """Per-token ID labels [F' * gh * gw] from the ID masks (seg) or the face boxes (box)."""
    masks = faces.id_masks.bool()  # [K, F, H, W]
    if labels == "box":
        masks = box_masks(faces.boxes[None].float(), masks.shape[-2], masks.shape[-1])[0]
    m = valid.shape[0]
    channels = mask_channels(pad_ids(masks, m)[None], valid[None])  # [1, 1 + M, F, H, W]
    return downsample_labels(channels, grid)[0].flatten()


def make_transform(cfg, datamodule, spec) -> Callable[[VideoSample], VideoSample]:
    hp = IngredientsConfig.from_cfg(cfg)
    extractor: list[FacialExtractor] = []  # built on first use: shards carry precomputed embeddings
    codec = datamodule.codec()
    source = f"data={cfg.data.name}" + (f" (data.root={cfg.data.root})" if cfg.data.get("root") else "")
    _, p_h, p_w = spec.patch_size
    scale = spec.vae_scale[1]

    def transform(sample: VideoSample) -> VideoSample:
        faces = sample.faces
        k = 0 if faces is None else int(faces.crops.shape[0])
        if k == 0:
            raise DataError(f"{source}, sample {sample.key!r}: no face (Ingredients needs >= 1 reference ID)")
        if k > hp.max_ids:
            raise DataError(
                f"{source}, sample {sample.key!r}: {k} face IDs, more than method.max_ids={hp.max_ids}. "
                f"Fix: method.max_ids={k}, or filter the clips"
            )
        valid = torch.arange(hp.max_ids) < k
        if faces.embeds is not None and faces.local_embeds is not None:  # `vidgen precompute` (vidgen.faces)
            id_global, id_local = faces.embeds.float(), list(faces.local_embeds.float().transpose(0, 1))
        else:
            if not extractor:
                extractor.append(FacialExtractor.from_config(FacesConfig(**hp.faces)))
            emb = extractor[0](faces.crops.float())
            id_global, id_local = emb.global_, emb.local
        _, f, h, w = sample.latents.shape
        extras = {
            ID_GLOBAL: pad_ids(id_global, hp.max_ids),
            ID_LOCAL: torch.stack([pad_ids(x, hp.max_ids) for x in id_local]),
            ID_VALID: valid,
            LABELS: token_labels(faces, valid, (f, h // p_h, w // p_w), hp.labels),
        }
        image = composite_latents(faces.crops.float(), codec, h * scale, w * scale, scale, hp.composite)
        return dataclasses.replace(
            sample, image_latents=image.to(sample.latents.dtype), extras={**sample.extras, **extras}
        )

    return transform
