"""Face features into the video tokens: the perceiver cross-attention of Eq. 2 and the routed
residual of Eq. 4 (Ingredients Sec. 3.2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PerceiverCrossAttention(nn.Module):
    """Eq. 2: F~^n = CrossAttention(Q = H W^q, K = F^n W^k, V = F^n W^v).

    LayerNorm on both inputs, no biases, softmax in fp32, as the released module (facts C.3; the
    paper names only W^q, W^k, W^v). Not zero-initialised there, so adding its output changes the
    backbone at step 0; ``zero_init=True`` zeroes ``to_out`` (a knob, off by default: the paper
    states no initialisation) and the step-0 output is then the backbone's bit for bit.
    """

    def __init__(self, dim: int, kv_dim: int, heads: int, dim_head: int, zero_init: bool = False):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head**-0.5
        self.norm_kv, self.norm_q = nn.LayerNorm(kv_dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(kv_dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        if zero_init:
            nn.init.zeros_(self.to_out.weight)

    def forward(self, faces: Tensor, hidden: Tensor) -> Tensor:
        """faces [B, N, Q, kv_dim], hidden [B, L, dim] -> per-ID features [B, N, L, dim]."""
        b, n, q_len, _ = faces.shape
        length = hidden.shape[1]
        q = self.to_q(self.norm_q(hidden))  # [B, L, inner]
        q = q.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # [B, h, L, d]
        k, v = self.to_kv(self.norm_kv(faces)).chunk(2, dim=-1)  # [B, N, Q, inner]
        k, v = (t.unflatten(-1, (self.heads, -1)).permute(0, 1, 3, 2, 4) for t in (k, v))  # [B, N, h, Q, d]
        scores = (q[:, None] * self.scale) @ k.transpose(-2, -1)  # [B, N, h, L, Q]
        out = scores.float().softmax(-1).type_as(q) @ v  # [B, N, h, L, d]
        out = out.permute(0, 1, 3, 2, 4).reshape(b, n, length, -1)  # [B, N, L, inner]
        return self.to_out(out)


def route(features: Tensor, logits: Tensor, valid: Tensor, mode: str, forced: Tensor | None = None) -> Tensor:
    """F-bar of Eq. 3-4: per token, the feature of its ID.

    features [B, N, L, D], logits [B, L, N], valid [B, N] bool -> [B, L, D].
    ``argmax`` (paper): k* = argmax_k softmax(phi), F-bar = F~^{k*}; ``softmax`` (released code,
    facts C.4): sum_n softmax(phi)_n F~^n. Padded IDs get probability 0 in both.
    ``forced`` [B, L] long (``method.stage1_routing=labels``): a token with forced >= 0 takes that
    ID's feature whatever the router says; -1 leaves it to the router.
    """
    weights = masked_logits(logits, valid).float().softmax(-1)  # [B, L, N]
    if forced is not None:
        one_hot = torch.nn.functional.one_hot(forced.clamp(min=0), weights.shape[-1]).to(weights)
        weights = torch.where((forced >= 0)[..., None], one_hot, weights)
    if mode == "softmax":
        return torch.einsum("bln,bnld->bld", weights.type_as(features), features)
    k_star = weights.argmax(-1)  # [B, L]
    index = k_star[:, None, :, None].expand(-1, 1, -1, features.shape[-1])  # [B, 1, L, D]
    return features.gather(1, index).squeeze(1)


def masked_logits(logits: Tensor, valid: Tensor) -> Tensor:
    """Routing logits [B, L, N] with padded IDs (valid [B, N] False) at -inf."""
    return logits.masked_fill(~valid[:, None, :], float("-inf"))


class FaceInjection(nn.Module):
    """One routed block: H~ = H + alpha_m * F-bar (Eq. 4), F-bar from ``route`` over the PCA outputs."""

    def __init__(self, pca: PerceiverCrossAttention, router: nn.Module | None, face_scale: float, mode: str):
        super().__init__()
        self.pca, self.router = pca, router
        self.face_scale, self.mode = face_scale, mode

    def forward(
        self, hidden: Tensor, faces: Tensor, valid: Tensor, keep: Tensor, forced: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """hidden [B, L, dim], faces [B, N, Q, kv], valid [B, N], keep [B] (0: local faces dropped),
        forced [B, L] (``route``; None: the router alone) -> (H~ [B, L, dim], logits [B, L, N])."""
        features = self.pca(faces, hidden)  # [B, N, L, dim]
        logits = self.router(hidden, faces)  # [B, L, N]
        f_bar = route(features, logits, valid, self.mode, forced)  # [B, L, dim]
        return hidden + self.face_scale * keep[:, None, None] * f_bar, logits
