"""``method.visual_position=sincos`` (a knob, off by default; not in GLIGEN): 2D sin-cos positions on the
visual tokens that GLIGEN's gated self-attention reads.

GLIGEN's visual tokens carry no positional encoding of their own: a box's grounding token finds the
tokens it covers only through what the frozen U-Net's features already say about where they are.
On SD1.x's 64 x 64 latents the deep U-Net (receptive fields reaching the zero-padded borders) says
it; a tiny two-level U-Net on 8 x 8 latents barely does, so there GLIGEN learns to read its boxes
slowly: none at 3,000 steps, clearly at 20,000 (benchmarks/gligen_layout.py, grounding probe;
docs/methods/gligen.md, Shapes-world effect, section 7), while with these positions it reads them at
3,000 already. The positions are added after LN1 to the visual part
of the attention input only: the residual stream is untouched, nothing is learned (the block keeps
``16 d^2 + c d + 15 d + 2`` parameters) and zero gates are still the backbone bit for bit.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import get_2d_sincos_pos_embed
from torch import Tensor

from vidgen.instances.gated_attention import GatedSelfAttention

VISUAL_POSITIONS = ("none", "sincos")


def token_grid(latent_hw: tuple[int, int], tokens: int) -> tuple[int, int]:
    """The (h, w) grid of ``tokens`` visual tokens at one U-Net level of a latent (H', W')."""
    h, w = latent_hw
    factor = round((h * w / tokens) ** 0.5)
    if factor < 1 or (h // factor) * (w // factor) != tokens:
        raise ValueError(f"{tokens} visual tokens are not a downsampled {h} x {w} latent grid")
    return h // factor, w // factor


class PositionedFuser(GatedSelfAttention):
    """``x + tanh(a_attn) SelfAttn([LN1(x) + P, LN1(Linear(objs))])[:N] ; x + tanh(a_dense) FF(LN2(x))``.

    P [N, d]: diffusers' 2D sin-cos embedding of each token's row and column (MAE's; coordinates
    span 0..16 at every level, so one position means the same at every level). ``latent_hw``: the
    latent (H', W') of the current forward, set by ``GLIGENSD.forward`` (the block sees only tokens).
    """

    latent_hw: tuple[int, int] | None = None

    def forward(self, x: Tensor, objs: Tensor, frames: int = 1) -> Tensor:
        if not self.enabled:
            return x
        if frames != 1 or self.latent_hw is None:
            raise ValueError("PositionedFuser: images only (sd1.5), with latent_hw set by the denoiser")
        n, d = x.shape[1], x.shape[2]  # [B, N, d] visual tokens, row-major
        pos = get_2d_sincos_pos_embed(d, token_grid(self.latent_hw, n), device=x.device)  # [N, d]
        a = self.norm1(torch.cat([x, self.linear(objs)], dim=1))  # [B, N + M, d]
        a = torch.cat([a[:, :n] + pos.to(a.dtype), a[:, n:]], dim=1)
        x = x + self.alpha_attn.tanh() * self.attn(a)[:, :n]
        return x + self.alpha_dense.tanh() * self.ff(self.norm2(x))
