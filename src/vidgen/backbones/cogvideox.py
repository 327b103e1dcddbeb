"""CogVideoX (Yang et al. 2024, arXiv:2408.06072): expert-transformer DiT, diffusers
``CogVideoXTransformer3DModel``. Latents are ``[B, F, C, H, W]`` inside diffusers; this adapter
converts from/to vidgen's ``[B, C, F, H, W]``.
"""

from __future__ import annotations

import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

from vidgen.backbones.registry import Backbone, BackboneSpec, register_backbone

# huggingface.co/THUDM/CogVideoX-2b/blob/main/transformer/config.json
COGVIDEOX_2B = dict(
    activation_fn="gelu-approximate",
    attention_bias=True,
    attention_head_dim=64,
    dropout=0.0,
    flip_sin_to_cos=True,
    freq_shift=0,
    in_channels=16,
    max_text_seq_length=226,
    norm_elementwise_affine=True,
    norm_eps=1e-5,
    num_attention_heads=30,
    num_layers=30,
    out_channels=16,
    patch_size=2,
    sample_frames=49,
    sample_height=60,
    sample_width=90,
    spatial_interpolation_scale=1.875,
    temporal_compression_ratio=4,
    temporal_interpolation_scale=1.0,
    text_embed_dim=4096,
    time_embed_dim=512,
    timestep_activation_fn="silu",
    use_rotary_positional_embeddings=False,
)
# huggingface.co/THUDM/CogVideoX-5b/blob/main/transformer/config.json: 48 heads, 42 layers, 3D RoPE
COGVIDEOX_5B = dict(
    COGVIDEOX_2B, num_attention_heads=48, num_layers=42, use_rotary_positional_embeddings=True
)
# huggingface.co/THUDM/CogVideoX-5b-I2V/blob/main/transformer/config.json: image latents concatenated
# on channels (in 32, out 16) and learned positional embeddings on top of RoPE
COGVIDEOX_5B_I2V = dict(COGVIDEOX_5B, in_channels=32, use_learned_positional_embeddings=True)

# Tiny: same class and structural flags; 2 layers, 2 heads x 16 dims (3D RoPE splits the head dim
# into t/h/w quarters, so 16 keeps every part even), text 32-d x 16 tokens, latents 3x8x8.
_TINY_BASE = dict(
    COGVIDEOX_2B,
    attention_head_dim=16,
    num_attention_heads=2,
    num_layers=2,
    text_embed_dim=32,
    time_embed_dim=32,
    max_text_seq_length=16,
    sample_frames=9,
    sample_height=8,
    sample_width=8,
)
TINY_2B = dict(_TINY_BASE)
TINY_5B = dict(_TINY_BASE, use_rotary_positional_embeddings=True)
TINY_5B_I2V = dict(TINY_5B, in_channels=32, use_learned_positional_embeddings=True)

# huggingface.co/THUDM/CogVideoX-2b/blob/main/scheduler/scheduler_config.json
SCHEDULER_2B = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    set_alpha_to_one=True,
    snr_shift_scale=3.0,
    timestep_spacing="trailing",
    clip_sample=False,
    steps_offset=0,
)
# huggingface.co/THUDM/CogVideoX-5b/blob/main/scheduler/scheduler_config.json (and -I2V): snr_shift_scale 1.0
SCHEDULER_5B = dict(SCHEDULER_2B, snr_shift_scale=1.0)


