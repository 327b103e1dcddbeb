"""The global facial embedding (Sec. 3.1-3.2): the ID crops VAE-encoded as the I2V image latent.

``before`` (Table 2 default): all crops pasted on one white canvas (``vidgen.faces.compose_canvas``,
the released 720 x 480 layout scaled to the clip), one VAE pass. ``after`` (Table 2's alternative):
the canvas cut into N side-by-side tiles, one face per tile, each tile encoded by its own VAE pass
and the latents concatenated along the width: the same layout, combined in latent space instead of
pixel space (the paper says only "concatenate the features at a latent space"; a choice).
``none`` (a diagnostic knob, not in the paper): an all-zero image latent of the same shape, so the
faces reach the DiT only through the routed features (Eq. 4). On the shapes world the I2V backbone
copies the canvas and the identities come from it, which leaves the router nothing to decide
(docs/methods/ingredients.md, "Why ce and none end at the same right-ID fraction"); ``none`` takes
the canvas away. Tried at the benchmark's small size only, where the I2V stand-in draws nothing
without its image latent; Table 3's effect was measured with Table 2's T2V init instead, which keeps
the canvas out as well ("Without the canvas").
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidgen.faces import compose_canvas

FACE_FRACTION = 360 / 480  # released: 360 px faces on a 480 px high canvas


def composite_latents(crops: Tensor, codec, height: int, width: int, scale: int, mode: str) -> Tensor:
    """crops [K, 3, S, S] in [-1, 1] -> image latents [C, 1, height / scale, width / scale]."""
    face = int(round(height * FACE_FRACTION))
    if mode in ("before", "none"):
        canvas = compose_canvas(crops, height, width, face)  # [3, H, W]
        latent = codec.encode(canvas[None, :, None])[0]
        return latent if mode == "before" else torch.zeros_like(latent)  # none: the shape, no content
    cols = width // scale  # latent columns, shared out over the K tiles
    split = [cols // len(crops) + (1 if i < cols % len(crops) else 0) for i in range(len(crops))]
    tiles = [
        codec.encode(compose_canvas(crop[None], height, n * scale, face)[None, :, None])[0]
        for crop, n in zip(crops, split)
    ]
    return torch.cat(tiles, dim=-1)
