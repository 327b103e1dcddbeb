"""The multi-scale Q-Former projector (Ingredients Sec. 3.2 "Multi-scale Projector").

Per ID: learned queries plus ID tokens (an MLP of the 1280-d global embedding) attend, scale by
scale, to the local features (CLIP hidden states at five depths), two perceiver layers per scale;
the first ``queries`` latents, projected, are that ID's face tokens F~^n [queries, output_dim].
Layer structure as the released ``LocalFacialExtractor`` (README facts C.2): the paper gives only
the Q-Former idea, so the released sizes are the defaults (conf/method/ingredients.yaml).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    """Linear-LN-LeakyReLU-Linear-LN-LeakyReLU-Linear (the released id/scale mappings)."""
    return nn.Sequential(
        nn.Linear(d_in, d_hidden),
        nn.LayerNorm(d_hidden),
        nn.LeakyReLU(),
        nn.Linear(d_hidden, d_hidden),
        nn.LayerNorm(d_hidden),
        nn.LeakyReLU(),
        nn.Linear(d_hidden, d_out),
    )


class PerceiverAttention(nn.Module):
    """Latents attend to cat[context, latents] (Flamingo / IP-Adapter perceiver layer)."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head**-0.25  # on q and k: dim_head^-1/2 in total
        self.norm_ctx, self.norm_latents = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, ctx: Tensor, latents: Tensor) -> Tensor:
        b, n_q, _ = latents.shape  # latents [B, Q, D]; ctx [B, M, D]
        ctx, latents = self.norm_ctx(ctx), self.norm_latents(latents)
        q = self.to_q(latents)  # [B, Q, inner]
        k, v = self.to_kv(torch.cat([ctx, latents], dim=1)).chunk(2, dim=-1)  # [B, M+Q, inner]
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))  # [B, h, *, d]
        weights = ((q * self.scale) @ (k * self.scale).transpose(-2, -1)).float().softmax(-1).type_as(q)
        out = (weights @ v).transpose(1, 2).reshape(b, n_q, -1)  # [B, Q, inner]
        return self.to_out(out)


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int):
        super().__init__(
            nn.LayerNorm(dim),
            nn.Linear(dim, dim * mult, bias=False),
            nn.GELU(),
            nn.Linear(dim * mult, dim, bias=False),
        )


class MultiScaleProjector(nn.Module):
    """``forward(id_embeds [B, N, id_dim], local_feats [S x [B, N, L, local_dim]]) -> [B, N, Q, output_dim]``."""

    def __init__(
        self,
        id_dim: int = 1280,
        local_dim: int = 1024,
        scales: int = 5,
        dim: int = 1024,
        layers_per_scale: int = 2,
        heads: int = 16,
        dim_head: int = 64,
        queries: int = 32,
        id_tokens: int = 5,
        output_dim: int = 2048,
        ff_mult: int = 4,
    ):
        super().__init__()
        self.scales, self.layers_per_scale, self.id_tokens, self.dim = (
            scales,
            layers_per_scale,
            id_tokens,
            dim,
        )
        self.latents = nn.Parameter(torch.randn(1, queries, dim) * dim**-0.5)  # the learned queries
        self.proj_out = nn.Parameter(torch.randn(dim, output_dim) * dim**-0.5)
        self.id_mapping = _mlp(id_dim, dim, id_tokens * dim)  # 1280-d embedding -> ID tokens
        self.mappings = nn.ModuleList(_mlp(local_dim, dim, dim) for _ in range(scales))
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, heads, dim_head), FeedForward(dim, ff_mult)])
            for _ in range(scales * layers_per_scale)
        )

    def forward(self, id_embeds: Tensor, local_feats: list[Tensor]) -> Tensor:
        if len(local_feats) != self.scales:
            raise ValueError(
                f"MultiScaleProjector expects {self.scales} local feature scales, got {len(local_feats)}"
            )
        b, n, _ = id_embeds.shape
        ids = self.id_mapping(id_embeds.flatten(0, 1)).view(b * n, self.id_tokens, self.dim)  # [BN, T, D]
        latents = torch.cat([self.latents.expand(b * n, -1, -1), ids], dim=1)  # [BN, Q+T, D]
        for s, feats in enumerate(local_feats):
            ctx = torch.cat([ids, self.mappings[s](feats.flatten(0, 1))], dim=1)  # [BN, T+L, D]
            for attn, ff in self.layers[s * self.layers_per_scale : (s + 1) * self.layers_per_scale]:
                latents = latents + attn(ctx, latents)
                latents = latents + ff(latents)
        out = latents[:, : self.latents.shape[1]] @ self.proj_out  # [BN, Q, output_dim]
        return out.view(b, n, *out.shape[1:])
