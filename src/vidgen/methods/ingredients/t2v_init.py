"""Table 2 "T2V init": the I2V architecture initialised from CogVideoX-5B (T2V) weights.

The paper changes only the initial weights ("architecture, learning parameters and steps
unchanged"), so the I2V DiT (32 input channels: noise ++ image latent) takes every T2V weight of
the same shape; the input patch embedding's 16 image channels start at zero (the image latent adds
nothing at step 0, the T2V model's output), and buffers the T2V model lacks (the I2V learned
positional embedding) keep their sin-cos initial value.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidgen.backbones import build_backbone
from vidgen.errors import ConfigError

T2V = "cogvideox-5b"
PATCH = "patch_embed.proj.weight"


def init_from_t2v(
    i2v: nn.Module, size: str, weights: str | None, tiny_config: dict | None = None
) -> list[str]:
    """Copy the T2V weights (``weights``: a CogVideoX-5B folder; tiny: a random tiny T2V twin, sized by
    ``backbone.tiny_config`` as the I2V twin is) into the I2V diffusers model ``i2v``; returns the
    I2V keys left as initialised."""
    if size == "real" and not weights:
        raise ConfigError(
            "method.init.dit=t2v needs method.init.t2v_weights=FOLDER (a CogVideoX-5B diffusers folder or its "
            "transformer/); or method.init.dit=i2v"
        )
    source = build_backbone(
        T2V, size=size, weights=weights if size == "real" else None, tiny_config=tiny_config or None
    ).model.state_dict()
    return copy_t2v_weights(i2v.state_dict(), source)


def copy_t2v_weights(target: dict[str, Tensor], source: dict[str, Tensor]) -> list[str]:
    """Copy a T2V state dict into the I2V tensors of ``target`` in place (a module's ``state_dict()``
    shares their storage); the patch embedding's image-latent channels are zeroed. Returns the
    ``target`` keys the T2V model lacks (left as they are)."""
    kept = []
    with torch.no_grad():
        for key, value in target.items():
            src = source.get(key)
            if src is None:
                kept.append(key)
            elif key == PATCH and src.shape[1] * 2 == value.shape[1]:
                value.zero_()[:, : src.shape[1]].copy_(src)  # image-latent channels start at 0
            elif src.shape == value.shape:
                value.copy_(src)
            else:
                raise ConfigError(
                    f"method.init.dit=t2v: T2V weight {key!r} {tuple(src.shape)} does not fit {tuple(value.shape)}"
                )
    return kept
