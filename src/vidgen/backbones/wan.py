"""Wan 2.1 (Wan Team 2025, arXiv:2503.20314): flow-matching DiT, diffusers ``WanTransformer3DModel``.

Latents are channels-first ``[B, C, F, H, W]`` in diffusers too, so the adapter only applies the
text mask: the Wan pipeline zero-fills umT5 positions beyond the prompt length (``text_mask``).

Scheduler choice: the published diffusers pipelines ship ``UniPCMultistepScheduler`` with flow
sigmas (``prediction_type=flow_prediction, use_flow_sigmas=True, flow_shift=3.0``; 3.0 is the
480p shift, Wan recommends 5.0 at 720p); we keep it so sampling matches the released pipeline.
"""

from __future__ import annotations

from diffusers import WanTransformer3DModel

from vidgen.backbones.registry import Backbone, BackboneSpec, register_backbone

# huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers/blob/main/transformer/config.json
WAN_1_3B = dict(
    added_kv_proj_dim=None,
    attention_head_dim=128,
    cross_attn_norm=True,
    eps=1e-6,
    ffn_dim=8960,
    freq_dim=256,
    image_dim=None,
    in_channels=16,
    num_attention_heads=12,
    num_layers=30,
    out_channels=16,
    patch_size=[1, 2, 2],
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=1024,
    text_dim=4096,
)
# huggingface.co/Wan-AI/Wan2.1-T2V-14B-Diffusers/blob/main/transformer/config.json
# (dim 5120 = 40 heads x 128, ffn 13824, 40 layers; same as Wan-Video/Wan2.1 wan_t2v_14B.py)
WAN_14B = dict(WAN_1_3B, ffn_dim=13824, num_attention_heads=40, num_layers=40)

# Tiny: 2 layers, 2 heads x 12 dims (RoPE splits the head dim t/h/w = 4/4/4), text 32-d.
TINY = dict(
    WAN_1_3B, attention_head_dim=12, num_attention_heads=2, ffn_dim=48, freq_dim=32, num_layers=2, text_dim=32
)

# huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers/blob/main/scheduler/scheduler_config.json (main fields)
SCHEDULER = dict(
    num_train_timesteps=1000,
    prediction_type="flow_prediction",
    use_flow_sigmas=True,
    flow_shift=3.0,
    solver_order=2,
    solver_type="bh2",
    predict_x0=True,
    lower_order_final=True,
    final_sigmas_type="zero",
    timestep_spacing="linspace",
    steps_offset=0,
)


class WanBackbone(Backbone):
    """Adapter for ``WanTransformer3DModel`` (T2V): zero text embeddings where ``text_mask`` is False."""

    def forward(self, latents, timesteps, text_embeds, text_mask=None, image_latents=None, attention_kwargs=None):
        self._check_no_image(image_latents)
        if attention_kwargs:
            # diffusers 0.42.1 calls Wan blocks as block(x, ctx, temb, rope) and drops attention_kwargs
            # without a warning (transformer_wan.py:703-704): refuse instead of ignoring them.
            raise ValueError(
                f"the Wan backbone cannot pass attention_kwargs {sorted(attention_kwargs)} to its blocks "
                "(diffusers drops them); a method that conditions attention must own the block loop, "
                "like vidgen.methods.instancev.denoiser.InstanceVWan"
            )
        if text_mask is not None:
            text_embeds = text_embeds * text_mask[..., None].to(text_embeds.dtype)
        return self.model(
            hidden_states=latents,
            timestep=timesteps,
            encoder_hidden_states=text_embeds,
            return_dict=False,
        )[0]


_COMMON = dict(
    family="wan",
    model_cls=WanTransformer3DModel,
    adapter_cls=WanBackbone,
    tiny_config=TINY,
    latent_channels=16,
    patch_size=(1, 2, 2),
    vae_scale=(4, 8, 8),
    text_encoder="umt5-xxl",
    text_encoder_cls="UMT5EncoderModel",
    text_dim=4096,
    text_len=512,
    vae_cls="AutoencoderKLWan",
    objective="flow",
    scheduler_cls="UniPCMultistepScheduler",
    scheduler_config=SCHEDULER,
    weights_subfolder="transformer",
    image_condition=False,
    default_frames=81,
    default_height=480,
    default_width=832,
    tiny_frames=9,
    tiny_height=64,
    tiny_width=64,
    tiny_text_dim=32,
    tiny_text_len=16,
    input_proj="patch_embedding",
    output_proj="proj_out",
    proj_channels_last=True,
)

register_backbone(BackboneSpec(name="wan2.1-1.3b", real_config=WAN_1_3B, **_COMMON))
register_backbone(BackboneSpec(name="wan2.1-14b", real_config=WAN_14B, **_COMMON))
