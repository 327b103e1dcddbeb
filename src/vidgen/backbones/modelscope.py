"""ModelScope text-to-video (Wang et al. 2023, arXiv:2308.06571): factorised space-time UNet,
diffusers ``UNet3DConditionModel`` on per-frame SD latents (``[B, C, F, H, W]`` natively).
"""

from __future__ import annotations

from diffusers import UNet3DConditionModel

from vidgen.backbones.registry import Backbone, BackboneSpec, register_backbone

# huggingface.co/damo-vilab/text-to-video-ms-1.7b/blob/main/unet/config.json
MODELSCOPE_T2V = dict(
    act_fn="silu",
    attention_head_dim=64,
    block_out_channels=[320, 640, 1280, 1280],
    cross_attention_dim=1024,
    down_block_types=["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    downsample_padding=1,
    in_channels=4,
    layers_per_block=2,
    mid_block_scale_factor=1,
    norm_eps=1e-5,
    norm_num_groups=32,
    out_channels=4,
    sample_size=32,
    up_block_types=["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
)
# Tiny: two levels (32, 64 channels), one layer per block, 4 heads, cross-attention 32-d.
TINY = dict(
    MODELSCOPE_T2V,
    attention_head_dim=4,
    block_out_channels=[32, 64],
    cross_attention_dim=32,
    down_block_types=["CrossAttnDownBlock3D", "DownBlock3D"],
    layers_per_block=1,
    norm_num_groups=8,
    sample_size=8,
    up_block_types=["UpBlock3D", "CrossAttnUpBlock3D"],
)

# huggingface.co/damo-vilab/text-to-video-ms-1.7b/blob/main/scheduler/scheduler_config.json
SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    prediction_type="epsilon",
    set_alpha_to_one=False,
    steps_offset=1,
    clip_sample=False,
)


class ModelScopeBackbone(Backbone):
    """Adapter for ``UNet3DConditionModel``. ``text_mask`` is not used: the ModelScope pipeline feeds
    the full 77-token OpenCLIP sequence and the UNet has no cross-attention mask."""

    def forward(self, latents, timesteps, text_embeds, text_mask=None, image_latents=None):
        self._check_no_image(image_latents)
        return self.model(
            sample=latents,
            timestep=timesteps,
            encoder_hidden_states=text_embeds,
            return_dict=False,
        )[0]


register_backbone(
    BackboneSpec(
        name="modelscope-t2v",
        family="modelscope",
        model_cls=UNet3DConditionModel,
        adapter_cls=ModelScopeBackbone,
        real_config=MODELSCOPE_T2V,
        tiny_config=TINY,
        latent_channels=4,
        patch_size=(1, 1, 1),
        vae_scale=(1, 8, 8),
        text_encoder="open-clip-vit-h-14",
        text_encoder_cls="CLIPTextModel",
        text_dim=1024,
        text_len=77,
        vae_cls="AutoencoderKL",
        objective="eps",
        scheduler_cls="DDIMScheduler",
        scheduler_config=SCHEDULER,
        weights_subfolder="unet",
        image_condition=False,
        default_frames=16,
        default_height=256,
        default_width=256,
        tiny_frames=4,
        tiny_height=64,
        tiny_width=64,
        tiny_text_dim=32,
        tiny_text_len=16,
        input_proj="conv_in",
        output_proj="conv_out",
    )
)
