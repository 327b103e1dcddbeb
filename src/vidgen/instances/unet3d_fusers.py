"""Grounding fusers in a 3D U-Net (ModelScope-T2V), shared by GLIGEN and InstanceDiffusion.

Grounding is per frame: every *spatial* ``BasicTransformerBlock`` gets a diffusers ``fuser`` (which its
forward runs when ``cross_attention_kwargs["gligen"]`` is given), and the temporal transformers, which
attend over time, have the ``gligen`` kwargs stripped before they run.
"""

from __future__ import annotations

from collections.abc import Callable

from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from torch import nn


def strip_grounding(module, args, kwargs):
    """Pre-hook of ModelScope's temporal transformers: grounding is per frame, not over time."""
    cak = kwargs.get("cross_attention_kwargs")
    if cak and "gligen" in cak:
        kwargs = {**kwargs, "cross_attention_kwargs": {k: v for k, v in cak.items() if k != "gligen"}}
    return args, kwargs


def attach_spatial_fusers(unet: nn.Module, make_fuser: Callable[[BasicTransformerBlock], nn.Module]) -> None:
    """``block.fuser = make_fuser(block)`` for every spatial transformer block of ``unet``; temporal
    transformers get the ``strip_grounding`` pre-hook."""
    temporal = {id(b) for m in unet.modules() if isinstance(m, TransformerTemporalModel) for b in m.modules()}
    for m in unet.modules():
        if isinstance(m, TransformerTemporalModel):
            m.register_forward_pre_hook(strip_grounding, with_kwargs=True)
        elif isinstance(m, BasicTransformerBlock) and id(m) not in temporal:
            m.fuser = make_fuser(m)
