"""Backbone registry (see docs/architecture.md): one spec per published video denoiser."""

from vidgen.backbones import cogvideox, modelscope, sd15, stiv_dit, wan  # noqa: F401  (register the families)
from vidgen.backbones.profiling import backbone_forward_flops, backbone_table, count_parameters, forward_flops
from vidgen.backbones.registry import (
    Backbone,
    BackboneSpec,
    build_backbone,
    get_backbone,
    list_backbones,
    register_backbone,
)

__all__ = [
    "Backbone",
    "BackboneSpec",
    "backbone_forward_flops",
    "backbone_table",
    "build_backbone",
    "count_parameters",
    "forward_flops",
    "get_backbone",
    "list_backbones",
    "register_backbone",
]
