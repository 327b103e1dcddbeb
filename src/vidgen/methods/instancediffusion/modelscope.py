"""InstanceDiffusion ported to ModelScope T2V's 3D U-Net (issue 14), ScaleU on its decoder.

A ``MaskedFuser`` as ``fuser`` in every spatial ``BasicTransformerBlock`` (diffusers calls it between
self- and cross-attention when ``cross_attention_kwargs`` carry ``"gligen"``; the U-Net folds frames
into the batch, frames fastest, so row b F' + f of the ``FusionInput`` is sample b's latent frame f);
the temporal transformers never see the grounding (GLIGEN's pre-hook strips it). The grounding is per
latent frame as on Wan (``wan.py``, ``transform.py:video_extras``). ScaleU applies here: ModelScope's
decoder has the 12 up-block resnets reading ``cat([F_b, F_s])`` as SD's (``scaleu.py``), so
``method.skip_feature`` scaleu / freeu / none work as on sd1.5. Gates and ScaleU scales start at 0: the
output equals the backbone's bit for bit (tests/test_instancediffusion_video.py).
"""

from __future__ import annotations

from torch import Tensor

from vidgen.backbones.registry import Backbone
from vidgen.instances.unet3d_fusers import attach_spatial_fusers
from vidgen.methods.gligen.denoiser import GLIGENDenoiser
from vidgen.methods.instancediffusion.config import InstanceDiffusionConfig
from vidgen.methods.instancediffusion.denoiser import grounding_net, widths
from vidgen.methods.instancediffusion.fusion import MaskedFuser
from vidgen.methods.instancediffusion.scaleu import ScaleUSet, enable_freeu
from vidgen.methods.instancediffusion.wan import frame_tokens


class InstanceDiffusionModelScope(GLIGENDenoiser):
    """``forward(latents, timesteps, text_embeds, text_mask, g_text=..., ..., g_latent=...)`` with the
    ``g_*`` tensors per latent frame ([B, F', ...], as ``InstanceDiffusionWan``), all or none."""

    def __init__(self, backbone: Backbone, hp: InstanceDiffusionConfig):
        super().__init__(backbone)
        tiny = backbone.size == "tiny"
        token_dim = widths(hp, tiny)[0]

        def fuser(block):
            d, heads = block.attn1.query_dim, block.attn1.heads
            return MaskedFuser(d, token_dim, heads, d // heads)

        attach_spatial_fusers(self.model, fuser)
        self.position_net = grounding_net(hp, backbone.spec.text_dim_for(backbone.size), tiny)
        self._freeze(self.position_net)
        self.scaleu = None  # created after the freeze: its scales train
        if hp.skip_feature == "freeu":
            enable_freeu(self.model, hp.freeu)
        if hp.skip_feature == "scaleu":
            self.scaleu = ScaleUSet(self.model, hp.scaleu_skip, hp.scaleu_threshold)

    def forward(
        self, latents, timesteps, text_embeds, text_mask=None, image_latents=None, **grounding: Tensor
    ):
        self._check_no_image(image_latents)
        objs = frame_tokens(self.position_net, grounding, "InstanceDiffusionModelScope")
        kwargs = None if objs is None else {"gligen": {"objs": objs}}
        return self.model(
            sample=latents,
            timestep=timesteps,
            encoder_hidden_states=text_embeds,
            cross_attention_kwargs=kwargs,
            return_dict=False,
        )[0]
