"""STIV's spatial-temporal DiT (Lin et al. 2024, arXiv:2412.07730, Sec. 2, Table 1): a native model.

PixArt-alpha blocks with factorised spatial / temporal self-attention, text cross-attention and a
shared singleton-condition AdaLN; every Table 2 / Table 3 design choice is a constructor switch
(defaults: the paper's final recipe). STIV has no public code: choices where the paper is silent
are named in docs/methods/stiv.md. Registered as ``stiv-xl``, ``stiv-xxl``, ``stiv-m`` (the T2V
model; the ``t2i`` config variant drops temporal attention and uses temporal patch 1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vidgen.backbones.registry import Backbone, BackboneSpec, register_backbone
from vidgen.backbones.stiv_layers import (
    SingletonCondition,
    STIVBlock,
    modulate,
    rope_1d,
    rope_2d,
    sincos_1d,
    stateless_norm,
)

POS_EMBEDS = ("rope", "sincos", "learned")


class STIVDiT(nn.Module):
    """``model(hidden_states [B, C, F, H, W], timestep [B], encoder_hidden_states [B, L, Dt], ...)``.

    Knobs (Table 2 / 3 rows): ``qk_norm``, ``sandwich_norm``, ``cond_norm``, ``shared_adaln``
    (False: one adaLN per block), ``micro_conditions``, ``pos_embed`` ("rope": 2D RoPE in spatial,
    1D in temporal attention; "sincos": the DiT/PixArt absolute embedding; "learned": absolute
    spatial and temporal tables for a fixed ``pos_grid`` = (max temporal, h, w) tokens, initialised to
    the sincos values), ``temporal_patch_size``
    (the "cubify" Conv3d's temporal kernel), ``temporal_attention`` (False = the T2I model),
    ``causal_temporal``, ``decoder_blocks`` (MaskDiT's extra full-width blocks after unmasking).
    Table 5 (STIV part 2): ``image_cross_attention`` (CA) appends tokens of the clean condition
    frames (``image_latents`` [B, C, K, H, W], per-frame 2D patches + 2D sincos positions) to the
    caption for cross-attention, masked out where ``image_mask`` [B] is False (image dropped);
    ``image_projection`` "linear" (one linear) or "large" (LP: an MLP of ratio ``mlp_ratio``; the
    paper names a "large projection layer" without its shape).
    ``rope_spatial_scale`` / ``rope_temporal_scale`` > 1 interpolate RoPE positions (progressive
    training to a higher resolution / more frames), 1 extends them.
    MaskDiT: ``keep_spatial`` [B, S'] / ``keep_temporal`` [B, T'] token indices skip the masked
    tokens in the main blocks; learned mask tokens fill them before the decoder blocks.
    """

    _no_split_modules = ["STIVBlock"]

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int | None = None,
        patch_size: int = 2,  # spatial patch: not stated in the paper; PixArt-alpha XL/2's 2
        temporal_patch_size: int = 2,  # Sec. E / Table 3 base model
        hidden_size: int = 1152,
        num_layers: int = 28,
        num_heads: int = 18,
        mlp_ratio: float = 4.0,
        text_dim: int = 768,  # CLIP-L/14 (Table 2 baseline); 1280 for the internal CLIP
        temporal_attention: bool = True,
        causal_temporal: bool = False,
        qk_norm: bool = True,
        sandwich_norm: bool = True,
        cond_norm: bool = True,
        shared_adaln: bool = True,
        pooled_text: bool = True,
        micro_conditions: bool = True,
        pos_embed: str = "rope",
        rope_theta: float = 10000.0,
        rope_spatial_scale: float = 1.0,
        rope_temporal_scale: float = 1.0,
        decoder_blocks: int = 2,
        pos_grid: list[int] | None = None,  # pos_embed="learned": (max temporal, h, w) tokens
        image_cross_attention: bool = False,  # Table 5 "CA"
        image_projection: str = "linear",  # Table 5 "LP": "large"
    ) -> None:
        super().__init__()
        if pos_embed not in POS_EMBEDS:
            raise ValueError(f"STIVDiT pos_embed={pos_embed!r}; use one of {', '.join(POS_EMBEDS)}")
        if hidden_size % num_heads or (hidden_size // num_heads) % 4:
            raise ValueError(
                f"STIVDiT hidden_size={hidden_size} / num_heads={num_heads} must be a multiple of 4"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.patch_size, self.temporal_patch_size = patch_size, temporal_patch_size
        self.hidden_size, self.head_dim = hidden_size, hidden_size // num_heads
        self.temporal_attention, self.causal_temporal = temporal_attention, causal_temporal
        self.pos_embed = pos_embed
        if image_projection not in ("linear", "large"):
            raise ValueError(f"STIVDiT image_projection={image_projection!r}; use linear or large")
        self.image_cross_attention = image_cross_attention
        if pos_embed == "learned" and (pos_grid is None or len(pos_grid) != 3):
            raise ValueError("STIVDiT pos_embed='learned' needs pos_grid=[max temporal, h, w] tokens")
        self.pos_grid = tuple(pos_grid) if pos_grid is not None else None
        self.rope_theta, self.rope_spatial_scale, self.rope_temporal_scale = (
            rope_theta,
            rope_spatial_scale,
            rope_temporal_scale,
        )
        self.gradient_checkpointing = False
        d = hidden_size
        # 1. "Cubify" patch embedding (Conv3d; T2I: temporal kernel 1) and the caption projection
        patch = (temporal_patch_size, patch_size, patch_size)
        self.patch_embed = nn.Conv3d(in_channels, d, kernel_size=patch, stride=patch)
        self.caption_proj = nn.Sequential(
            nn.Linear(text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d)
        )
        if pos_embed == "learned":
            t_max, gh, gw = self.pos_grid
            self.pos_spatial = nn.Parameter(torch.zeros(gh * gw, d))
            self.pos_temporal = nn.Parameter(torch.zeros(t_max, d)) if temporal_attention else None
        if image_cross_attention:  # Table 5 CA (+ LP): condition-frame tokens for cross-attention
            self.image_embed = nn.Conv3d(
                in_channels, d, kernel_size=(1, patch_size, patch_size), stride=(1, patch_size, patch_size)
            )
            if image_projection == "large":
                hidden = int(d * mlp_ratio)
                self.image_proj = nn.Sequential(
                    nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d)
                )
            else:
                self.image_proj = nn.Linear(d, d)
        # 2. Singleton condition -> AdaLN (one shared module, or one per block)
        self.singleton = SingletonCondition(d, text_dim, pooled_text, micro_conditions, cond_norm)
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d)) if shared_adaln else None

        def block() -> STIVBlock:
            return STIVBlock(
                d, num_heads, mlp_ratio, temporal_attention, qk_norm, sandwich_norm, not shared_adaln
            )

        # 3. Main blocks (see masked tokens only under MaskDiT), then full-width decoder blocks
        self.blocks = nn.ModuleList(block() for _ in range(num_layers))
        self.decoder = nn.ModuleList(block() for _ in range(decoder_blocks))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, d)) if decoder_blocks else None
        # 4. Final layer (DiT): own adaLN shift/scale, linear to one patch of every frame
        self.final_adaln = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.proj_out = nn.Linear(d, temporal_patch_size * patch_size * patch_size * self.out_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT's init: Xavier linears, zero biases; adaLN, final layer and temporal output projections
        zero, so every block's gated branches, the temporal attention and the output start at zero."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(self.hidden_size, -1))
        nn.init.zeros_(self.patch_embed.bias)
        for mlp in (self.singleton.time_embed, self.caption_proj):
            for m in mlp.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)
        for blk in [*self.blocks, *self.decoder]:
            if blk.adaln is not None:
                nn.init.zeros_(blk.adaln[-1].weight)
                nn.init.zeros_(blk.adaln[-1].bias)
            if blk.attn_t is not None:
                nn.init.zeros_(blk.attn_t.to_out.weight)
        if self.pos_embed == "learned":
            with torch.no_grad():
                t_max, gh, gw = self.pos_grid
                self.pos_spatial.copy_(self._sincos_spatial(gh, gw, self.pos_spatial.device))
                if self.pos_temporal is not None:
                    self.pos_temporal.copy_(
                        sincos_1d(self.hidden_size, torch.arange(t_max, device=self.pos_temporal.device))
                    )
        for lin in (self.final_adaln[-1], self.proj_out) + (
            (self.adaln[-1],) if self.adaln is not None else ()
        ):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    # ----------------------------------------------------------------------------- positions
    def positions(self, t: int, h: int, w: int, device) -> dict[str, Tensor]:
        """RoPE (cos, sin) of the full token grid, or the absolute sincos embedding [T, S, D]."""
        if self.pos_embed == "rope":
            rs = rope_2d(self.head_dim, h, w, self.rope_theta, self.rope_spatial_scale, device)  # [S, Dh] x2
            rt = rope_1d(
                self.head_dim, torch.arange(t, device=device), self.rope_theta, self.rope_temporal_scale
            )
            return {"rope_s": rs, "rope_t": rt}
        if self.pos_embed == "learned":
            t_max, gh, gw = self.pos_grid
            if (h, w) != (gh, gw) or t > t_max:
                raise ValueError(
                    f"STIVDiT learned positions cover {t_max} x {gh} x {gw} tokens, got {t} x {h} x {w}; "
                    "use pos_embed='rope' (any size) or a matching pos_grid"
                )
            absolute = self.pos_spatial[None].expand(t, -1, -1)
            if self.pos_temporal is not None:
                absolute = absolute + self.pos_temporal[:t, None]
            return {"absolute": absolute}
        absolute = self._sincos_spatial(h, w, device)[None].expand(t, -1, -1)
        if self.temporal_attention:  # Open-Sora / Latte: a 1D temporal sincos added for video
            absolute = absolute + sincos_1d(self.hidden_size, torch.arange(t, device=device))[:, None]
        return {"absolute": absolute}

    def _sincos_spatial(self, h: int, w: int, device) -> Tensor:
        """2D sine-cosine table [h*w, D]: half of the channels encode the row, half the column."""
        d = self.hidden_size
        rows = torch.arange(h, device=device).repeat_interleave(w)
        cols = torch.arange(w, device=device).repeat(h)
        return torch.cat([sincos_1d(d // 2, rows), sincos_1d(d // 2, cols)], dim=-1)

    # ----------------------------------------------------------------------------- forward
    def forward(
        self,
        hidden_states: Tensor,  # [B, C, F, H, W]
        timestep: Tensor,  # [B]
        encoder_hidden_states: Tensor,  # [B, L, Dt]
        encoder_attention_mask: Tensor | None = None,  # [B, L] bool
        micro: dict[str, Tensor] | None = None,  # original_size [B, 2], crop [B, 2], stride [B]
        keep_spatial: Tensor | None = None,  # [B, S'] long: MaskDiT's kept spatial tokens
        keep_temporal: Tensor | None = None,  # [B, T'] long: kept temporal tokens
        image_latents: Tensor | None = None,  # [B, C, K, H, W]: condition frames (image_cross_attention)
        image_mask: Tensor | None = None,  # [B] bool: False where the image condition is dropped
    ) -> Tensor:
        b, _, f, hh, ww = hidden_states.shape
        pt, p = self.temporal_patch_size, self.patch_size
        x = self.patch_embed(hidden_states)  # [B, D, T, h, w]
        t, h, w = x.shape[2:]
        x = x.flatten(3).permute(0, 2, 3, 1)  # [B, T, S, D]
        pos = self.positions(t, h, w, x.device)
        if "absolute" in pos:
            x = x + pos["absolute"].to(x.dtype)[None]
        rope_s = rope_t = None
        if "rope_s" in pos:
            rope_s = tuple(r[None].expand(b, -1, -1) for r in pos["rope_s"])  # [B, S, Dh]
            rope_t = tuple(r[None].expand(b, -1, -1) for r in pos["rope_t"])  # [B, T, Dh]
        full_rope = (rope_s, rope_t)
        # Singleton condition [B, D] (pooled text = the last valid token, Sec. 2.1) and the caption
        mask = encoder_attention_mask
        if mask is None:
            mask = torch.ones(encoder_hidden_states.shape[:2], dtype=torch.bool, device=x.device)
        mask = mask.bool()
        last = (mask.long() * torch.arange(mask.shape[1], device=mask.device)).argmax(-1)  # [B]
        pooled = encoder_hidden_states[torch.arange(b, device=x.device), last]  # [B, Dt]
        c = self.singleton(timestep, pooled, micro)  # [B, D]
        text = self.caption_proj(encoder_hidden_states)  # [B, L, D]
        if self.image_cross_attention:
            text, mask = self._with_image_tokens(text, mask, image_latents, image_mask)
        elif image_latents is not None:
            raise ValueError("STIVDiT: image_latents given but image_cross_attention=False")
        # A prompt with no valid token (e.g. an all-padding null prompt) attends to every position.
        attn_mask = (mask | ~mask.any(-1, keepdim=True))[:, None, None]  # [B, 1, 1, L]
        mod = self.adaln(c) if self.adaln is not None else c
        # MaskDiT: the main blocks see only the kept tokens (RoPE keeps their true coordinates)
        x, rope_s, rope_t = self._keep(x, rope_s, rope_t, keep_spatial, keep_temporal)
        for blk in self.blocks:
            x = self._run(blk, x, mod, text, attn_mask, rope_s, rope_t)
        if keep_spatial is not None or keep_temporal is not None:
            x = self._unmask(x, t, h * w, keep_spatial, keep_temporal)
        for blk in self.decoder:
            x = self._run(blk, x, mod, text, attn_mask, *full_rope)
        shift, scale = self.final_adaln(c).chunk(2, dim=-1)
        x = self.proj_out(modulate(stateless_norm(x), shift, scale))  # [B, T, S, pt p p C]
        x = x.reshape(b, t, h, w, pt, p, p, self.out_channels)
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, self.out_channels, f, hh, ww)

    def _with_image_tokens(self, text: Tensor, mask: Tensor, image: Tensor | None, present: Tensor | None):
        """Caption tokens + projected condition-frame tokens [B, L + K S, D] and their mask."""
        if image is None:
            raise ValueError("STIVDiT: image_cross_attention=True needs image_latents [B, C, K, H, W]")
        tok = self.image_embed(image.to(text.dtype))  # [B, D, K, h, w]
        k, h, w = tok.shape[2:]
        tok = tok.flatten(3).permute(0, 2, 3, 1) + self._sincos_spatial(h, w, tok.device).to(tok.dtype)
        tok = self.image_proj(tok.reshape(tok.shape[0], k * h * w, -1))
        valid = torch.ones(tok.shape[:2], dtype=torch.bool, device=tok.device)
        if present is not None:
            valid = valid & present.bool().to(tok.device)[:, None]
        return torch.cat([text, tok], 1), torch.cat([mask, valid], 1)

    def _run(self, blk: STIVBlock, x, mod, text, attn_mask, rope_s, rope_t) -> Tensor:
        rs = None if rope_s is None else tuple(r[:, None, None] for r in rope_s)  # [B, 1, 1, S, Dh]
        rt = None if rope_t is None else tuple(r[:, None, None] for r in rope_t)
        args = (x, mod, text, attn_mask, rs, rt, self.causal_temporal)
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(blk, *args, use_reentrant=False)
        return blk(*args)

    @staticmethod
    def _keep(x: Tensor, rope_s, rope_t, keep_spatial: Tensor | None, keep_temporal: Tensor | None):
        def take(v: Tensor, idx: Tensor, dim: int) -> Tensor:  # gather idx [B, K] along dim of v [B, ...]
            shape, size = [idx.shape[0]] + [1] * (v.ndim - 1), list(v.shape)
            shape[dim] = size[dim] = idx.shape[1]
            return torch.gather(v, dim, idx.reshape(shape).expand(size))

        if keep_spatial is not None:
            x = take(x, keep_spatial, 2)
            rope_s = None if rope_s is None else tuple(take(r, keep_spatial, 1) for r in rope_s)
        if keep_temporal is not None:
            x = take(x, keep_temporal, 1)
            rope_t = None if rope_t is None else tuple(take(r, keep_temporal, 1) for r in rope_t)
        return x, rope_s, rope_t

    def _unmask(self, x: Tensor, t: int, s: int, keep_spatial: Tensor | None, keep_temporal: Tensor | None):
        """Scatter the kept tokens [B, T', S', D] into a [B, T, S, D] grid of learned mask tokens."""
        b, d = x.shape[0], x.shape[-1]
        if self.mask_token is None:
            raise ValueError(
                "STIVDiT: MaskDiT token masking needs decoder_blocks >= 1 (the unmasking blocks)"
            )
        full = self.mask_token.to(x.dtype).expand(b, t, s, d)
        ts = torch.arange(t, device=x.device)[None].expand(b, -1) if keep_temporal is None else keep_temporal
        ss = torch.arange(s, device=x.device)[None].expand(b, -1) if keep_spatial is None else keep_spatial
        flat = (ts[:, :, None] * s + ss[:, None, :]).flatten(1)  # [B, T' S'] indices into T S
        out = full.reshape(b, t * s, d).scatter(1, flat[..., None].expand(-1, -1, d), x.reshape(b, -1, d))
        return out.reshape(b, t, s, d)


class STIVBackbone(Backbone):
    """Adapter: ``backbone(latents, timesteps, text_embeds, text_mask, micro=None, keep_spatial=None, ...)``.

    Without ``micro`` (profiling, sampling without data) the condition is the uncropped clip at its
    own pixel size with sampling stride ``DEFAULT_STRIDE`` (Sec. E: one frame of every three).
    """

    DEFAULT_STRIDE = 3

    def default_micro(self, latents: Tensor) -> dict[str, Tensor]:
        b, _, _, h, w = latents.shape
        _, sh, sw = self.spec.vae_scale
        size = torch.tensor([h * sh, w * sw], device=latents.device, dtype=torch.float32)
        return {
            "original_size": size.expand(b, 2),
            "crop": torch.zeros(b, 2, device=latents.device),
            "stride": torch.full((b,), float(self.DEFAULT_STRIDE), device=latents.device),
        }

    def forward(
        self,
        latents,
        timesteps,
        text_embeds,
        text_mask=None,
        image_latents=None,
        micro=None,
        keep_spatial=None,
        keep_temporal=None,
        image_mask=None,
    ):
        if not getattr(self.model, "image_cross_attention", False):
            self._check_no_image(image_latents)
        return self.model(
            latents,
            timesteps,
            text_embeds,
            encoder_attention_mask=text_mask,
            micro=micro if micro is not None else self.default_micro(latents),
            keep_spatial=keep_spatial,
            keep_temporal=keep_temporal,
            image_latents=image_latents,
            image_mask=image_mask,
        )


# Table 1: blocks / hidden / heads (head dim 64). Final recipe of Table 2 + Table 3's base model.
STIV_XL = dict(
    in_channels=4,  # sd-vae-ft-ema (the paper's final 8-channel VAE is internal: in_channels=8 by config)
    patch_size=2,
    temporal_patch_size=2,
    hidden_size=1152,
    num_layers=28,
    num_heads=18,
    mlp_ratio=4.0,
    text_dim=768,  # OpenAI CLIP-L/14 (the internal CLIP-bigG, 1280-d, is not public)
    temporal_attention=True,
    causal_temporal=False,
    qk_norm=True,
    sandwich_norm=True,
    cond_norm=True,
    shared_adaln=True,
    pooled_text=True,
    micro_conditions=True,
    pos_embed="rope",
    decoder_blocks=2,
)
STIV_XXL = dict(STIV_XL, hidden_size=1536, num_layers=38, num_heads=24)
STIV_M = dict(STIV_XL, hidden_size=3072, num_layers=46, num_heads=48)
# Tiny twin: same switches, 2 + 2 blocks of width 32 (2 heads x 16), text 32-d.
TINY = dict(STIV_XL, hidden_size=32, num_layers=2, num_heads=2, text_dim=32)
# The T2I model (Sec. E): no temporal attention, temporal patch 1; its weights initialise the T2V one.
VARIANTS = {"t2i": dict(temporal_attention=False, temporal_patch_size=1), "t2v": {}}

# Flow-matching sampler: the paper integrates "from timestep 0 to 1" without naming the solver or
# the number of steps; we use diffusers' Euler flow scheduler with no shift.
SCHEDULER = dict(num_train_timesteps=1000, shift=1.0)

_COMMON = dict(
    family="stiv",
    model_cls=STIVDiT,
    adapter_cls=STIVBackbone,
    tiny_config=TINY,
    latent_channels=4,
    patch_size=(2, 2, 2),
    vae_scale=(1, 8, 8),  # per-frame image VAE
    text_encoder="clip-vit-large-patch14",
    text_encoder_cls="CLIPTextModel",
    text_dim=768,
    text_len=77,
    vae_cls="AutoencoderKL",
    objective="flow",
    scheduler_cls="FlowMatchEulerDiscreteScheduler",
    scheduler_config=SCHEDULER,
    weights_subfolder="transformer",
    image_condition=False,
    default_frames=20,  # A.1: 256^2, 20 frames
    default_height=256,
    default_width=256,
    tiny_frames=4,
    tiny_height=64,
    tiny_width=64,
    tiny_text_dim=32,
    tiny_text_len=16,
    input_proj="patch_embed",
    output_proj="proj_out",
    config_variants=VARIANTS,
)

register_backbone(BackboneSpec(name="stiv-xl", real_config=STIV_XL, **_COMMON))
register_backbone(BackboneSpec(name="stiv-xxl", real_config=STIV_XXL, **_COMMON))
register_backbone(BackboneSpec(name="stiv-m", real_config=STIV_M, **_COMMON))
