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
    """``forward(latents, timesteps, text_embeds, text_mask, image_latents, faces=, face_valid=, face_keep=)``.

    faces [B, N, Q, kv_dim]: face tokens per ID (``project`` of the extractor outputs; padded IDs
    any value); face_valid [B, N] bool; face_keep [B] (0 drops the local faces of a sample: the
    stage-1 dropout; default 1); route_labels [B, L] (``method.stage1_routing=labels``: face tokens
    take their labelled ID, -1 tokens the router's; default None: the router everywhere). Without
    faces the injections are skipped (the backbone with its LoRA). ``routing_logits`` holds, after a forward with faces, one [B, L, N] per routed block.
    """

    def __init__(
        self,
        backbone: Backbone,
        kv_dim: int,
        face_cfg: dict,
        router_cfg: dict,
        projector: nn.Module | None = None,
    ):
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
        self.projector = projector  # the Q-Former (Sec. 3.2); None when faces come projected
        self._faces: tuple[Tensor, Tensor, Tensor, Tensor | None] | None = None
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

    def project(self, id_embeds: Tensor, id_locals: list[Tensor]) -> Tensor:
        """Extractor outputs (global [B, N, id_dim], 5 x local [B, N, L, C]) -> face tokens [B, N, Q, kv_dim]."""
        return self.projector(id_embeds, id_locals)

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
        face_keep: Tensor | None = None,
        route_labels: Tensor | None = None,
    ) -> Tensor:
        if (faces is None) != (face_valid is None):
            raise ValueError("IngredientsCogVideoX needs both faces and face_valid, or neither")
        self._logits = {}
        if faces is not None:
            keep = latents.new_ones(latents.shape[0]) if face_keep is None else face_keep.to(latents.dtype)
            self._faces = (faces.to(latents.dtype), face_valid.bool(), keep, route_labels)
        try:
            return super().forward(latents, timesteps, text_embeds, text_mask, image_latents)
        finally:
            self._faces = None
