"""GLIGEN's gated self-attention in every transformer block of a backbone (official-code-facts A.1-A.3).

One wrapper per family; all take the same grounding inputs (``GROUNDING_KEYS``) and, without
them, are the plain backbone (scheduled sampling's beta = 0):

- ``GLIGENSD``          sd1.5: diffusers' own gated U-Net (``attention_type="gated"``: a
                        ``GatedSelfAttentionDense`` ``fuser`` in every ``BasicTransformerBlock``
                        and a ``GLIGENTextBoundingboxProjection`` ``position_net``), SD weights loaded.
- ``GLIGENModelScope``  the same diffusers ``fuser`` in every spatial block of the 3D U-Net (they run
                        per frame: frame f's tokens meet frame f's grounding tokens); the temporal
                        blocks never see the grounding (a pre-hook strips it).
- ``GLIGENWan``         diffusers' Wan drops attention kwargs (STYLE.md), so this owns the block loop
                        (like ``vidgen.methods.instancev.denoiser.InstanceVWan``) and calls a
                        ``GatedSelfAttention`` between self- and cross-attention, per latent frame.

Only the gated blocks and the token net train; the backbone is frozen. Gates start at 0, so the
output equals the backbone's bit for bit until they move (tests/test_gligen.py).
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock, GatedSelfAttentionDense
from torch import Tensor, nn

from vidgen.backbones.registry import Backbone
from vidgen.backbones.wan_blocks import wan_forward
from vidgen.errors import ConfigError
from vidgen.instances.gated_attention import GatedSelfAttention, GroundingTokenNet, gated_block_parameters
from vidgen.instances.unet3d_fusers import attach_spatial_fusers
from vidgen.methods.gligen.config import VIDEO_ATTENTION
from vidgen.methods.gligen.position import PositionedFuser

GROUNDING_KEYS = ("grounding_boxes", "grounding_masks", "grounding_phrases")


def _check_grounding(boxes, masks, phrases) -> bool:
    given = [x is not None for x in (boxes, masks, phrases)]
    if any(given) and not all(given):
        raise ValueError(f"GLIGEN needs all of {GROUNDING_KEYS} or none")
    return all(given)


def _frames_first(x: Tensor) -> Tensor:
    """[B, F', ...] -> [B * F', ...] (frames fastest: the order a per-frame U-Net batches in)."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _check_blocks(fusers, what: str) -> None:
    """Every block's parameter count is the paper's 16 d^2 + c d + 15 d + 2 (issue 14)."""
    for fuser in fusers:
        d, c = fuser.linear.out_features, fuser.linear.in_features
        n = sum(p.numel() for p in fuser.parameters())
        if n != gated_block_parameters(d, c):
            raise AssertionError(
                f"{what}: a gated block (d={d}, c={c}) has {n} parameters, not 16d^2+cd+15d+2"
            )


class GLIGENDenoiser(Backbone):
    """Common part: frozen backbone, trainable ``fusers`` + token net, the grounding signature.

    ``forward(latents, timesteps, text_embeds, text_mask=None, image_latents=None,
    grounding_boxes=None, grounding_masks=None, grounding_phrases=None)``: boxes [B, F', M, 4]
    normalised xyxy, masks [B, F', M] (1 = a box, 0 = an empty slot -> null token), phrases
    [B, F', M, D_text] pooled phrase embeddings (``vidgen.instances.gated_attention.grounding_slots``).
    """

    def __init__(self, backbone: Backbone, model: nn.Module | None = None):
        super().__init__(model if model is not None else backbone.model, backbone.spec, backbone.size)

    def fusers(self) -> list[GatedSelfAttentionDense]:
        return [m for m in self.modules() if isinstance(m, GatedSelfAttentionDense)]

    def set_gates(self, value: float) -> None:
        """Fill every alpha_attn / alpha_dense (tests: 0 = the backbone, nonzero = grounding arrives)."""
        with torch.no_grad():
            for f in self.fusers():
                f.alpha_attn.fill_(value)
                f.alpha_dense.fill_(value)

    def _freeze(self, token_net: nn.Module) -> None:
        self.requires_grad_(False)
        for f in self.fusers():
            f.requires_grad_(True)
        token_net.requires_grad_(True)
        _check_blocks(self.fusers(), f"GLIGEN on {self.spec.name}")


