"""Stable Diffusion 1.5 (Rombach et al. 2022): the image U-Net GLIGEN and InstanceDiffusion were built
on, diffusers ``UNet2DConditionModel`` on SD-VAE latents (4 channels, 8x downsampling).

An image model in a video codebase: latents stay ``[B, C, F, H, W]`` and the adapter folds frames
into the batch (every frame is an independent image with the same prompt); the shapes world serves
it with frames = 1.

Scheduler choice: SD 1.5 trains epsilon on the DDPM scaled-linear schedule (beta 0.00085 -> 0.012,
1000 steps); the release ships PNDM for sampling, GLIGEN / InstanceDiffusion sample with PLMS /
DDIM; we sample with ``DDIMScheduler`` on the same training schedule (as ModelScope does).
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from vidgen.backbones.registry import Backbone, BackboneSpec, register_backbone

# huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/unet/config.json
SD15 = dict(
    act_fn="silu",
    attention_head_dim=8,
    block_out_channels=[320, 640, 1280, 1280],
    center_input_sample=False,
    cross_attention_dim=768,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    downsample_padding=1,
    flip_sin_to_cos=True,
    freq_shift=0,
    in_channels=4,
    layers_per_block=2,
    mid_block_scale_factor=1,
    norm_eps=1e-5,
    norm_num_groups=32,
    out_channels=4,
    sample_size=64,
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
)
# Tiny: two levels (32, 64 channels), one layer per block, 4 heads, cross-attention 32-d.
TINY = dict(
    SD15,
    attention_head_dim=4,
    block_out_channels=[32, 64],
    cross_attention_dim=32,
    down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
    layers_per_block=1,
    norm_num_groups=8,
    sample_size=8,
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
)

# huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/scheduler/scheduler_config.json
# (its betas; DDIM instead of the shipped PNDM, see the module docstring)
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


class SD15Backbone(Backbone):
    """Adapter for ``UNet2DConditionModel``: ``[B, C, F, H, W]`` -> ``[B * F, C, H, W]`` and back.

    ``text_mask`` is not used: the SD pipeline feeds the full 77-token CLIP sequence (padding
    included) and the U-Net has no cross-attention mask. ``cross_attention_kwargs`` go to the
    U-Net's attention processors (GLIGEN's ``{"gligen": {...}}``, tensors already per image).
    """

    def forward(
        self,
        latents,
        timesteps,
        text_embeds,
        text_mask=None,
        image_latents=None,
        cross_attention_kwargs=None,
    ):
        self._check_no_image(image_latents)
        b, c, f, h, w = latents.shape
        x = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        t = torch.as_tensor(timesteps, device=latents.device).reshape(-1)
        t = t.expand(b) if t.numel() == 1 else t
        out = self.model(
            sample=x,
            timestep=t.repeat_interleave(f),
            encoder_hidden_states=text_embeds.repeat_interleave(f, dim=0),
            cross_attention_kwargs=cross_attention_kwargs,
            return_dict=False,
        )[0]
        return out.reshape(b, f, -1, h, w).permute(0, 2, 1, 3, 4)


register_backbone(
    BackboneSpec(
        name="sd1.5",
        family="sd",
        model_cls=UNet2DConditionModel,
        adapter_cls=SD15Backbone,
        real_config=SD15,
        tiny_config=TINY,
        latent_channels=4,
        patch_size=(1, 1, 1),
        vae_scale=(1, 8, 8),
        text_encoder="clip-vit-l-14",
        text_encoder_cls="CLIPTextModel",
        text_dim=768,
        text_len=77,
        vae_cls="AutoencoderKL",
        objective="eps",
        scheduler_cls="DDIMScheduler",
        scheduler_config=SCHEDULER,
        weights_subfolder="unet",
        image_condition=False,
        default_frames=1,
        default_height=512,
        default_width=512,
        tiny_frames=1,
        tiny_height=64,
        tiny_width=64,
        tiny_text_dim=32,
        tiny_text_len=16,
        input_proj="conv_in",
        output_proj="conv_out",
    )
)
