"""Parameter and FLOP counting on the meta device (no memory, no weights needed)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from vidgen.backbones.registry import Backbone, BackboneSpec, get_backbone, list_backbones


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# CPU's fused SDPA kernel is not in torch's FLOP registry (CUDA's and meta's math path are).
_CUSTOM = {}
if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _CUSTOM[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flop


def meta_model(spec: str | BackboneSpec, size: str = "real", variant: str | None = None) -> nn.Module:
    """Instantiate the ``size`` config of ``spec`` on the meta device (seconds even for 14B)."""
    spec = get_backbone(spec)
    config = spec.config_for(size, variant)
    with torch.device("meta"):
        return spec.model_cls(**config)


def count_parameters(spec: str | BackboneSpec, size: str = "real", variant: str | None = None) -> int:
    """Number of parameters of the ``size`` model (== the Backbone's: the wrapper adds none)."""
    return sum(p.numel() for p in meta_model(spec, size, variant).parameters())


def forward_flops(module: nn.Module, inputs: dict) -> int:
    """FLOPs of ``module(**inputs)`` (no grad) counted by ``torch.utils.flop_counter``.

    A multiply-add counts 2 FLOPs; attention through SDPA is counted (math path on meta).
    """
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_CUSTOM) as counter:
        module(**inputs)
    return int(counter.get_total_flops())


def meta_inputs(spec: BackboneSpec, size: str, frames: int, height: int, width: int, batch: int = 1) -> dict:
    """Meta tensors for a ``batch``-clip forward at pixel resolution ``frames x height x width``."""
    c, f, h, w = spec.latent_shape(frames, height, width)
    dev = torch.device("meta")
    inputs = dict(
        latents=torch.empty(batch, c, f, h, w, device=dev),
        timesteps=torch.empty(batch, dtype=torch.long, device=dev),
        text_embeds=torch.empty(batch, spec.text_len_for(size), spec.text_dim_for(size), device=dev),
        text_mask=torch.ones(batch, spec.text_len_for(size), dtype=torch.bool, device=dev),
    )
    if spec.image_condition:
        inputs["image_latents"] = torch.empty(batch, c, 1, h, w, device=dev)
    return inputs


def backbone_forward_flops(
    spec: str | BackboneSpec,
    size: str = "real",
    frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
) -> int:
    """Batch-1 forward FLOPs at a pixel resolution (default: the spec's resolution for ``size``)."""
    spec = get_backbone(spec)
    df, dh, dw = spec.resolution_for(size)
    backbone: Backbone = spec.adapter_cls(meta_model(spec, size), spec, size)
    inputs = meta_inputs(spec, size, frames or df, height or dh, width or dw)
    return forward_flops(backbone, inputs)


def _variant_counts(spec: BackboneSpec) -> dict[str, int]:
    """Real-size parameters of each config variant (an empty override is the default model)."""
    default = None
    counts = {}
    for name, overrides in spec.config_variants.items():
        if not overrides:
            default = default if default is not None else count_parameters(spec, "real")
            counts[name] = default
        else:
            counts[name] = count_parameters(spec, "real", name)
    return counts


def backbone_table() -> list[dict]:
    """One row per registered backbone for ``vidgen backbones --json`` (parameters at real size)."""
    rows = []
    for spec in list_backbones():
        rows.append(
            dict(
                name=spec.name,
                family=spec.family,
                params=count_parameters(spec, "real"),
                latent_channels=spec.latent_channels,
                objective=spec.objective,
                patch_size=list(spec.patch_size),
                text_encoder=spec.text_encoder,
                vae=spec.vae_cls,
                default_resolution=[spec.default_frames, spec.default_height, spec.default_width],
                params_by_variant=_variant_counts(spec),
            )
        )
    return rows
