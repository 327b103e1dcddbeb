"""Layers of the STIV DiT (STIV Sec. 2.1-2.2, Fig. 2): attention, RoPE, singleton condition, block.

Every Table 2 / Table 3 switch is a constructor argument with the paper's meaning; the model
(``stiv_dit.STIVDiT``) wires them. Shapes: ``B`` batch, ``T`` temporal tokens, ``S`` spatial
tokens, ``D`` width, ``H`` heads, ``Dh`` head dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, get_1d_rotary_pos_embed
from torch import Tensor, nn


def stateless_norm(x: Tensor) -> Tensor:
    """LayerNorm without affine parameters ("stateless layer normalization", Sec. 2.2)."""
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """DiT's adaLN: ``x * (1 + scale) + shift``; shift/scale [B, D] broadcast over tokens."""
    return x * (1 + scale[:, None, None]) + shift[:, None, None]


# ----------------------------------------------------------------------------- RoPE
def rope_1d(dim: int, positions: Tensor, theta: float, scale: float) -> tuple[Tensor, Tensor]:
    """(cos, sin) [N, dim] of 1D RoPE at float ``positions``; ``scale`` > 1 interpolates
    (positions / scale, Chen et al. 2023 position interpolation), 1 extends."""
    return get_1d_rotary_pos_embed(dim, positions.float(), theta=theta, use_real=True, linear_factor=scale)


