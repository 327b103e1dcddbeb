"""Instance masks as the seg tokenizer reads them, 8 pixels per byte.

The seg branch resizes every instance mask to ``seg_resolution``^2 (nearest) before its ConvNeXt.
The transform does that resize once per sample and packs the result along the width, so a sample
carries [F', N, r, ceil(r / 8)] uint8 instead of [F', N, H, W] bool: 20.6 MB instead of 251.6 MB
on Wan2.1 at 81 x 480 x 832 with 30 slots (docs/methods/instancediffusion.md). Unpacked, the masks
are the resized bool masks bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_BIT = 2 ** torch.arange(8, dtype=torch.uint8)  # pixel j of a byte is bit j (little-endian)


def resize_masks(masks: Tensor, resolution: int) -> Tensor:
    """[..., H, W] bool -> [..., r, r] bool, nearest (the seg tokenizer's own resize)."""
    lead = masks.shape[:-2]
    if masks.numel() == 0:  # no instances (interpolate refuses an empty tensor)
        return masks.new_zeros(*lead, resolution, resolution)
    flat = masks.reshape(1, -1, *masks.shape[-2:]).float()
    out = F.interpolate(flat, size=(resolution, resolution), mode="nearest")
    return out.reshape(*lead, resolution, resolution) > 0.5


def pack_bits(masks: Tensor) -> Tensor:
    """[..., W] bool -> [..., ceil(W / 8)] uint8 (the last byte zero-padded)."""
    m = F.pad(masks.to(torch.uint8), (0, -masks.shape[-1] % 8))
    return (m.unflatten(-1, (-1, 8)) * _BIT.to(m.device)).sum(-1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, width: int) -> Tensor:
    """[..., ceil(W / 8)] uint8 -> [..., W] bool (the inverse of ``pack_bits``)."""
    if packed.shape[-1] != -(-width // 8):
        raise ValueError(
            f"packed masks have {packed.shape[-1]} bytes per row; {width} pixels need {-(-width // 8)}"
        )
    return ((packed[..., None] & _BIT.to(packed.device)) != 0).flatten(-2)[..., :width]
