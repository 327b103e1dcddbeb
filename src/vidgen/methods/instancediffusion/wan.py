"""InstanceDiffusion ported to Wan2.1 (InstanceV Table 1's baseline on its backbone; issue 14).

Diffusers' Wan drops attention kwargs (STYLE.md), so this reuses GLIGEN's Wan block loop
(``GLIGENWan.run_blocks``) with a ``MaskedFuser`` between each DiT block's self- and
cross-attention. The grounding is per latent frame: every ``g_*`` tensor carries a frame axis
([B, F', ...], from the instances' boxes / masks at pixel frame k T_ds, ``transform.py``); the
frames are folded into the batch (frames fastest), the ``GroundingNet`` builds one set of UniFusion
tokens and one MaskAttn mask per latent frame, and frame f's visual tokens fuse with frame f's
grounding tokens only (GLIGEN's ``video_attention=frame``).

ScaleU does not apply: it rescales a U-Net decoder's backbone features and skip connections, and a
DiT has neither (``method.skip_feature`` must be ``none``; ``scaleu`` / ``freeu`` are a ConfigError).
Every gate starts at 0: the output equals the Wan backbone's bit for bit
(tests/test_instancediffusion_video.py).
"""

from __future__ import annotations

from torch import Tensor, nn

from vidgen.backbones.registry import Backbone
from vidgen.errors import ConfigError
from vidgen.methods.gligen.denoiser import GLIGENDenoiser, GLIGENWan
from vidgen.methods.instancediffusion.config import InstanceDiffusionConfig
from vidgen.methods.instancediffusion.denoiser import GROUNDING_KEYS, grounding_net, widths
from vidgen.methods.instancediffusion.fusion import MaskedFuser


def check_skip_feature(hp: InstanceDiffusionConfig, backbone: str) -> None:
    if hp.skip_feature != "none":
        raise ConfigError(
            f"method.skip_feature={hp.skip_feature} on backbone={backbone}: ScaleU / FreeU rescale a U-Net "
            "decoder's features and skip connections, and a DiT has neither. Fix: method.skip_feature=none"
        )


def fold_frames(x: Tensor) -> Tensor:
    """[B, F', ...] -> [B F', ...] (frames fastest, the order of ``MaskedFuser``'s frame split)."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def frame_tokens(position_net, grounding: dict[str, Tensor], who: str) -> Tensor | None:
    """UniFusion tokens of every latent frame ([B F', M, c]) from the per-frame ``g_*`` tensors, or None
    when no grounding is given (the backbone); a partial set of ``GROUNDING_KEYS`` is an error."""
    given = [k for k in GROUNDING_KEYS if grounding.get(k) is not None]
    if set(grounding) - set(GROUNDING_KEYS) or given and len(given) != len(GROUNDING_KEYS):
        raise ValueError(f"{who} needs all of {GROUNDING_KEYS} or none, got {sorted(grounding)}")
    if not given:
        return None
    return position_net(**{k: v if k == "g_latent" else fold_frames(v) for k, v in grounding.items()})


class InstanceDiffusionWan(GLIGENWan):
    """``forward(latents, timesteps, text_embeds, text_mask, g_text=..., ..., g_latent=...)``.

    g_text [B, F', N, D]; g_valid [B, F', N]; g_boxes [B, F', N, 4]; g_points [B, F', N, 2];
    g_scribbles [B, F', N, P_s, 2]; g_polygons [B, F', N, P_m, 2]; g_masks [B, F', N, r, ceil(r / 8)] (packed, ``mask_bits``);
    g_given [B, F', 5, N]; g_latent the latent (H', W'). All given or all absent (the backbone).
    """

    def __init__(self, backbone: Backbone, hp: InstanceDiffusionConfig):
        check_skip_feature(hp, backbone.spec.name)
        GLIGENDenoiser.__init__(self, backbone)
        self.video_attention = "frame"
        tiny = backbone.size == "tiny"
        token_dim = widths(hp, tiny)[0]
        heads, d_head = self.model.config.num_attention_heads, self.model.config.attention_head_dim
        self.gated = nn.ModuleList(
            MaskedFuser(heads * d_head, token_dim, heads, d_head) for _ in self.model.blocks
        )
        self.position_net = grounding_net(hp, backbone.spec.text_dim_for(backbone.size), tiny)
        self._freeze(self.position_net)

    def forward(
        self, latents, timesteps, text_embeds, text_mask=None, image_latents=None, **grounding: Tensor
    ):
        self._check_no_image(image_latents)
        objs = frame_tokens(self.position_net, grounding, "InstanceDiffusionWan")
        return self.run_blocks(latents, timesteps, text_embeds, text_mask, objs)
