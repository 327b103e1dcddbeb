"""Guidance: how the sampler turns backbone calls into one model output per step.

A guidance object is called as ``guidance(denoise, x, t, cond, uncond)`` where
``denoise(x, t, **kwargs)`` is the backbone call (e.g. ``Backbone.forward``), ``x`` is
``[B, C, F, H, W]``, ``t`` is ``[B]`` and ``cond`` / ``uncond`` are kwargs dicts such as
``{"text_embeds": ..., "text_mask": ..., "image_latents": ...}``.

Methods add their own guidance (InstanceV SAUG, STIV JIT-CFG) with :func:`register_guidance`
and build any of them by name with :func:`make_guidance`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

from vidgen.errors import ConfigError

Denoise = Callable[..., torch.Tensor]


@runtime_checkable
class Guidance(Protocol):
    def __call__(
        self,
        denoise: Denoise,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: dict[str, Any],
        uncond: dict[str, Any] | None,
    ) -> torch.Tensor: ...


class NoGuidance:
    """Plain conditional prediction: ``denoise(x, t, **cond)``; ``uncond`` is ignored."""

    def __call__(self, denoise, x, t, cond, uncond=None):
        return denoise(x, t, **cond)

    def __repr__(self) -> str:
        return "NoGuidance()"


def _expand_batch(value: torch.Tensor, batch: int, key: str) -> torch.Tensor:
    if value.ndim == 0:
        return value.expand(batch)
    if value.shape[0] == batch:
        return value
    if value.shape[0] == 1:
        return value.expand(batch, *value.shape[1:])
    raise ValueError(f"guidance: {key!r} has batch size {value.shape[0]}, expected {batch} (or 1)")


def concat_kwargs(first: dict[str, Any], second: dict[str, Any], batch: int) -> dict[str, Any]:
    """Concatenate two kwargs dicts along the batch dim (``first`` rows, then ``second``).

    Tensors with batch size 1 are broadcast to ``batch`` first (e.g. one shared negative-prompt
    embedding).  Non-tensor values (``None``, flags) must be equal in both dicts and are passed
    through.  Keys must match.
    """
    if set(first) != set(second):
        raise ValueError(
            f"guidance: cond and uncond must have the same keys, got {sorted(first)} and {sorted(second)}"
        )
    out: dict[str, Any] = {}
    for key, a in first.items():
        b = second[key]
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            a, b = _expand_batch(a, batch, key), _expand_batch(b, batch, key)
            if a.shape[1:] != b.shape[1:]:
                raise ValueError(
                    f"guidance: {key!r} has shape {tuple(a.shape)} in cond but {tuple(b.shape)} in uncond; "
                    "pad both to the same length (e.g. the backbone's text_len)"
                )
            out[key] = torch.cat([a, b.to(a.dtype)], dim=0)
        elif isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            raise ValueError(f"guidance: {key!r} is a tensor in one of cond/uncond and not in the other")
        else:
            if a != b:
                raise ValueError(f"guidance: non-tensor {key!r} differs between cond and uncond")
            out[key] = a
    return out


class CFG:
    """Classifier-free guidance (Ho & Salimans 2022): ``uncond + scale * (cond - uncond)``.

    Both branches run in ONE forward of doubled batch: ``x``, ``t`` and every tensor of
    ``uncond``/``cond`` are concatenated as ``[uncond; cond]`` along the batch dim.
    ``scale == 1`` skips the unconditional branch.  Works unchanged for eps, v and flow
    predictions (the combination is linear).
    """

    def __init__(self, scale: float = 6.0) -> None:
        self.scale = float(scale)

    def __call__(self, denoise, x, t, cond, uncond):
        if self.scale == 1.0:
            return denoise(x, t, **cond)
        if uncond is None:
            raise ValueError("CFG needs unconditional inputs (uncond), e.g. empty-prompt text embeddings")
        batch = x.shape[0]
        t = _expand_batch(torch.as_tensor(t, device=x.device), batch, "t")
        kwargs = concat_kwargs(uncond, cond, batch)
        out = denoise(torch.cat([x, x], dim=0), torch.cat([t, t], dim=0), **kwargs)
        out_uncond, out_cond = out.chunk(2, dim=0)
        return out_uncond + self.scale * (out_cond - out_uncond)

    def __repr__(self) -> str:
        return f"CFG(scale={self.scale})"


_GUIDANCE: dict[str, Callable[..., Guidance]] = {}


def register_guidance(name: str, cls: Callable[..., Guidance], *, overwrite: bool = False) -> None:
    """Register a guidance class (or factory) under ``name`` for :func:`make_guidance`."""
    if name in _GUIDANCE and _GUIDANCE[name] is not cls and not overwrite:
        raise ValueError(f"guidance {name!r} is already registered to {_GUIDANCE[name]!r}")
    _GUIDANCE[name] = cls


def list_guidance() -> list[str]:
    return sorted(_GUIDANCE)


def make_guidance(name: str, **kwargs: Any) -> Guidance:
    """Build a registered guidance by name, e.g. ``make_guidance("cfg", scale=6.0)``."""
    if name not in _GUIDANCE:
        raise ConfigError(f"guidance={name!r} is unknown; valid names: {', '.join(list_guidance())}")
    try:
        return _GUIDANCE[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"guidance {name!r}: invalid options {sorted(kwargs)} ({exc})") from exc


register_guidance("none", NoGuidance)
register_guidance("cfg", CFG)
