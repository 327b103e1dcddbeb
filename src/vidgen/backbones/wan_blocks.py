"""``WanTransformer3DModel.forward`` (T2V) with a method's module between each block's self- and
cross-attention: the one place that re-runs diffusers' Wan block loop.

diffusers 0.42.1 calls each Wan block as ``block(x, ctx, temb, rope)`` and drops
``attention_kwargs`` (transformer_wan.py:703-704), so grounding methods (InstanceV's IMCA, GLIGEN's
gated self-attention, InstanceDiffusion's masked fusion) cannot reach a block through the model's
own forward. This loop reuses the diffusers submodules (rope, patch_embedding, condition_embedder,
the blocks' attn1 / attn2 / ffn, norm_out, proj_out); without an insertion its output equals
``WanTransformer3DModel.forward`` bit for bit (tests of each method hold that).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

# insert(i, x, mod) -> x: block i's addition after self-attention; mod = the block's six AdaLN
# outputs (shift, scale, gate of self-attention; shift, scale, gate of the feed-forward)
Insert = Callable[[int, Tensor, tuple[Tensor, ...]], Tensor]
# between(x, ctx, frames) -> Insert | None, called once per forward after the embeddings: x the
# patch tokens [B, F'S, D], ctx the projected caption [B, L, D], frames the latent frames F'
Between = Callable[[Tensor, Tensor, int], "Insert | None"]


def wan_block(block, x: Tensor, ctx: Tensor, temb: Tensor, rope, insert: Callable | None) -> Tensor:
    """diffusers ``WanTransformerBlock.forward`` (T2V) with ``insert(x, mod)`` between steps 1 and 2."""
    mod = (block.scale_shift_table + temb.float()).chunk(6, dim=1)
    shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = mod
    # 1. Self-attention
    h = (block.norm1(x.float()) * (1 + scale_msa) + shift_msa).type_as(x)
    x = (x.float() + block.attn1(h, None, None, rope) * gate_msa).type_as(x)
    if insert is not None:
        x = insert(x, mod)
    # 2. Cross-attention
    h = block.norm2(x.float()).type_as(x)
    x = x + block.attn2(h, ctx, None, None)
    # 3. Feed-forward
    h = (block.norm3(x.float()) * (1 + c_scale_msa) + c_shift_msa).type_as(x)
    return (x.float() + block.ffn(h).float() * c_gate_msa).type_as(x)


def wan_forward(
    model, latents: Tensor, timesteps: Tensor, text_embeds: Tensor, text_mask: Tensor | None, between: Between
) -> Tensor:
    """The T2V forward of ``model`` (a ``WanTransformer3DModel``) -> [B, C, F, H, W]."""
    if text_mask is not None:
        text_embeds = text_embeds * text_mask[..., None].to(text_embeds.dtype)
    b, _, f, hh, ww = latents.shape
    p_t, p_h, p_w = model.config.patch_size
    frames, gh, gw = f // p_t, hh // p_h, ww // p_w
    rope = model.rope(latents)
    x = model.patch_embedding(latents).flatten(2).transpose(1, 2).contiguous()  # [B, F'S, D]
    temb, temb_proj, ctx, _ = model.condition_embedder(timesteps, text_embeds, None)
    temb_proj = temb_proj.unflatten(1, (6, -1))  # [B, 6, D]
    insert = between(x, ctx, frames)
    for i, block in enumerate(model.blocks):
        args = (block, x, ctx, temb_proj, rope, None if insert is None else partial(insert, i))
        if torch.is_grad_enabled() and model.gradient_checkpointing:
            x = checkpoint(wan_block, *args, use_reentrant=False)
        else:
            x = wan_block(*args)
    # Output norm, projection and unpatchify (as WanTransformer3DModel.forward)
    shift, scale = (model.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
    x = (model.norm_out(x.float()) * (1 + scale) + shift).type_as(x)
    x = model.proj_out(x)
    x = x.reshape(b, frames, gh, gw, p_t, p_h, p_w, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.flatten(6, 7).flatten(4, 5).flatten(2, 3)
