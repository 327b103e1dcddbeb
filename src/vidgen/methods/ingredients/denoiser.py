"""The Ingredients denoiser: CogVideoX(-5B-I2V) with face injection after chosen blocks and a LoRA.

diffusers 0.42.1 ``CogVideoXTransformer3DModel.forward`` calls each block and takes its
``(hidden_states, encoder_hidden_states)``; a forward hook on a chosen block replaces the video
part with H~ = H + alpha_m * F-bar (Eq. 4), exactly where the released code adds it (after the
block). The hook also runs inside gradient checkpointing's recomputation; routing logits are
kept per block index, so a recomputation overwrites, never duplicates, them.
"""

from __future__ import annotations

from torch import Tensor, nn

from vidgen.backbones.cogvideox import CogVideoXBackbone
from vidgen.backbones.registry import Backbone
from vidgen.methods.ingredients.injection import FaceInjection, PerceiverCrossAttention
from vidgen.methods.ingredients.router import IDRouter


def routed_blocks(num_layers: int, interval: int) -> list[int]:
    """Blocks followed by a face injection: i % interval == 0 (1: every block, 2: every second)."""
    return [i for i in range(num_layers) if i % interval == 0]


class IngredientsCogVideoX(CogVideoXBackbone):
    """``forward(latents, timesteps, text_embeds, text_mask, image_latents, faces=, face_valid=)``.

    faces [B, N, Q, kv_dim]: the projector's face tokens per ID (zero-padded); face_valid [B, N]
    bool. Without faces the injections are skipped (the backbone with its LoRA). ``routing_logits``
    holds, after a forward with faces, one [B, L, N] tensor per routed block (block order).
    """

    def __init__(self, backbone: Backbone, kv_dim: int, face_cfg: dict, router_cfg: dict):
        if backbone.spec.family != "cogvideox":
            raise ValueError(f"IngredientsCogVideoX wraps a CogVideoX backbone, got {backbone.spec.name!r}")
        super().__init__(backbone.model, backbone.spec, backbone.size)
        cfg = self.model.config
        dim = cfg.num_attention_heads * cfg.attention_head_dim
        self.blocks = routed_blocks(cfg.num_layers, face_cfg["interval"])
        self.injections = nn.ModuleDict(
            {
                str(i): FaceInjection(
                    PerceiverCrossAttention(
                        dim, kv_dim, face_cfg["heads"], face_cfg["dim_head"], zero_init=face_cfg["zero_init"]
                    ),
                    IDRouter(
                        dim,
                        kv_dim,
                        router_cfg["id_length"],
                        router_cfg["inner"],
                        router_cfg["mlp"],
                        router_cfg["sqrt_d"],
                    ),
                    face_cfg["scale"],
                    router_cfg["mode"],
                )
                for i in self.blocks
            }
        )
        self._faces: tuple[Tensor, Tensor] | None = None
        self._logits: dict[int, Tensor] = {}
        for i in self.blocks:
            self.model.transformer_blocks[i].register_forward_hook(self._hook(i))

    def _hook(self, i: int):
        def after_block(module: nn.Module, args, output):
            if self._faces is None:
                return output
            hidden, text = output
            hidden, self._logits[i] = self.injections[str(i)](hidden, *self._faces)
            return hidden, text

        return after_block

    @property
    def routing_logits(self) -> list[Tensor]:
        return [self._logits[i] for i in sorted(self._logits)]

    def forward(
        self,
        latents: Tensor,
        timesteps: Tensor,
        text_embeds: Tensor,
        text_mask: Tensor | None = None,
        image_latents: Tensor | None = None,
        faces: Tensor | None = None,
        face_valid: Tensor | None = None,
    ) -> Tensor:
        if (faces is None) != (face_valid is None):
            raise ValueError("IngredientsCogVideoX needs both faces and face_valid, or neither")
        self._logits = {}
        self._faces = None if faces is None else (faces.to(latents.dtype), face_valid.bool())
        try:
            return super().forward(latents, timesteps, text_embeds, text_mask, image_latents)
        finally:
            self._faces = None
