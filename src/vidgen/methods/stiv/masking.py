"""MaskDiT training (Zheng et al. 2023; STIV Sec. 2.2, A.1, Table 3): token masking and its loss.

Spatial masking drops the same spatial positions in every temporal token of a sample (so temporal
attention still sees whole tubes); temporal masking (Table 3 "+ temp. mask") drops whole temporal
tokens. Indices are drawn as MaskDiT does (argsort of uniform noise), then sorted.
"""

from __future__ import annotations

import torch
from torch import Tensor


def keep_count(n: int, ratio: float) -> int:
    """Tokens kept out of ``n`` at mask ratio ``ratio`` (MaskDiT: ``int(n * (1 - ratio))``, at least 1)."""
    return max(1, int(n * (1.0 - ratio)))


def draw_keep(batch: int, n: int, ratio: float, gen: torch.Generator) -> Tensor | None:
    """Sorted kept token indices [B, keep_count(n, ratio)] (long), or None when nothing is masked."""
    if ratio <= 0.0:
        return None
    noise = torch.rand(batch, n, generator=gen, device=gen.device)
    return noise.argsort(dim=-1)[:, : keep_count(n, ratio)].sort(dim=-1).values


def kept_latent_mask(
    keep_spatial: Tensor | None,
    keep_temporal: Tensor | None,
    batch: int,
    grid: tuple[int, int, int],  # token grid (T, h, w)
    patch: tuple[int, int, int],  # (pt, p, p)
    device,
) -> Tensor:
    """[B, 1, F, H, W] float: 1 on latent positions of kept tokens (the MaskDiT loss region)."""
    t, h, w = grid
    tokens = torch.ones(batch, t, h * w, device=device)
    if keep_spatial is not None:
        tokens = torch.zeros_like(tokens).scatter(2, keep_spatial.to(device)[:, None].expand(-1, t, -1), 1.0)
    if keep_temporal is not None:
        rows = torch.zeros(batch, t, 1, device=device).scatter(1, keep_temporal.to(device)[..., None], 1.0)
        tokens = tokens * rows
    pt, p, _ = patch
    mask = tokens.reshape(batch, 1, t, h, w)
    return mask.repeat_interleave(pt, 2).repeat_interleave(p, 3).repeat_interleave(p, 4)


def masked_mse(err: Tensor, region: Tensor) -> Tensor:
    """Per-sample mean of ``err`` [B, C, F, H, W] over ``region`` [B, 1, F, H, W] (0/1). [B]"""
    weight = region.expand_as(err)
    return (err * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1.0)
