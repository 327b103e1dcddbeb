"""The global face composite (Ingredients Sec. 3.1, "global facial embedding").

All ID crops pasted on one white canvas, which the method VAE-encodes as the I2V image latent.
The released code: a white 720 x 480 canvas, each aligned face resized to 360 x 360 and pasted
at (x = 360 i, y = 60) — room for exactly two faces. For N faces that do not fit, vidgen
shrinks the face side to width // N (the paper says only "padding with white pixels to the
required dimensions"; a choice, documented in docs/methods/ingredients.md), centred vertically.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidgen.errors import ConfigError

CANVAS_HW = (480, 720)
FACE_SIZE = 360


def canvas_layout(n: int, height: int, width: int, face_size: int) -> list[tuple[int, int, int]]:
    """(top, left, side) of each of the n faces: side = min(face_size, width // n, height)."""
    if n < 1:
        raise ConfigError("compose_canvas needs at least one face crop")
    side = min(face_size, width // n, height)
    top = (height - side) // 2
    return [(top, side * i, side) for i in range(n)]


def compose_canvas(
    crops: Tensor, height: int = CANVAS_HW[0], width: int = CANVAS_HW[1], face_size: int = FACE_SIZE
) -> Tensor:
    """crops [K, 3, S, S] in [-1, 1] -> canvas [3, height, width] in [-1, 1], white (1.0) elsewhere.

    Defaults = the released code (720 x 480, 360 px faces at (360 i, 60)); resize is bilinear
    without antialiasing, as cv2.resize's default.
    """
    canvas = crops.new_ones(3, height, width, dtype=torch.float32)
    for crop, (top, left, side) in zip(crops, canvas_layout(crops.shape[0], height, width, face_size)):
        face = F.interpolate(crop[None].float(), size=(side, side), mode="bilinear", align_corners=False)[0]
        canvas[:, top : top + side, left : left + side] = face
    return canvas
