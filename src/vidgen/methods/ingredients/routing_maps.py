"""Routing maps (Ingredients Fig. 5): the router's ID assignment per video token as an image grid.

``vidgen sample ... ids=[...] routing_maps=true`` writes ``<clip>.routing.png`` next to the mp4:
one row per shown routed layer (every 8th routed block: 0, 8, 16, ...), one column per shown latent
frame (every 4th: 0, 4, 8, ...), as Fig. 5 samples them; tiny models show whatever exists. Each tile
is the token grid (F' x H'/2 x W'/2 of CogVideoX) of one frame, each token coloured by the ID it is
routed to (argmax of the logits, padded IDs excluded, Eq. 3), ID n in ``PALETTE[n]``, tiles
separated by white lines. Fig. 5 shows its maps at several denoising steps without saying which;
vidgen shows the final step's (the routing the finished clip was made with), conditional branch.
"""

from __future__ import annotations

import colorsys
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vidgen.methods.ingredients.injection import masked_logits

FRAME_EVERY, LAYER_EVERY = 4, 8  # Fig. 5: every 4th latent frame, every 8th layer
TILE_SCALE, GAP = 8, 2  # pixels per token (nearest), white pixels between tiles
# ID 0, 1, 2, ...: red, green, blue, yellow, purple, cyan, orange, magenta (Kelly-style, distinct)
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (145, 30, 180), (70, 240, 240),
           (245, 130, 48), (240, 50, 230)]  # fmt: skip


def id_colors(n: int) -> Tensor:
    """[n, 3] uint8: ``PALETTE`` first, then evenly spaced hues for IDs beyond it."""
    extra = [colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.8, 0.9) for i in range(max(0, n - len(PALETTE)))]
    colors = PALETTE[:n] + [tuple(round(255 * c) for c in rgb) for rgb in extra]
    return torch.tensor(colors, dtype=torch.uint8).reshape(n, 3)


def routing_grid(
    logits: list[Tensor],
    valid: Tensor,
    grid: tuple[int, int, int],
    frame_every: int = FRAME_EVERY,
    layer_every: int = LAYER_EVERY,
    scale: int = TILE_SCALE,
    gap: int = GAP,
) -> Tensor:
    """The Fig. 5 grid [H, W, 3] uint8 of one sample's routing.

    logits: one [L, N] (or [1, L, N]) per routed block, L = F' * h * w tokens in the denoiser's
    order (frame, row, column); valid [N] bool; grid (F', h, w). Rows: blocks 0, layer_every, ...;
    columns: frames 0, frame_every, ...
    """
    frames, h, w = grid
    layers = logits[::layer_every]
    shown = list(range(0, frames, frame_every))
    if not layers:
        raise ValueError("routing maps: no routing logits (the sample ran without reference faces)")
    colors = id_colors(int(valid.shape[-1]))
    tile_h, tile_w = h * scale, w * scale
    out = torch.full(
        (len(layers) * (tile_h + gap) - gap, len(shown) * (tile_w + gap) - gap, 3), 255, dtype=torch.uint8
    )
    for r, phi in enumerate(layers):
        phi = phi.reshape(-1, phi.shape[-1]).float().cpu()
        if phi.shape[0] != frames * h * w:
            raise ValueError(f"routing maps: {phi.shape[0]} tokens, expected F' x h x w = {frames}x{h}x{w}")
        ids = masked_logits(phi[None], valid.reshape(1, -1).bool().cpu())[0].argmax(-1).view(frames, h, w)
        for c, f in enumerate(shown):
            tile = colors[ids[f]].repeat_interleave(scale, 0).repeat_interleave(scale, 1)
            y, x = r * (tile_h + gap), c * (tile_w + gap)
            out[y : y + tile_h, x : x + tile_w] = tile
    return out


def save_png(path: Path, image: Tensor) -> Path:
    """Write ``image`` [H, W, 3] uint8 as a PNG atomically (temp file in the folder, then rename)."""
    from PIL import Image

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        Image.fromarray(np.ascontiguousarray(image.numpy())).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