class CogVideoXBackbone(Backbone):
    """Adapter for ``CogVideoXTransformer3DModel`` (T2V and I2V).

    ``text_mask`` is not used: the CogVideoX pipelines feed the full padded T5 sequence (226 tokens)
    without a mask. I2V: ``image_latents [B, C, F_img, H, W]`` are zero-padded along frames to F and
    concatenated on channels, as ``CogVideoXImageToVideoPipeline`` does.
    """

    def rotary_embedding(self, frames: int, height: int, width: int, device: torch.device):
        """``CogVideoXPipeline._prepare_rotary_positional_embeddings`` for latent sizes (F, H, W)."""
        cfg = self.model.config
        p, p_t = cfg.patch_size, cfg.patch_size_t
        grid_height, grid_width = height // p, width // p
        base_size_width, base_size_height = cfg.sample_width // p, cfg.sample_height // p
        if p_t is None:  # CogVideoX 1.0
            crops = get_resize_crop_region_for_grid(
                (grid_height, grid_width), base_size_width, base_size_height
            )
            cos, sin = get_3d_rotary_pos_embed(
                embed_dim=cfg.attention_head_dim,
                crops_coords=crops,
                grid_size=(grid_height, grid_width),
                temporal_size=frames,
                device=device,
            )
        else:  # CogVideoX 1.5
            cos, sin = get_3d_rotary_pos_embed(
                embed_dim=cfg.attention_head_dim,
                crops_coords=None,
                grid_size=(grid_height, grid_width),
                temporal_size=(frames + p_t - 1) // p_t,
                grid_type="slice",
                max_size=(base_size_height, base_size_width),
                device=device,
            )
        return cos, sin

    def forward(self, latents, timesteps, text_embeds, text_mask=None, image_latents=None):
        b, c, f, h, w = latents.shape
        x = latents
        if self.spec.image_condition:
            if image_latents is None:
                raise ValueError(
                    f"backbone {self.spec.name!r} is image-conditioned: pass image_latents [B,C,1,H,W]"
                )
            f_img = image_latents.shape[2]
            if f_img > f:
                raise ValueError(f"image_latents has {f_img} frames, more than the {f} latent frames")
            pad = image_latents.new_zeros(b, image_latents.shape[1], f - f_img, h, w)
            x = torch.cat([x, torch.cat([image_latents.to(x.dtype), pad], dim=2)], dim=1)
        else:
            self._check_no_image(image_latents)
        cfg = self.model.config
        rope = None
        if cfg.use_rotary_positional_embeddings:
            cos, sin = self.rotary_embedding(f, h, w, latents.device)
            rope = (cos.to(latents.device), sin.to(latents.device))
        ofs = None
        if cfg.ofs_embed_dim is not None:  # CogVideoX 1.5 I2V, as in the pipeline
            ofs = latents.new_full((1,), fill_value=2.0)
        out = self.model(
            hidden_states=x.permute(0, 2, 1, 3, 4),
            encoder_hidden_states=text_embeds,
            timestep=timesteps,
            ofs=ofs,
            image_rotary_emb=rope,
            return_dict=False,
        )[0]
        return out.permute(0, 2, 1, 3, 4).contiguous()


_COMMON = dict(
    family="cogvideox",
    model_cls=CogVideoXTransformer3DModel,
    adapter_cls=CogVideoXBackbone,
    latent_channels=16,
    patch_size=(1, 2, 2),
    vae_scale=(4, 8, 8),
    text_encoder="t5-v1_1-xxl",
    text_encoder_cls="T5EncoderModel",
    text_dim=4096,
    text_len=226,
    vae_cls="AutoencoderKLCogVideoX",
    objective="v",
    scheduler_cls="CogVideoXDDIMScheduler",
    weights_subfolder="transformer",
    default_frames=49,
    default_height=480,
    default_width=720,
    tiny_frames=9,
    tiny_height=64,
    tiny_width=64,
    tiny_text_dim=32,
    tiny_text_len=16,
    input_proj="patch_embed.proj",
    output_proj="proj_out",
)

register_backbone(
    BackboneSpec(
        name="cogvideox-2b",
        real_config=COGVIDEOX_2B,
        tiny_config=TINY_2B,
        scheduler_config=SCHEDULER_2B,
        **_COMMON,
    )
)
register_backbone(
    BackboneSpec(
        name="cogvideox-5b",
        real_config=COGVIDEOX_5B,
        tiny_config=TINY_5B,
        scheduler_config=SCHEDULER_5B,
        **_COMMON,
    )
)
register_backbone(
    BackboneSpec(
        name="cogvideox-5b-i2v",
        real_config=COGVIDEOX_5B_I2V,
        tiny_config=TINY_5B_I2V,
        scheduler_config=SCHEDULER_5B,
        image_condition=True,
        **_COMMON,
    )
)
