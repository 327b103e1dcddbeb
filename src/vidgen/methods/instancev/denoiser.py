"""The InstanceV denoiser on Wan2.1: the backbone's forward with IMCA inside every block.

diffusers 0.42.1 calls each Wan block as ``block(x, ctx, temb, rope)`` and drops
``attention_kwargs`` (transformer_wan.py:703-704), so this module owns the block loop and reuses
the diffusers submodules (rope, patch_embedding, condition_embedder, blocks' attn1/attn2/ffn,
norm_out, proj_out). With every gate at zero its output equals ``WanTransformer3DModel.forward``
bit for bit (tests/test_instancev_layers.py). Written for the T2V Wan2.1 path (timestep [B]).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vidgen.backbones.registry import Backbone
from vidgen.instances.attention import token_attention_mask
from vidgen.methods.instancev.layers import ALPHA_1, IMCA, STAPE


class InstanceVWan(Backbone):
    """``forward(latents, timesteps, text_embeds, text_mask, instance_embeds=, instance_masks=)``.

    instance_embeds [B, N, L, D_text]: each instance prompt encoded in isolation by the backbone's
    text encoder (zero where padded); instance_masks [B, F', N, S]: the tokens each instance covers
    per latent frame (``vidgen.instances.instance_token_masks``). Without them the IMCA branches are
    skipped (the plain backbone). The backbone is frozen; IMCA, its gates and STAPE train.
    """

    def __init__(
        self, backbone: Backbone, imca: bool = True, stape: bool = True, mask_base: float | None = None
    ):
        if backbone.spec.family != "wan":
            raise ValueError(f"InstanceVWan wraps a Wan backbone, got {backbone.spec.name!r}")
        super().__init__(backbone.model, backbone.spec, backbone.size)
        self.model.requires_grad_(False)
        blocks = self.model.blocks
        self.imca = nn.ModuleList(IMCA(b) for b in blocks) if imca else None
        self.stape = STAPE(blocks[0]) if (imca and stape) else None
        self.mask_base = mask_base

    def set_gates(self, value: float) -> None:
        """Fill every IMCA gate m_v (tests: 0 = the backbone, nonzero = grounding reaches the output)."""
        with torch.no_grad():
            for m in self.imca or []:
                m.m_v.fill_(value)

    def _instance_inputs(self, instance_embeds: Tensor, instance_masks: Tensor) -> tuple[Tensor, Tensor]:
        """Instance tokens I [B, N * L, D] (Wan's text projection) and the IMCA mask [B, F', 1, S, N * L]."""
        b, n, length, _ = instance_embeds.shape
        tokens = self.model.condition_embedder.text_embedder(instance_embeds.flatten(1, 2))  # [B, N*L, D]
        areas = instance_masks.sum(dim=(1, 3)).float()  # [B, N] tokens covered over all frames
        mask = token_attention_mask(instance_masks, length, self.mask_base, areas)
        return tokens, mask

    def _block(self, i: int, x, ctx, temb, rope, inst, mask, cross, frames):
        """One Wan block (diffusers WanTransformerBlock.forward, T2V) with IMCA between steps 1 and 2."""
        block = self.model.blocks[i]
        mod = (block.scale_shift_table + temb.float()).chunk(6, dim=1)
        shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = mod
        # 1. Self-attention
        h = (block.norm1(x.float()) * (1 + scale_msa) + shift_msa).type_as(x)
        x = (x.float() + block.attn1(h, None, None, rope) * gate_msa).type_as(x)
        # 1b. IMCA (Eq. 4), with STAPE-enhanced instance tokens (Eq. 6)
        if inst is not None and self.imca is not None:
            tokens = self.stape.enhance(inst, cross, mod[ALPHA_1]) if cross is not None else inst
            x = self.imca[i](x, tokens, mask, frames)
        # 2. Cross-attention (Eq. 5)
        h = block.norm2(x.float()).type_as(x)
        x = x + block.attn2(h, ctx, None, None)
        # 3. Feed-forward
        h = (block.norm3(x.float()) * (1 + c_scale_msa) + c_shift_msa).type_as(x)
        return (x.float() + block.ffn(h).float() * c_gate_msa).type_as(x)

    def forward(
        self,
        latents: Tensor,
        timesteps: Tensor,
        text_embeds: Tensor,
        text_mask: Tensor | None = None,
        image_latents: Tensor | None = None,
        instance_embeds: Tensor | None = None,
        instance_masks: Tensor | None = None,
    ) -> Tensor:
        self._check_no_image(image_latents)
        if (instance_embeds is None) != (instance_masks is None):
            raise ValueError("InstanceVWan needs both instance_embeds and instance_masks, or neither")
        m = self.model
        if text_mask is not None:
            text_embeds = text_embeds * text_mask[..., None].to(text_embeds.dtype)
        b, _, f, hh, ww = latents.shape
        p_t, p_h, p_w = m.config.patch_size
        frames, gh, gw = f // p_t, hh // p_h, ww // p_w
        rope = m.rope(latents)
        x = m.patch_embedding(latents).flatten(2).transpose(1, 2).contiguous()  # [B, F'S, D]
        temb, temb_proj, ctx, _ = m.condition_embedder(timesteps, text_embeds, None)
        temb_proj = temb_proj.unflatten(1, (6, -1))  # [B, 6, D]
        inst = mask = cross = None
        if instance_embeds is not None and self.imca is not None:
            inst, mask = self._instance_inputs(instance_embeds.to(text_embeds.dtype), instance_masks)
            cross = self.stape.cross(inst, ctx) if self.stape is not None else None
        for i in range(len(m.blocks)):
            args = (i, x, ctx, temb_proj, rope, inst, mask, cross, frames)
            if torch.is_grad_enabled() and m.gradient_checkpointing:
                x = checkpoint(self._block, *args, use_reentrant=False)
            else:
                x = self._block(*args)
        # Output norm, projection and unpatchify (as WanTransformer3DModel.forward)
        shift, scale = (m.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        x = (m.norm_out(x.float()) * (1 + scale) + shift).type_as(x)
        x = m.proj_out(x)
        x = x.reshape(b, frames, gh, gw, p_t, p_h, p_w, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.flatten(6, 7).flatten(4, 5).flatten(2, 3)
