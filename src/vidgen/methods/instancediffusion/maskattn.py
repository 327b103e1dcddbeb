"""Instance-masked attention, "MaskAttn" (InstanceDiffusion Eq. 2 and the masks under it).

In the fusion self-attention over [V, G] (visual tokens, grounding tokens):

- visual k -> visual j: allowed iff I(v_k) = I(v_j), where I(v) is the instance whose region holds v
  (the smallest one where instances overlap; background = no instance). With
  ``containers=True`` also when I(v_j) is an instance that contains I(v_k) (its region covers all
  of I(v_k)'s tokens), so a token of a nested instance still sees the instance around it.
- visual k -> grounding token of instance i: allowed iff I(v_k) = i; tokens owned by no single
  instance (the 64 seg tokens) are open to every visual token.
- every token attends to itself; grounding rows are left open (their outputs are discarded).

Masks are bool, True = may attend, per latent frame: [B, F', S + T, S + T]. One mask serves every
head (``masked_attention`` broadcasts it; diffusers' processor would copy it per head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import Tensor

from vidgen.methods.instancediffusion.tokenizers import SHARED


def token_instance(cover: Tensor) -> Tensor:
    """cover [B, F', N, S] bool -> I(v) [B, F', S] long: smallest covering instance, -1 = background."""
    area = cover.sum(-1, keepdim=True).float()  # [B, F', N, 1]
    size = torch.where(cover, area, torch.full_like(area, float("inf")))  # [B, F', N, S]
    idx = size.argmin(dim=2)  # [B, F', S] (first slot among equal areas)
    return torch.where(cover.any(dim=2), idx, torch.full_like(idx, -1))


def containment(cover: Tensor) -> Tensor:
    """[B, F', N, S] -> C [B, F', N, N] bool: C[i, j] = instance j covers every token of (non-empty) i."""
    outside = (~cover).float()
    missed = cover.float() @ outside.transpose(-1, -2)  # [B, F', N, N]: tokens of i that j misses
    return (missed == 0) & cover.any(-1)[..., :, None]


def mask_attention_mask(cover: Tensor, owners: Tensor, containers: bool = True) -> Tensor:
    """MaskAttn mask for the fusion self-attention over [V (S tokens), G (T tokens)].

    cover [B, F', N, S] bool: the visual tokens each instance slot covers per latent frame (padding
    slots cover nothing); owners [T] long: instance slot of each grounding token (``SHARED`` = all).
    Returns bool [B, F', S + T, S + T], True = may attend.
    """
    b, f, n, s = cover.shape
    t = owners.shape[0]
    inst = token_instance(cover)  # [B, F', S]
    pair = torch.eye(n + 1, dtype=torch.bool, device=cover.device).expand(b, f, n + 1, n + 1).clone()
    if containers:  # slot 0 = background; pair[i + 1, j + 1]: a token of i may see a token of j
        pair[..., 1:, 1:] |= containment(cover)
    idx = inst + 1  # [B, F', S]
    rows = pair.gather(2, idx[..., None].expand(b, f, s, n + 1))  # [B, F', S, N + 1]: pair[I(v_k), :]
    mask = torch.ones(b, f, s + t, s + t, dtype=torch.bool, device=cover.device)  # grounding rows open
    mask[..., :s, :s] = rows.gather(3, idx[:, :, None, :].expand(b, f, s, s))  # V -> V
    own = owners.to(cover.device)
    mask[..., :s, s:] = (inst[..., None] == own) | (own == SHARED)  # V -> G; background meets only SHARED
    mask.diagonal(dim1=-2, dim2=-1).fill_(True)  # every token attends to itself
    return mask


def masked_attention(attn: Attention, x: Tensor, mask: Tensor) -> Tensor:
    """``attn``'s self-attention over x [B, L, d] with one bool mask [B, L, L] for all heads.

    diffusers' ``AttnProcessor2_0`` repeats a 3-D mask per head (``prepare_attention_mask``:
    [B heads, L, L], 12 copies on Wan2.1-1.3B) before SDPA; here it reaches SDPA as [B, 1, L, L] and
    broadcasts. Same projections, same SDPA call: the processor's output bit for bit
    (tests/test_instancediffusion_layers.py). Only for the plain self-attention GLIGEN's block holds.
    """
    plain = (attn.spatial_norm, attn.group_norm, attn.norm_q, attn.norm_k) == (None,) * 4
    if not plain or attn.residual_connection or attn.rescale_output_factor != 1.0:
        raise ValueError("masked_attention: only a plain self-attention (no norms, residual or rescale)")
    b, n, _ = x.shape
    q, k, v = (
        proj(x).view(b, n, attn.heads, -1).transpose(1, 2) for proj in (attn.to_q, attn.to_k, attn.to_v)
    )
    h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], dropout_p=0.0, is_causal=False)
    h = h.transpose(1, 2).reshape(b, n, -1).to(q.dtype)  # [B, L, heads d_head]
    return attn.to_out[1](attn.to_out[0](h))
