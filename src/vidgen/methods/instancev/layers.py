"""IMCA (InstanceV Sec. 4.1, Eq. 4, Sec. 10.1) and STAPE (Sec. 4.2, Eq. 6) for Wan2.1 blocks.

Both are copies of a Wan block's text cross-attention (``attn2``: to_q/k/v/out and the q/k
RMSNorm, plus the affine ``norm2`` in front of it), initialised from its weights, and gated by
zero-initialised per-channel vectors, so the model starts as the backbone.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from vidgen.instances.attention import masked_attention

# Which of the block's six AdaLN outputs (shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa,
# c_gate_msa) is STAPE's alpha_1 (Eq. 6). The paper does not say; gate_msa is the block's own
# residual gate (it multiplies the self-attention branch), the role alpha_1 plays for STAPE's branch.
ALPHA_1 = 2


def _heads(x: Tensor, heads: int) -> Tensor:
    return x.unflatten(-1, (heads, -1))  # [..., D] -> [..., h, d]


class IMCA(nn.Module):
    """Eq. 4: ``V + m_v * IMCA(V, I, M)``, visual tokens folded per latent frame (Sec. 10.1).

    ``m_v`` is a per-channel [D] vector, zero at init (the paper says "a gated parameter"; per-channel
    matches STAPE's D-dimensional m_t and costs D parameters per block).
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.norm = copy.deepcopy(block.norm2)  # affine LayerNorm before Wan's cross-attention
        self.attn = copy.deepcopy(block.attn2)  # to_q/k/v/out, norm_q/norm_k
        dim = block.attn2.to_q.out_features
        self.m_v = nn.Parameter(torch.zeros(dim))
        self.reset_requires_grad()

    def reset_requires_grad(self) -> None:
        for p in self.parameters():
            p.requires_grad_(True)

    def forward(self, v: Tensor, inst: Tensor, mask: Tensor, frames: int) -> Tensor:
        """v [B, F' * S, D] visual tokens; inst [B, K, D] instance tokens; mask [B, F', 1, S, K]."""
        attn, b, n, _ = self.attn, *v.shape
        s = n // frames
        x = self.norm(v.float()).type_as(v)
        q = _heads(attn.norm_q(attn.to_q(x)), attn.heads)  # [B, F'S, h, d]
        k = _heads(attn.norm_k(attn.to_k(inst)), attn.heads)  # [B, K, h, d]
        val = _heads(attn.to_v(inst), attn.heads)  # [B, K, h, d]
        q = q.unflatten(1, (frames, s)).permute(0, 1, 3, 2, 4)  # [B, F', h, S, d]
        k = k.permute(0, 2, 1, 3)[:, None].expand(b, frames, -1, -1, -1)  # [B, F', h, K, d]
        val = val.permute(0, 2, 1, 3)[:, None].expand(b, frames, -1, -1, -1)  # [B, F', h, K, d]
        out = masked_attention(q, k, val, mask.to(q.dtype) if mask.is_floating_point() else mask)
        out = out.permute(0, 1, 3, 2, 4).reshape(b, n, -1).type_as(q)  # [B, F'S, D]
        out = attn.to_out[1](attn.to_out[0](out))
        # a token no instance covers attends to nothing: its IMCA output is 0 (not to_out's bias)
        allowed = mask if mask.dtype == torch.bool else torch.isfinite(mask)
        covered = allowed.any(-1).reshape(b, n, 1)  # [B, F'S, 1]
        return (v + self.m_v * (out * covered.to(out.dtype))).type_as(v)


class STAPE(nn.Module):
    """Eq. 6: ``I = I + (m_t + alpha_1) * CrossAttn(I, T)``, one cross-attention shared by all blocks.

    ``CrossAttn(I, T)`` is computed once per forward (its inputs are the same for every block);
    each block scales it by its own alpha_1 (``ALPHA_1``) plus the shared zero-init [D] vector m_t.
    Initialised from the first block's cross-attention (the paper is silent on STAPE's init).
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.norm = copy.deepcopy(block.norm2)
        self.attn = copy.deepcopy(block.attn2)
        self.m_t = nn.Parameter(torch.zeros(block.attn2.to_q.out_features))
        for p in self.parameters():
            p.requires_grad_(True)

    def cross(self, inst: Tensor, text: Tensor) -> Tensor:
        """CrossAttn(I, T): inst [B, K, D] attends to the projected caption text [B, L, D] -> [B, K, D]."""
        attn = self.attn
        x = self.norm(inst.float()).type_as(inst)
        q = _heads(attn.norm_q(attn.to_q(x)), attn.heads).transpose(1, 2)  # [B, h, K, d]
        k = _heads(attn.norm_k(attn.to_k(text)), attn.heads).transpose(1, 2)  # [B, h, L, d]
        val = _heads(attn.to_v(text), attn.heads).transpose(1, 2)  # [B, h, L, d]
        out = torch.nn.functional.scaled_dot_product_attention(q, k, val)
        out = out.transpose(1, 2).flatten(2).type_as(q)  # [B, K, D]
        return attn.to_out[1](attn.to_out[0](out))

    def enhance(self, inst: Tensor, cross: Tensor, alpha_1: Tensor) -> Tensor:
        """One block's enhanced instance tokens; alpha_1 [B, 1, D] from that block's AdaLN."""
        return (inst + (self.m_t + alpha_1) * cross).type_as(inst)
