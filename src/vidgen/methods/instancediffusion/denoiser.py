"""The InstanceDiffusion denoiser on a diffusers 2D U-Net (``sd1.5``): fusers, position net, ScaleU.

``install`` adds, to a frozen ``UNet2DConditionModel``: a ``MaskedFuser`` in every
``BasicTransformerBlock`` (diffusers calls ``block.fuser`` when ``cross_attention_kwargs`` carry
``"gligen"``), the ``GroundingNet`` as ``unet.position_net`` (called once per forward), and ScaleU
on the decoder (or FreeU, or neither). Every gate and ScaleU scale starts at zero, so the output
equals the backbone's bit for bit until they train (tests/test_instancediffusion_model.py).
"""

from __future__ import annotations

from diffusers.models.attention import BasicTransformerBlock
from torch import Tensor, nn
from transformers import ConvNextConfig, ConvNextModel

from vidgen.backbones.registry import Backbone
from vidgen.backbones.sd15 import SD15Backbone
from vidgen.methods.instancediffusion.config import InstanceDiffusionConfig
from vidgen.methods.instancediffusion.fusion import GroundingNet, MaskedFuser
from vidgen.methods.instancediffusion.scaleu import ScaleUSet, enable_freeu
from vidgen.methods.instancediffusion.tokenizers import SegTokenizer, UniFusion

GROUNDING_KEYS = (
    "g_text", "g_valid", "g_boxes", "g_points", "g_scribbles", "g_polygons", "g_masks", "g_given", "g_latent"
)  # fmt: skip
TINY_CONVNEXT = dict(hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1])  # tiny twin of ConvNeXt-T


def seg_convnext(hp: InstanceDiffusionConfig, tiny: bool) -> ConvNextModel:
    """ConvNeXt-T from ``method.seg_encoder`` (a local transformers folder), else random init
    (ConvNeXt-T's config; its tiny twin on a tiny backbone)."""
    if hp.seg_encoder:
        return ConvNextModel.from_pretrained(hp.seg_encoder)
    return ConvNextModel(ConvNextConfig(**(TINY_CONVNEXT if tiny else {})))


def widths(hp: InstanceDiffusionConfig, tiny: bool) -> tuple[int, int, int]:
    """(token_dim, tokenizer_hidden, seg_resolution); ``method.tiny`` overrides them on a tiny backbone."""
    over = hp.tiny if tiny else {}
    return (
        over.get("token_dim", hp.token_dim),
        over.get("tokenizer_hidden", hp.tokenizer_hidden),
        over.get("seg_resolution", hp.seg_resolution),
    )


def install(unet: nn.Module, hp: InstanceDiffusionConfig, text_dim: int, tiny: bool) -> ScaleUSet | None:
    """Freeze ``unet`` and add the trainable InstanceDiffusion modules; returns ScaleU (None without)."""
    unet.requires_grad_(False)
    token_dim = widths(hp, tiny)[0]
    for block in unet.modules():
        if isinstance(block, BasicTransformerBlock):
            d, heads = block.attn1.query_dim, block.attn1.heads
            block.fuser = MaskedFuser(d, token_dim, heads, d // heads)
    unet.position_net = grounding_net(hp, text_dim, tiny)
    if hp.skip_feature == "freeu":
        enable_freeu(unet, hp.freeu)
    if hp.skip_feature == "scaleu":
        return ScaleUSet(unet, hp.scaleu_skip, hp.scaleu_threshold)
    return None


def grounding_net(hp: InstanceDiffusionConfig, text_dim: int, tiny: bool) -> GroundingNet:
    """UniFusion (+ the seg branch) and the MaskAttn switches: grounding tensors -> ``FusionInput``."""
    token_dim, hidden, seg_res = widths(hp, tiny)
    seg = None
    if hp.seg_tokens:
        seg = SegTokenizer(
            seg_convnext(hp, tiny), hp.max_instances, hp.seg_tokens, hidden, token_dim, seg_res
        )
    uni = UniFusion(
        hp.max_instances, text_dim, token_dim, hidden, hp.fourier_freqs,
        hp.scribble_points, hp.polygon_points, hp.fusion, seg,
    )  # fmt: skip
    return GroundingNet(uni, hp.mask_attn, hp.mask_attn_containers)


class InstanceDiffusionUNet(SD15Backbone):
    """``forward(latents, timesteps, text_embeds, text_mask, g_text=..., ..., g_latent=...)``.

    The ``g_*`` tensors (``GROUNDING_KEYS``, see ``GroundingNet``) are all given or all absent;
    absent, the fusers are skipped (the backbone, with ScaleU). Images only (frames = 1 per sample).
    """

    def __init__(self, backbone: Backbone, hp: InstanceDiffusionConfig):
        super().__init__(backbone.model, backbone.spec, backbone.size)
        tiny = backbone.size == "tiny"
        self.scaleu = install(self.model, hp, backbone.spec.text_dim_for(backbone.size), tiny)

    def set_gates(self, value: float) -> None:
        """Fill every fuser's two gates (tests: 0 = the backbone, nonzero = grounding reaches the output)."""
        for m in self.model.modules():
            if isinstance(m, MaskedFuser):
                m.alpha_attn.data.fill_(value)
                m.alpha_dense.data.fill_(value)

    def forward(
        self, latents, timesteps, text_embeds, text_mask=None, image_latents=None, **grounding: Tensor
    ):
        given = [k for k in GROUNDING_KEYS if grounding.get(k) is not None]
        if set(grounding) - set(GROUNDING_KEYS) or given and len(given) != len(GROUNDING_KEYS):
            raise ValueError(
                f"InstanceDiffusionUNet needs all of {GROUNDING_KEYS} or none, got {sorted(grounding)}"
            )
        kwargs = {"gligen": grounding} if given else None
        return super().forward(
            latents, timesteps, text_embeds, text_mask, image_latents, cross_attention_kwargs=kwargs
        )
