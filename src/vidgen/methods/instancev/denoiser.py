"""The InstanceV denoiser on Wan2.1: the backbone's forward with IMCA inside every block.

diffusers 0.42.1 calls each Wan block as ``block(x, ctx, temb, rope)`` and drops
``attention_kwargs`` (transformer_wan.py:703-704), so this module runs the shared Wan block loop
(``backbones/wan_blocks.py:wan_forward``) with IMCA between self- and cross-attention. With every gate at zero its output equals ``WanTransformer3DModel.forward``
bit for bit (tests/test_instancev_layers.py). Written for the T2V Wan2.1 path (timestep [B]).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidgen.backbones.registry import Backbone
from vidgen.backbones.wan_blocks import wan_forward
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

        def between(x: Tensor, ctx: Tensor, frames: int):
            if instance_embeds is None or self.imca is None:
                return None  # the plain backbone
            inst, mask = self._instance_inputs(instance_embeds.to(text_embeds.dtype), instance_masks)
            cross = self.stape.cross(inst, ctx) if self.stape is not None else None  # once per forward

            def imca(i: int, x: Tensor, mod: tuple[Tensor, ...]) -> Tensor:
                # IMCA (Eq. 4) between self- and cross-attention, on STAPE-enhanced tokens (Eq. 6)
                tokens = self.stape.enhance(inst, cross, mod[ALPHA_1]) if cross is not None else inst
                return self.imca[i](x, tokens, mask, frames)

            return imca

        return wan_forward(self.model, latents, timesteps, text_embeds, text_mask, between)
