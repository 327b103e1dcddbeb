"""Instance-masked fusion (InstanceDiffusion Eq. 2): GLIGEN's gated self-attention with MaskAttn.

On a diffusers U-Net the grounding enters as GLIGEN's does: ``cross_attention_kwargs={"gligen":
{...}}``; the U-Net calls ``position_net(**kwargs)`` once (here ``GroundingNet``: UniFusion tokens
plus the instance boxes) and every ``BasicTransformerBlock`` calls ``fuser(x, objs)`` between its
self- and cross-attention (diffusers attention.py "1.2 GLIGEN Control"). ``MaskedFuser`` is the
shared ``GatedSelfAttention`` whose attention gets the MaskAttn mask at the block's token grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from vidgen.instances.gated_attention import GatedSelfAttention
from vidgen.instances.grounding import box_token_masks
from vidgen.methods.instancediffusion.maskattn import mask_attention_mask, masked_attention
from vidgen.methods.instancediffusion.tokenizers import ALL_FORMATS, Locations, UniFusion


@dataclass
class FusionInput:
    """One forward's grounding: tokens [B, T, c]; boxes [B, N, 4]; valid [B, N]; owners [T];
    latent (H, W); MaskAttn on or off. Masks are built once per token grid and reused by its blocks."""

    tokens: Tensor
    boxes: Tensor
    valid: Tensor
    owners: Tensor
    latent_hw: tuple[int, int]
    mask_attn: bool
    containers: bool
    _masks: dict = field(default_factory=dict)

    def grid(self, tokens: int) -> tuple[int, int]:
        h, w = self.latent_hw
        factor = round((h * w / tokens) ** 0.5)
        if (h // factor) * (w // factor) != tokens:
            raise ValueError(f"{tokens} visual tokens are not a downsampled {h} x {w} latent grid")
        return h // factor, w // factor

    def attention_mask(self, tokens: int) -> Tensor | None:
        """MaskAttn over [V (tokens), G] at that grid -> bool [B, tokens + T, tokens + T], or None (off)."""
        if not self.mask_attn:
            return None
        if tokens not in self._masks:
            cover = (
                box_token_masks(self.boxes.float(), self.grid(tokens)) & self.valid[..., None]
            )  # [B, N, S]
            self._masks[tokens] = mask_attention_mask(cover[:, None], self.owners, self.containers)[:, 0]
        return self._masks[tokens]


class MaskedFuser(GatedSelfAttention):
    """``x + tanh(a_attn) SA_mask([x, Linear(G)])[:N] ; x + tanh(a_dense) FF(LN(x))`` (Eq. 2 + GLIGEN's FF).

    Instance regions I(v) are the boxes (the released code's ``att_masks``; the paper allows box or
    mask regions). With ``objs`` a plain tensor it is the shared GLIGEN block, unmasked. ``frames``
    > 1 (Wan): x is [B, F' S, d] and ``objs`` holds B F' rows (frames fastest), one per latent frame.
    """

    def forward(self, x: Tensor, objs: FusionInput | Tensor, frames: int = 1) -> Tensor:
        if not isinstance(objs, FusionInput):
            return super().forward(x, objs, frames)
        if not self.enabled:
            return x
        if frames > 1:  # a video DiT's [B, F' S, d]: each latent frame fuses with its own grounding
            b, d = x.shape[0], x.shape[-1]
            return self.forward(x.reshape(b * frames, -1, d), objs).reshape(b, -1, d)
        n = x.shape[1]  # [B, N_visual, d]
        g = self.linear(objs.tokens.to(x.dtype))  # [B, T, d]
        mask = objs.attention_mask(n)  # [B, N + T, N + T] or None
        h = self.norm1(torch.cat([x, g], dim=1))  # [B, N + T, d]
        h = self.attn(h) if mask is None else masked_attention(self.attn, h, mask)  # one mask, all heads
        x = x + self.alpha_attn.tanh() * h[:, :n]
        return x + self.alpha_dense.tanh() * self.ff(self.norm2(x))


class GroundingNet(nn.Module):
    """The U-Net's ``position_net``: grounding tensors -> ``FusionInput`` for every fuser.

    Inputs (all batched, N instance slots): g_text [B, N, D_text] pooled instance captions; g_valid
    [B, N]; g_boxes [B, N, 4]; g_points [B, N, 2]; g_scribbles [B, N, P_s, 2]; g_polygons [B, N, P_m, 2];
    g_masks [B, N, H, W] bool or packed [B, N, r, ceil(r / 8)] uint8 (``SegTokenizer``); g_given [B, 5, N] (the paper's s per format, ``ALL_FORMATS`` order; the
    seg row reads column 0); g_latent (latent H, W) ints.
    """

    def __init__(self, unifusion: UniFusion, mask_attn: bool, containers: bool):
        super().__init__()
        self.unifusion, self.mask_attn, self.containers = unifusion, mask_attn, containers

    def forward(
        self, g_text, g_valid, g_boxes, g_points, g_scribbles, g_polygons, g_masks, g_given, g_latent
    ):
        valid = g_valid.bool()
        given = {f: g_given[:, i].bool() for i, f in enumerate(ALL_FORMATS)}
        given["seg"] = given["seg"][:, 0]
        loc = Locations(g_text, valid, g_boxes, g_points, g_scribbles, g_polygons, g_masks, given)
        tokens = self.unifusion(loc)
        owners = self.unifusion.owners().to(tokens.device)
        return FusionInput(tokens, g_boxes, valid, owners, tuple(g_latent), self.mask_attn, self.containers)
