"""Masked attention of visual tokens onto instance tokens (InstanceV Sec. 4.1 "Attention Masks", 10.2).

Visual token i of frame t may attend to instance token j only when it lies in j's instance in
frame t; elsewhere the score is -inf. The mask has shape [B, F', 1, S, N * L]: one copy per
batch row and frame (what SDPA reads), broadcast over heads, never materialised per head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def token_attention_mask(
    token_masks: Tensor,
    tokens_per_instance: int,
    mask_base: float | None = None,
    areas: Tensor | None = None,
) -> Tensor:
    """[B, F', N, S] instance coverage -> SDPA mask [B, F', 1, S, N * L].

    ``mask_base=None``: bool (True = may attend), the paper's 1 / -inf mask (Sec. 4.1; a constant
    score offset of 1 on every allowed key cancels in the softmax, so bool is the same).
    ``mask_base=b``: the float variant of Sec. 10.2: instances ranked by ``areas`` [B, N] in
    descending order get rank j = 1..N (1-indexed, as in the paper) and score offset j * b, so a
    smaller instance wins where instances overlap; -inf where the instance does not cover the token.
    """
    allowed = token_masks.transpose(2, 3)  # [B, F', S, N]
    if mask_base is not None:
        if areas is None:
            raise ValueError("the float mask (mask_base) needs the instance areas to rank instances")
        order = torch.argsort(areas, dim=-1, descending=True, stable=True)  # [B, N]
        rank = torch.empty_like(order)
        rank.scatter_(-1, order, torch.arange(1, order.shape[-1] + 1, device=order.device).expand_as(order))
        bias = (rank.float() * float(mask_base))[:, None, None, :]  # [B, 1, 1, N]
        allowed = torch.where(allowed, bias, torch.full_like(bias, float("-inf")))
    mask = allowed.repeat_interleave(tokens_per_instance, dim=-1)  # [B, F', S, N * L]
    return mask.unsqueeze(2)  # [B, F', 1, S, N * L]


def masked_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """SDPA with rows that may attend to nothing guarded: their output is exactly 0 (no NaN).

    q [..., h, S, d]; k, v [..., h, K, d]; mask [..., 1, S, K] bool (True = attend) or float (-inf =
    blocked). A fully blocked row would make SDPA return NaN (softmax over all -inf); such rows are
    opened to every key for the kernel and zeroed afterwards, so forward and backward stay finite.
    """
    allowed = mask if mask.dtype == torch.bool else torch.isfinite(mask)
    any_key = allowed.any(dim=-1, keepdim=True)  # [..., 1, S, 1]
    if mask.dtype == torch.bool:
        safe = mask | ~any_key
    else:
        safe = torch.where(any_key, mask, torch.zeros_like(mask)).to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe)
    return out * any_key.to(out.dtype)


def mask_bytes(
    batch: int,
    latent_frames: int,
    tokens: int,
    instances: int,
    tokens_per_instance: int,
    element_bytes: int = 1,
) -> int:
    """Bytes of the IMCA mask SDPA reads ([B, F', 1, S, N * L]; bool = 1 byte, bf16 float mask = 2)."""
    return batch * latent_frames * tokens * instances * tokens_per_instance * element_bytes