class GLIGENSD(GLIGENDenoiser):
    """sd1.5: ``UNet2DConditionModel(attention_type="gated")`` holding the backbone's weights.

    ``visual_position="sincos"`` (a knob, ``position.py``) swaps each diffusers fuser for a
    ``PositionedFuser`` with the same initial weights."""

    def __init__(self, backbone: Backbone, token_dim: int, visual_position: str = "none"):
        plain = backbone.model
        config = {k: v for k, v in plain.config.items() if not k.startswith("_")}
        if token_dim != config["cross_attention_dim"]:
            raise ConfigError(
                f"method.token_dim={token_dim}: on sd1.5 GLIGEN's grounding tokens have the U-Net's "
                f"cross-attention width {config['cross_attention_dim']}; set method.token_dim=null"
            )
        dtype = next(plain.parameters()).dtype
        gated = UNet2DConditionModel.from_config({**config, "attention_type": "gated"})
        if dtype != torch.float32:
            gated.to(dtype)
        missing, unexpected = gated.load_state_dict(plain.state_dict(), strict=False)
        extra = [k for k in missing if not (".fuser." in k or k.startswith("position_net."))]
        if unexpected or extra:
            raise RuntimeError(
                f"gated U-Net does not hold the SD weights: missing {extra}, unexpected {unexpected}"
            )
        if getattr(plain, "is_gradient_checkpointing", False):
            gated.enable_gradient_checkpointing()
        gated.train(plain.training)
        super().__init__(backbone, model=gated)
        self.plain_forward = type(backbone).forward  # SD15Backbone.forward: frames folded into the batch
        if visual_position == "sincos":
            for block in gated.modules():
                if isinstance(block, BasicTransformerBlock):
                    old = block.fuser
                    d = old.linear.out_features
                    block.fuser = PositionedFuser(
                        d, old.linear.in_features, old.attn.heads, d // old.attn.heads
                    )
                    block.fuser.load_state_dict(old.state_dict())
        self._freeze(self.model.position_net)

    def forward(
        self,
        latents,
        timesteps,
        text_embeds,
        text_mask=None,
        image_latents=None,
        grounding_boxes=None,
        grounding_masks=None,
        grounding_phrases=None,
    ):
        kwargs = None
        for f in self.fusers():
            if isinstance(f, PositionedFuser):
                f.latent_hw = tuple(latents.shape[-2:])
        if _check_grounding(grounding_boxes, grounding_masks, grounding_phrases):
            # the U-Net's forward turns these into {"objs": position_net(...)} (a fresh dict: it pops)
            kwargs = {
                "gligen": {
                    "boxes": _frames_first(grounding_boxes),
                    "masks": _frames_first(grounding_masks),
                    "positive_embeddings": _frames_first(grounding_phrases),
                }
            }
        return self.plain_forward(self, latents, timesteps, text_embeds, text_mask, image_latents, kwargs)