def rope_2d(dim: int, grid_h: int, grid_w: int, theta: float, scale: float, device) -> tuple[Tensor, Tensor]:
    """2D RoPE (Sec. 2.1): half of the head dims rotate with the row, half with the column. [h*w, dim]."""
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w)
    cols = torch.arange(grid_w, device=device).repeat(grid_h)
    ch, sh = rope_1d(dim // 2, rows, theta, scale)
    cw, sw = rope_1d(dim // 2, cols, theta, scale)
    return torch.cat([ch, cw], dim=-1), torch.cat([sh, sw], dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved pairs of ``x`` [..., N, Dh] (as diffusers' ``apply_rotary_emb``, use_real)."""
    real, imag = x.float().reshape(*x.shape[:-1], -1, 2).unbind(-1)
    rotated = torch.stack([-imag, real], dim=-1).flatten(-2)
    return (x.float() * cos + rotated * sin).to(x.dtype)


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """Fixed sine-cosine absolute embedding [N, dim] (DiT / PixArt baseline)."""
    half = dim // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    out = positions.float()[:, None] * omega[None]
    return torch.cat([out.sin(), out.cos()], dim=-1)


# ----------------------------------------------------------------------------- attention
class Attention(nn.Module):
    """Multi-head attention through ``scaled_dot_product_attention`` (flash / memory-efficient on GPU).

    ``qk_norm``: RMSNorm on each head's queries and keys before the logits (Sec. 2.2, SD3).
    """

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None, qk_norm: bool = True) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        kv_dim = kv_dim or dim
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(kv_dim, dim)
        self.to_v = nn.Linear(kv_dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.norm_q = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.norm_k = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)  # [N, H, L, Dh]

    def forward(
        self,
        x: Tensor,  # [N, L, D]
        context: Tensor | None = None,  # [N, M, kv_dim] (cross-attention) or None (self-attention)
        rope: tuple[Tensor, Tensor] | None = None,  # (cos, sin) broadcastable to [N, 1, L, Dh]
        mask: Tensor | None = None,  # [N, 1, 1, M] bool, True = attend
        causal: bool = False,
    ) -> Tensor:
        context = x if context is None else context
        q = self.norm_q(self._heads(self.to_q(x)))
        k = self.norm_k(self._heads(self.to_k(context)))
        v = self._heads(self.to_v(context))
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.to_out(out.transpose(1, 2).flatten(-2))


class MLP(nn.Module):
    """PixArt's FFN: Linear(D, rD) - GELU(tanh) - Linear(rD, D)."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1, self.act, self.fc2 = (
            nn.Linear(dim, hidden),
            nn.GELU(approximate="tanh"),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


# ----------------------------------------------------------------------------- singleton condition
class SingletonCondition(nn.Module):
    """Sec. 2.1 "Singleton Condition": timestep + pooled text (+ micro-conditions) -> one [B, D] vector.

    Each micro-condition (original size (h, w), crop (top, left), sampling stride) is a sinusoidal
    embedding per scalar followed by an MLP to D. ``cond_norm``: stateless LayerNorm on every
    projected embedding before the sum (Table 2 "+ Cond. norm").
    """

    MICRO = {"original_size": 2, "crop": 2, "stride": 1}
    FREQ = 256

    def __init__(
        self, dim: int, text_dim: int, pooled_text: bool, micro_conditions: bool, cond_norm: bool
    ) -> None:
        super().__init__()
        self.cond_norm = cond_norm
        self.time_proj = Timesteps(self.FREQ, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(self.FREQ, dim)
        self.pooled = TimestepEmbedding(text_dim, dim) if pooled_text else None
        self.micro = (
            nn.ModuleDict({k: TimestepEmbedding(n * self.FREQ, dim) for k, n in self.MICRO.items()})
            if micro_conditions
            else None
        )

    def forward(self, t: Tensor, pooled_text: Tensor, micro: dict[str, Tensor] | None) -> Tensor:
        dtype = self.time_embed.linear_1.weight.dtype
        parts = [self.time_embed(self.time_proj(t).to(dtype))]  # [B, D]
        if self.pooled is not None:
            parts.append(self.pooled(pooled_text.to(dtype)))
        if self.micro is not None:
            if micro is None:
                raise ValueError(
                    "STIVDiT(micro_conditions=True) needs micro={'original_size', 'crop', 'stride'}"
                )
            for key, n in self.MICRO.items():
                values = micro[key].reshape(t.shape[0], n).float()  # [B, n]
                emb = self.time_proj(values.flatten()).reshape(t.shape[0], n * self.FREQ)
                parts.append(self.micro[key](emb.to(dtype)))
        if self.cond_norm:
            parts = [stateless_norm(p) for p in parts]
        return torch.stack(parts).sum(0)


# ----------------------------------------------------------------------------- block
class STIVBlock(nn.Module):
    """One STIV block (Fig. 2): spatial SA -> temporal SA -> text cross-attention -> MLP.

    Sec. 2.2 with ``sandwich_norm`` (stateless pre- and post-norm):
        MHA(x) = x + gate * norm(Attn(scale * norm(x) + shift))
        FFN(x) = x + gate * norm(MLP(scale * norm(x) + shift))
    The singleton condition modulates only spatial attention and the MLP ("shared scale-shift-gate
    parameters ... utilized in the spatial attention and feed-forward layers", Sec. 2.1); temporal
    attention is unmodulated and its output projection starts at zero, so a new temporal layer is
    the identity (T2I -> T2V initialisation). Cross-attention follows PixArt (no modulation); under
    sandwich norm it also gets the pre-/post-norm (our reading of "both the layers": MHA and FFN).
    ``per_layer_adaln``: this block owns its adaLN (Table 2 rows before "+ Shared AdaLN").
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        temporal: bool,
        qk_norm: bool,
        sandwich_norm: bool,
        per_layer_adaln: bool,
    ) -> None:
        super().__init__()
        # 1. Spatial self-attention
        self.attn_s = Attention(dim, heads, qk_norm=qk_norm)
        # 2. Temporal self-attention (video only; zero output projection = identity at init)
        self.attn_t = Attention(dim, heads, qk_norm=qk_norm) if temporal else None
        # 3. Text cross-attention (keys/values from the projected caption, width D as in PixArt)
        self.attn_c = Attention(dim, heads, qk_norm=qk_norm)
        # 4. MLP
        self.mlp = MLP(dim, mlp_ratio)
        self.sandwich = sandwich_norm
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim)) if per_layer_adaln else None

    def post(self, x: Tensor) -> Tensor:
        return stateless_norm(x) if self.sandwich else x

    def forward(
        self,
        x: Tensor,  # [B, T, S, D]
        mod: Tensor,  # [B, 6D] shared modulation, or the singleton condition [B, D] with per-layer adaLN
        text: Tensor,  # [B, L, D]
        text_mask: Tensor | None,  # [B, 1, 1, L] bool
        rope_s: tuple[Tensor, Tensor] | None,  # [B, 1, 1, S, Dh] each
        rope_t: tuple[Tensor, Tensor] | None,  # [B, 1, 1, T, Dh] each
        causal: bool,
    ) -> Tensor:
        b, t, s, d = x.shape
        if self.adaln is not None:
            mod = self.adaln(mod)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod.chunk(6, dim=-1)  # [B, D] each
        # 1. Spatial self-attention over (B T) S D
        h = modulate(stateless_norm(x), shift_a, scale_a).reshape(b * t, s, d)
        rope = None if rope_s is None else tuple(r.expand(b, t, 1, s, -1).flatten(0, 1) for r in rope_s)
        x = x + gate_a[:, None, None] * self.post(self.attn_s(h, rope=rope).reshape(b, t, s, d))
        # 2. Temporal self-attention over (B S) T D
        if self.attn_t is not None:
            h = stateless_norm(x).transpose(1, 2).reshape(b * s, t, d)
            rope = None if rope_t is None else tuple(r.expand(b, s, 1, t, -1).flatten(0, 1) for r in rope_t)
            out = self.attn_t(h, rope=rope, causal=causal).reshape(b, s, t, d).transpose(1, 2)
            x = x + self.post(out)
        # 3. Text cross-attention over B (T S) D
        h = (stateless_norm(x) if self.sandwich else x).reshape(b, t * s, d)
        x = x + self.post(self.attn_c(h, context=text, mask=text_mask).reshape(b, t, s, d))
        # 4. MLP
        h = modulate(stateless_norm(x), shift_m, scale_m)
        return x + gate_m[:, None, None] * self.post(self.mlp(h))
