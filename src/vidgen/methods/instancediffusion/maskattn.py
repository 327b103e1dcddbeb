"""Instance-masked attention, "MaskAttn" (InstanceDiffusion Eq. 2 and the masks under it).

In the fusion self-attention over [V, G] (visual tokens, grounding tokens):

- visual k -> visual j: allowed iff I(v_k) = I(v_j), where I(v) is the instance whose region holds v
  (the smallest one where instances overlap; background = no instance). With
  ``containers=True`` also when I(v_j) is an instance that contains I(v_k) (its region covers all
  of I(v_k)'s tokens), so a token of a nested instance still sees the instance around it.
- visual k -> grounding token of instance i: allowed iff I(v_k) = i; tokens owned by no single
  instance (the 64 seg tokens) are open to every visual token.
- every token attends to itself; grounding rows are left open (their outputs are discarded).

Masks are bool, True = may attend, per latent frame: [B, F', S + T, S + T].
"""

from __future__ import annotations

import torch
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
    onehot = torch.nn.functional.one_hot(inst + 1, n + 1).float()  # [B, F', S, N + 1]; slot 0 = background
    pair = torch.eye(n + 1, device=cover.device).expand(b, f, n + 1, n + 1).clone()  # same instance
    if containers:
        pair[..., 1:, 1:] += containment(cover).float()
    vv = (onehot @ pair @ onehot.transpose(-1, -2)) > 0  # [B, F', S, S]
    own = owners.to(cover.device)
    vg = (inst[..., None] == own) | (own == SHARED)  # [B, F', S, T]; background (-1) meets only SHARED
    top = torch.cat([vv, vg], dim=-1)  # [B, F', S, S + T]
    bottom = torch.ones(b, f, t, s + t, dtype=torch.bool, device=cover.device)
    mask = torch.cat([top, bottom], dim=-2)
    return mask | torch.eye(s + t, dtype=torch.bool, device=cover.device)
