"""Frame replacement and condition dropout (STIV Sec. 2.3.1-2.3.2, E; Tables 5, 6, 20, 21).

One mechanism for TI2V, V2V and TUP: the latent frames named by ``method.condition_frames`` are
replaced by their clean latents (training: in ``x_t`` before the DiT, with the loss on them masked
out; sampling: at every step). The per-frame VAE maps pixel frame ``i`` to latent frame ``i``.

``condition_frames``: ``[]`` (T2V), a list of frame indices (TI2V ``[0]``, V2V ``[0, 1, 2, 3]``),
or ``"stride:N"`` (every N-th frame from 0: the temporal upsampler, TUP ``"stride:2"``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidgen.errors import ConfigError

FIELD = "method.condition_frames"


def parse_condition_frames(value) -> list[int] | int:
    """The checked knob: a sorted list of indices, or the stride (int) of ``"stride:N"``."""
    if value is None:
        return []
    if isinstance(value, str):
        head, _, tail = value.partition(":")
        if head == "stride" and tail.isdigit() and int(tail) >= 2:
            return int(tail)
        raise ConfigError(
            f"{FIELD}={value!r} is not valid; use a list of latent frame indices (e.g. [0]) or 'stride:N' (N >= 2)"
        )
    frames = [int(i) for i in value]
    if any(i < 0 for i in frames) or len(set(frames)) != len(frames):
        raise ConfigError(f"{FIELD}={list(value)}: indices must be distinct and >= 0")
    return sorted(frames)


def describe(spec: list[int] | int) -> str:
    """The knob as the user wrote it (``[0]``, ``'stride:2'``)."""
    return f"'stride:{spec}'" if isinstance(spec, int) else str(list(spec))


def condition_mask(spec: list[int] | int, frames: int, device=None) -> Tensor:
    """[F] bool: the replaced latent frames of a clip of ``frames`` latent frames.

    Raises ConfigError when the clip has fewer frames than the conditioning needs (at least one
    generated frame must remain)."""
    sel = torch.zeros(frames, dtype=torch.bool, device=device)
    if isinstance(spec, int):
        sel[::spec] = True
    elif spec:
        if max(spec) >= frames:
            raise ConfigError(
                f"{FIELD}={spec} names {len(spec)} condition frame(s) up to index {max(spec)}, but the clip "
                f"has {frames} latent frame(s); use more frames (data.frames) or fewer condition frames"
            )
        sel[spec] = True
    if frames and bool(sel.all()):
        raise ConfigError(
            f"{FIELD}={describe(spec)}: all {frames} latent frames would be condition frames; nothing is left to generate"
        )
    return sel


def replaced_frames(sel: Tensor, present: Tensor) -> Tensor:
    """[B, 1, F, 1, 1] float: 1 where frame replacement applies (``sel`` [F] and ``present`` [B])."""
    return (present.bool()[:, None] & sel.bool()[None]).float()[:, None, :, None, None]


def replace_frames(x: Tensor, clean: Tensor, sel: Tensor, present: Tensor) -> Tensor:
    """``x`` with the selected frames of the samples whose condition is present set to ``clean``
    (bit for bit: a ``where``, not an arithmetic blend)."""
    region = replaced_frames(sel.to(x.device), present.to(x.device)).bool()
    return torch.where(region, clean.to(x.dtype), x)


def draw_dropout(batch: int, p_text: float, p_image: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """(drop_text [B], drop_image [B]) bool, independent Bernoulli draws (Sec. E: 10 % / 8 %).

    Both come from the training step's generator (one ``rand(2, B)``), so a resumed run draws the
    same conditions as an uninterrupted one."""
    u = torch.rand(2, batch, generator=gen, device=gen.device)
    return u[0] < p_text, u[1] < p_image


def check_condition_size(cond: Tensor, latent_shape: tuple[int, ...], source: str) -> None:
    """A conditioning latent [B, C, K, H', W'] must have the video's channels and spatial size."""
    c, _, h, w = latent_shape
    if cond.ndim != 5 or cond.shape[1] != c or tuple(cond.shape[3:]) != (h, w):
        raise ConfigError(
            f"{source}: the condition's latents are {tuple(cond.shape[1:])} (C, K, H', W') but the video's are "
            f"{(c, h, w)} (C, H', W'); the image / video must have the video's size (data.height x data.width)"
        )
