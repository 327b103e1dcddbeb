"""Channel inflation (JDM Sec. 3.3, A.7), written once for every registry backbone.

JDM concatenates the regional-signal latent (mask / HED / depth) to the video latent on the
channel axis, so the denoiser reads and writes 2C channels instead of C: CogVideoX 16 -> 32
(``patch_embed.proj`` and ``proj_out``), ModelScope 4 -> 8 (``conv_in`` and ``conv_out``), Wan
16 -> 32 (``patch_embedding`` and ``proj_out``). Only these two layers grow; the transformer /
UNet body keeps its width.

Which layers to grow comes from the backbone's ``BackboneSpec`` (``input_proj``, ``output_proj``,
``proj_channels_last``), so a new family needs three fields, not new code. Supported layers:

- input: ``nn.Conv1d/2d/3d`` (the weight's dim 1 are the input channels) or ``nn.Linear`` over a
  flattened (channel, patch...) or (patch..., channel) patch;
- output: ``nn.Conv*d`` (dim 0 = output channels) or ``nn.Linear`` whose features are
  (channel, patch...) (CogVideoX's unpatchify ``reshape(..., -1, p, p)``) or (patch..., channel)
  (Wan's ``reshape(..., p_t, p_h, p_w, -1)``, ``proj_channels_last=True``).

Layout of the inflated latent: ``[video C | signal C]``. The new input channels are inserted right
after the first C input channels, so an image-conditioned backbone (CogVideoX-5B-I2V: its adapter
appends the image latent, ``in_channels`` 32 = video 16 + image 16) becomes ``[video | signal |
image]`` = 48 and keeps its pretrained image weights. The new output channels are appended.

Every new weight (and output bias) is zero, so at step 0 the video half of the inflated model's
prediction equals the pretrained model's prediction exactly (whatever the signal channels hold)
and the signal half is zero. The diffusers config (``in_channels``, ``out_channels``) is updated
with ``register_to_config`` so ``save_pretrained`` / ``from_pretrained`` round-trip the inflated
model, and ``inflate`` is idempotent: a model that already has the inflated channel counts (e.g.
loaded from a saved JDM folder) is returned unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidgen.backbones.registry import Backbone, BackboneSpec
from vidgen.errors import ConfigError

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _check_spec(spec: BackboneSpec) -> None:
    if not spec.input_proj or not spec.output_proj:
        raise ConfigError(
            f"backbone {spec.name!r} does not declare its input/output projections "
            "(BackboneSpec.input_proj / output_proj), so JDM cannot inflate its channels; "
            "set them in the family file (vidgen/backbones/<family>.py)"
        )


def _grow(weight: Tensor, dim: int, channels: int, added: int, insert_at: int, channels_last: bool) -> Tensor:
    """Insert ``added`` zero channels at channel index ``insert_at`` along ``dim`` of ``weight``.

    ``weight.shape[dim]`` is ``channels * patch``; the channel is the slow factor unless
    ``channels_last``. Works on any device, the meta device included.
    """
    size = weight.shape[dim]
    if size % channels:
        raise ConfigError(
            f"cannot inflate: dimension {dim} of size {size} is not a multiple of {channels} channels"
        )
    patch = size // channels
    w = weight.movedim(dim, 0)
    rest = w.shape[1:]
    grid = w.reshape(patch, channels, *rest) if channels_last else w.reshape(channels, patch, *rest)
    cdim = 1 if channels_last else 0
    zeros_shape = list(grid.shape)
    zeros_shape[cdim] = added
    zeros = grid.new_zeros(zeros_shape)
    head, tail = grid.narrow(cdim, 0, insert_at), grid.narrow(cdim, insert_at, channels - insert_at)
    grown = torch.cat([head, zeros, tail], dim=cdim)
    return grown.reshape((channels + added) * patch, *rest).movedim(0, dim).contiguous()


def _replace(module: nn.Module, name: str, value: Tensor | None) -> None:
    old = getattr(module, name)
    if old is None or value is None:
        return
    setattr(module, name, nn.Parameter(value, requires_grad=old.requires_grad))


def inflate_input(
    layer: nn.Module, channels: int, added: int, insert_at: int, channels_last: bool = False
) -> None:
    """Grow the input channels of ``layer`` from ``channels`` to ``channels + added`` (zero weights)."""
    if isinstance(layer, _CONV):
        if layer.groups != 1:
            raise ConfigError(f"cannot inflate a grouped convolution ({layer})")
        _replace(layer, "weight", _grow(layer.weight.data, 1, channels, added, insert_at, False))
        layer.in_channels = channels + added
    elif isinstance(layer, nn.Linear):
        _replace(layer, "weight", _grow(layer.weight.data, 1, channels, added, insert_at, channels_last))
        layer.in_features = layer.weight.shape[1]
    else:
        raise ConfigError(f"cannot inflate the input projection {type(layer).__name__}: use Conv*d or Linear")


def inflate_output(layer: nn.Module, channels: int, added: int, channels_last: bool = False) -> None:
    """Grow the output channels of ``layer`` from ``channels`` to ``channels + added`` (zero weights, bias)."""
    if isinstance(layer, _CONV):
        _replace(layer, "weight", _grow(layer.weight.data, 0, channels, added, channels, False))
        if layer.bias is not None:
            _replace(layer, "bias", _grow(layer.bias.data, 0, channels, added, channels, False))
        layer.out_channels = channels + added
    elif isinstance(layer, nn.Linear):
        _replace(layer, "weight", _grow(layer.weight.data, 0, channels, added, channels, channels_last))
        if layer.bias is not None:
            _replace(layer, "bias", _grow(layer.bias.data, 0, channels, added, channels, channels_last))
        layer.out_features = layer.weight.shape[0]
    else:
        raise ConfigError(
            f"cannot inflate the output projection {type(layer).__name__}: use Conv*d or Linear"
        )


def _set_config(model: nn.Module, **values: int) -> None:
    if hasattr(model, "register_to_config"):  # diffusers ConfigMixin: save_pretrained writes these
        model.register_to_config(**values)
    else:
        cfg = getattr(model, "config", None)
        for key, value in values.items():
            if isinstance(cfg, dict):
                cfg[key] = value
            elif cfg is not None and hasattr(cfg, key):
                setattr(cfg, key, value)
            else:
                setattr(model, key, value)


def base_channels(spec: BackboneSpec, backbone: Backbone) -> tuple[int, int]:
    """(in, out) channels of the un-inflated model of this spec (the size's registry config)."""
    cfg = spec.config_for(backbone.size)
    c_in = int(cfg.get("in_channels", spec.latent_channels))
    c_out = cfg.get("out_channels") or c_in
    return c_in, int(c_out)


def is_inflated(backbone: Backbone, signal_channels: int | None = None) -> bool:
    spec = backbone.spec
    c = spec.latent_channels if signal_channels is None else signal_channels
    c_in, c_out = base_channels(spec, backbone)
    return backbone.in_channels == c_in + c and backbone.out_channels == c_out + c


def inflate(backbone: Backbone, signal_channels: int | None = None) -> Backbone:
    """Inflate ``backbone`` in place for a ``signal_channels``-channel latent beside the video
    (default: as many as the video latent, JDM's choice) and return it. Idempotent."""
    spec = backbone.spec
    _check_spec(spec)
    c = spec.latent_channels
    added = c if signal_channels is None else int(signal_channels)
    c_in, c_out = base_channels(spec, backbone)
    have_in, have_out = backbone.in_channels, backbone.out_channels
    if (have_in, have_out) == (c_in + added, c_out + added):
        return backbone  # already inflated (e.g. loaded from a saved JDM model)
    if (have_in, have_out) != (c_in, c_out):
        raise ConfigError(
            f"backbone {spec.name!r} has {have_in} input / {have_out} output channels; JDM expects the "
            f"pretrained {c_in}/{c_out} (to inflate) or the inflated {c_in + added}/{c_out + added}"
        )
    model = backbone.model
    inflate_input(
        model.get_submodule(spec.input_proj), c_in, added, insert_at=c, channels_last=spec.proj_channels_last
    )
    inflate_output(model.get_submodule(spec.output_proj), c_out, added, channels_last=spec.proj_channels_last)
    _set_config(model, in_channels=c_in + added, out_channels=c_out + added)
    return backbone


def added_parameters(spec: BackboneSpec, backbone: Backbone, signal_channels: int | None = None) -> int:
    """How many parameters ``inflate`` adds (weights and output bias of the new channels)."""
    added = spec.latent_channels if signal_channels is None else int(signal_channels)
    c_in, c_out = base_channels(spec, backbone)
    inp = backbone.model.get_submodule(spec.input_proj)
    out = backbone.model.get_submodule(spec.output_proj)
    n = inp.weight.numel() // c_in * added
    n += out.weight.numel() // c_out * added
    if getattr(out, "bias", None) is not None:
        n += out.bias.numel() // c_out * added
    return n
