"""Backbone registry: one ``BackboneSpec`` per published video denoiser, and ``build_backbone``.

Nothing here assumes diffusers except the loading path, which uses ``model_cls.from_pretrained``
when the class has it and otherwise reads ``config.json`` + ``*.safetensors`` from the folder, so
native ``nn.Module`` families (constructor takes config kwargs) register the same way.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidgen.errors import ConfigError

SIZES = ("tiny", "real")
INITS = ("pretrained", "random")


@dataclass(frozen=True)
class BackboneSpec:
    """Everything vidgen needs to know about one backbone (see docs/architecture.md)."""

    name: str
    family: str
    model_cls: type[nn.Module]
    adapter_cls: type[Backbone]
    real_config: dict = field(hash=False)
    tiny_config: dict = field(hash=False)
    latent_channels: int
    patch_size: tuple[int, int, int]
    vae_scale: tuple[int, int, int]
    text_encoder: str
    text_encoder_cls: str
    text_dim: int
    text_len: int
    vae_cls: str
    objective: str
    scheduler_cls: str
    scheduler_config: dict = field(hash=False)
    weights_subfolder: str = "transformer"
    image_condition: bool = False
    default_frames: int = 49
    default_height: int = 480
    default_width: int = 720
    tiny_frames: int = 9
    tiny_height: int = 64
    tiny_width: int = 64
    tiny_text_dim: int = 32
    tiny_text_len: int = 16
    # Channel inflation (JDM, vidgen.methods.jdm.inflation): attribute paths inside ``backbone.model``
    # of the input patchify (Conv*d / Linear reading the latent channels) and of the output projection
    # (Conv*d / Linear writing them); ``proj_channels_last``: a Linear projection's features are laid
    # out (patch..., channel) with the channel fastest (Wan's unpatchify), else (channel, patch...).
    input_proj: str | None = None
    output_proj: str | None = None
    proj_channels_last: bool = False
    # Named overrides of the real/tiny config (e.g. STIV's "t2i": no temporal attention); counted by
    # `vidgen backbones` and selected with ``config_for(size, variant)``.
    config_variants: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.objective not in ("v", "eps", "flow"):
            raise ValueError(
                f"BackboneSpec {self.name!r}: objective must be v|eps|flow, got {self.objective!r}"
            )

    @staticmethod
    def _check_size(size: str) -> None:
        if size not in SIZES:
            raise ConfigError(f"backbone.size={size!r} is not valid; use one of {', '.join(SIZES)}")

    def text_dim_for(self, size: str) -> int:
        self._check_size(size)
        return self.text_dim if size == "real" else self.tiny_text_dim

    def text_len_for(self, size: str) -> int:
        self._check_size(size)
        return self.text_len if size == "real" else self.tiny_text_len

    def config_for(self, size: str, variant: str | None = None) -> dict:
        """A deep copy of the constructor kwargs for ``size`` (with a ``config_variants`` entry applied)."""
        self._check_size(size)
        config = copy.deepcopy(self.real_config if size == "real" else self.tiny_config)
        if variant is not None:
            if variant not in self.config_variants:
                valid = ", ".join(self.config_variants) or "none"
                raise ConfigError(f"backbone {self.name!r} has no config variant {variant!r}; valid: {valid}")
            config.update(copy.deepcopy(self.config_variants[variant]))
        return config

    def resolution_for(self, size: str) -> tuple[int, int, int]:
        """Pixel (frames, height, width): the profile default for real, the tiny run size for tiny."""
        self._check_size(size)
        if size == "real":
            return (self.default_frames, self.default_height, self.default_width)
        return (self.tiny_frames, self.tiny_height, self.tiny_width)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, F', H', W') of the VAE latents of a ``frames x height x width`` pixel clip.

        Causal video VAEs (CogVideoX, Wan) keep the first frame: F' = (F - 1) // t + 1;
        a per-frame image VAE (ModelScope, t = 1) keeps F' = F.
        """
        st, sh, sw = self.vae_scale
        f = frames if st == 1 else (frames - 1) // st + 1
        return (self.latent_channels, f, height // sh, width // sw)


class Backbone(nn.Module):
    """Family-independent wrapper: ``backbone(latents, timesteps, text_embeds, text_mask, image_latents)``.

    ``self.model`` is the wrapped diffusers/native model (methods reach blocks through it); the
    wrapper adds no parameters. Latents are ``[B, C, F, H, W]``; subclasses convert layouts.
    """

    def __init__(self, model: nn.Module, spec: BackboneSpec, size: str = "tiny") -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        self.size = size

    def _config_value(self, key: str, default: Any = None) -> Any:
        cfg = getattr(self.model, "config", None)
        if cfg is not None:
            value = cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)
            if value is not None:
                return value
        return getattr(self.model, key, default)

    @property
    def in_channels(self) -> int:
        return int(self._config_value("in_channels"))

    @property
    def out_channels(self) -> int:
        out = self._config_value("out_channels")
        return int(out) if out is not None else self.in_channels

    def forward(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        image_latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def _check_no_image(self, image_latents: torch.Tensor | None) -> None:
        if image_latents is not None:
            raise ValueError(
                f"backbone {self.spec.name!r} is not image-conditioned; image_latents must be None"
            )


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` to the registry (re-registering the same name replaces it)."""
    if not isinstance(spec, BackboneSpec):
        raise TypeError(f"register_backbone expects a BackboneSpec, got {type(spec).__name__}")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones() -> list[BackboneSpec]:
    return list(_REGISTRY.values())


def get_backbone(name: str | BackboneSpec) -> BackboneSpec:
    if isinstance(name, BackboneSpec):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"backbone.name={name!r} is not a known backbone; valid names: {valid}") from None


def _instantiate(spec: BackboneSpec, config: dict) -> nn.Module:
    return spec.model_cls(**config)


def _instantiate_sized(spec: BackboneSpec, size: str, tiny_config: dict) -> nn.Module:
    config = {**spec.config_for(size), **tiny_config}
    try:
        return _instantiate(spec, config)
    except TypeError as err:  # an unknown constructor argument
        raise ConfigError(
            f"backbone.tiny_config={tiny_config}: {spec.model_cls.__name__} rejects it ({err}); "
            f"use its constructor arguments, e.g. {', '.join(sorted(spec.tiny_config)[:4])}"
        ) from None


def _resolve_weights(spec: BackboneSpec, weights: str | Path) -> tuple[Path, str | None]:
    """Return (folder, subfolder) for ``from_pretrained``; raise ConfigError on a bad layout."""
    path = Path(weights).expanduser()
    sub = spec.weights_subfolder
    layout = (
        f"a diffusers pipeline folder (model_index.json and {sub}/config.json + weights) "
        f"or the {sub}/ folder itself (config.json + *.safetensors)"
    )
    if not path.exists():
        raise ConfigError(f"backbone.weights={str(path)!r} does not exist; expected {layout}")
    if not path.is_dir():
        raise ConfigError(f"backbone.weights={str(path)!r} is not a folder; expected {layout}")
    if (path / "config.json").is_file():
        return path, None
    if (path / sub / "config.json").is_file():
        return path, sub
    if (path / "model_index.json").is_file() or (path / sub).is_dir():
        raise ConfigError(
            f"backbone.weights={str(path)!r} looks like a pipeline folder but has no {sub}/config.json; "
            f"expected {layout}"
        )
    raise ConfigError(
        f"backbone.weights={str(path)!r} has neither model_index.json, {sub}/ nor config.json; "
        f"expected {layout}"
    )


def _load_native(spec: BackboneSpec, folder: Path, dtype: torch.dtype | None) -> nn.Module:
    """Load a model without ``from_pretrained``: ``config.json`` kwargs + all ``*.safetensors``."""
    from safetensors.torch import load_file

    config = {
        k: v for k, v in json.loads((folder / "config.json").read_text()).items() if not k.startswith("_")
    }
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"backbone.weights={str(folder)!r} has config.json but no *.safetensors weights")
    model = _instantiate(spec, config)
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    model.load_state_dict(state, strict=True)
    if dtype is not None:
        _cast(model, dtype)
    return model


def load_model(spec: BackboneSpec, weights: str | Path, dtype: torch.dtype | None = None) -> nn.Module:
    folder, subfolder = _resolve_weights(spec, weights)
    if hasattr(spec.model_cls, "from_pretrained"):
        kwargs: dict[str, Any] = {}
        if subfolder is not None:
            kwargs["subfolder"] = subfolder
        if dtype is not None:
            kwargs["torch_dtype"] = dtype
        return spec.model_cls.from_pretrained(str(folder), **kwargs)
    return _load_native(spec, folder / subfolder if subfolder else folder, dtype)


def _cast(model: nn.Module, dtype: torch.dtype) -> None:
    """Cast floating parameters/buffers to ``dtype`` in place, keeping the modules a diffusers model
    lists in ``_keep_in_fp32_modules`` in float32 (as ``from_pretrained(torch_dtype=...)`` does)."""
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    for name, tensor in tensors:
        if tensor.is_floating_point():
            target = torch.float32 if keep & set(name.split(".")) else dtype
            tensor.data = tensor.data.to(target)


def _enable_checkpointing(model: nn.Module, spec: BackboneSpec) -> None:
    if hasattr(model, "enable_gradient_checkpointing"):
        model.enable_gradient_checkpointing()
    elif hasattr(model, "gradient_checkpointing"):
        model.gradient_checkpointing = True
    else:
        raise ConfigError(
            f"backbone.gradient_checkpointing=true is not supported by {spec.name!r} "
            f"({spec.model_cls.__name__}); set backbone.gradient_checkpointing=false"
        )


def build_backbone(
    spec_or_name: str | BackboneSpec,
    size: str = "tiny",
    weights: str | Path | None = None,
    init: str = "pretrained",
    gradient_checkpointing: bool = False,
    dtype: torch.dtype | None = None,
    tiny_config: dict | None = None,
) -> Backbone:
    """Build the wrapped model of a registered backbone.

    ``weights`` (a diffusers pipeline folder or its ``transformer/``/``unet/`` subfolder) must hold
    this backbone's model class at ``size`` (its config.json is checked before loading); without
    weights the ``size`` config is instantiated with random init. A real-size model without weights must be asked for explicitly.
    The result is in eval mode (like ``from_pretrained``); Lightning switches it to train mode.
    ``tiny_config``: constructor kwargs merged over the registry's tiny config (``size="tiny"``
    only), e.g. a wider tiny model for the demo; the structural flags stay the family's. With
    ``weights`` it is the shape those weights must have (checked before loading).
    """
    spec = get_backbone(spec_or_name)
    spec._check_size(size)
    if tiny_config and size != "tiny":  # with weights too: it would be ignored silently
        raise ConfigError(
            f"backbone.tiny_config={tiny_config} applies to backbone.size=tiny only (got size={size!r}); drop it"
        )
    if init not in INITS:
        raise ConfigError(f"backbone.init={init!r} is not valid; use one of {', '.join(INITS)}")
    if weights is not None and init == "random":
        raise ConfigError(
            f"backbone.init=random conflicts with backbone.weights={str(weights)!r}; "
            "drop backbone.weights for a random model or set backbone.init=pretrained"
        )
    if weights is not None:
        from vidgen.backbones.weights_check import check_weights_config

        folder, sub = _resolve_weights(spec, weights)
        check_weights_config(spec, folder / sub if sub else folder, str(weights), size, tiny_config)  # before loading
        model = load_model(spec, weights, dtype)
    else:
        if size == "real" and init != "random":
            raise ConfigError(
                f"backbone {spec.name!r} at backbone.size=real needs pretrained weights: pass "
                f"backbone.weights=/path/to/<diffusers folder> (a pipeline folder with "
                f"{spec.weights_subfolder}/, or the {spec.weights_subfolder}/ folder itself), "
                "or backbone.init=random for an untrained real-size model, or backbone.size=tiny"
            )
        model = _instantiate_sized(spec, size, dict(tiny_config or {}))
        if dtype is not None:
            _cast(model, dtype)
    if gradient_checkpointing:
        _enable_checkpointing(model, spec)
    backbone = spec.adapter_cls(model, spec, size)
    return backbone.eval()