class GLIGENModelScope(GLIGENDenoiser):
    """modelscope-t2v: a diffusers ``fuser`` in every spatial ``BasicTransformerBlock`` of the 3D U-Net."""

    def __init__(self, backbone: Backbone, phrase_dim: int, token_dim: int):
        super().__init__(backbone)

        def fuser(block):
            d = block.norm1.normalized_shape[0]
            return GatedSelfAttention(d, token_dim, block.attn1.heads, d // block.attn1.heads)

        attach_spatial_fusers(self.model, fuser)
        self.position_net = GroundingTokenNet(phrase_dim, token_dim)
        self._freeze(self.position_net)

    def forward(
        self,
        latents,
        timesteps,
        text_embeds,
        text_mask=None,
        image_latents=None,
        grounding_boxes=None,
        grounding_masks=None,
        grounding_phrases=None,
    ):
        self._check_no_image(image_latents)
        kwargs = None
        if _check_grounding(grounding_boxes, grounding_masks, grounding_phrases):
            objs = self.position_net(grounding_boxes, grounding_masks, grounding_phrases)  # [B, F', M, c]
            kwargs = {"gligen": {"objs": _frames_first(objs.to(latents.dtype))}}
        return self.model(
            sample=latents,
            timestep=timesteps,
            encoder_hidden_states=text_embeds,
            cross_attention_kwargs=kwargs,
            return_dict=False,
        )[0]


class GLIGENWan(GLIGENDenoiser):
    """wan2.1: WanTransformer3DModel.forward (T2V) with a gated block after each block's self-attention."""

    def __init__(self, backbone: Backbone, phrase_dim: int, token_dim: int, video_attention: str = "frame"):
        super().__init__(backbone)
        if video_attention not in VIDEO_ATTENTION:
            raise ConfigError(
                f"method.video_attention={video_attention!r}; use one of {', '.join(VIDEO_ATTENTION)}"
            )
        self.video_attention = video_attention
        heads, d_head = self.model.config.num_attention_heads, self.model.config.attention_head_dim
        self.gated = nn.ModuleList(
            GatedSelfAttention(heads * d_head, token_dim, heads, d_head) for _ in self.model.blocks
        )
        self.position_net = GroundingTokenNet(phrase_dim, token_dim)
        self._freeze(self.position_net)

    def forward(
        self,
        latents,
        timesteps,
        text_embeds,
        text_mask=None,
        image_latents=None,
        grounding_boxes=None,
        grounding_masks=None,
        grounding_phrases=None,
    ):
        self._check_no_image(image_latents)
        objs = None
        if _check_grounding(grounding_boxes, grounding_masks, grounding_phrases):
            objs = _frames_first(self.position_net(grounding_boxes, grounding_masks, grounding_phrases))
        return self.run_blocks(latents, timesteps, text_embeds, text_mask, objs)

    def run_blocks(self, latents, timesteps, text_embeds, text_mask, objs):
        """The T2V forward with ``objs`` (None = the plain backbone) handed to every gated block;
        a tensor is cast to the activations' dtype, anything else (InstanceDiffusion's FusionInput)
        is passed as it is."""

        def between(x: Tensor, ctx: Tensor, frames: int):
            if objs is None:
                return None  # the plain backbone
            grounding = objs.to(x.dtype) if isinstance(objs, Tensor) else objs

            def gated(i: int, x: Tensor, mod: tuple[Tensor, ...]) -> Tensor:
                if self.video_attention == "joint":  # every token with every frame's grounding tokens
                    return self.gated[i](x, grounding.reshape(x.shape[0], -1, grounding.shape[-1]))
                return self.gated[i](x, grounding, frames)

            return gated

        return wan_forward(self.model, latents, timesteps, text_embeds, text_mask, between)


def build_gligen(
    backbone: Backbone,
    phrase_dim: int,
    token_dim: int,
    video_attention: str = "frame",
    visual_position: str = "none",
) -> GLIGENDenoiser:
    family = backbone.spec.family
    if family == "sd":
        return GLIGENSD(backbone, token_dim, visual_position)
    if visual_position != "none":
        raise ConfigError(
            f"method.visual_position={visual_position} is implemented on sd1.5 only; "
            f"backbone={backbone.spec.name}. Fix: method.visual_position=none"
        )
    if family == "modelscope":
        return GLIGENModelScope(backbone, phrase_dim, token_dim)
    if family == "wan":
        return GLIGENWan(backbone, phrase_dim, token_dim, video_attention)
    raise ConfigError(
        f"method=gligen is implemented on sd1.5, modelscope-t2v and Wan2.1; backbone={backbone.spec.name}. "
        "Fix: backbone=sd1.5, backbone=modelscope-t2v or backbone=wan2.1-1.3b"
    )
