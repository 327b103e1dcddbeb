"""JDM's regional signals (Sec. 3.2, A.3, Table 5): what the mask channels of the model carry.

A combination of regions (objects) has a union mask ``u [F, H, W]`` (bool). Its regional signal
``s [F, H, W]`` in [0, 1] is

- ``mask``  (default, "JDM-Mask"):  ``s = u``;
- ``hed``   ("JDM-HED"):   ``s = hed * u``   -- the whole-scene HED edge map cropped by the union mask;
- ``depth`` ("JDM-Depth"): ``s = depth * u`` -- the whole-scene depth map cropped by the union mask.

Outside the union mask the signal is 0. It becomes a 3-channel video in [-1, 1]
(``2 s - 1`` repeated over RGB: mask pixels are +1, everything else -1) and is encoded by the
data's codec / VAE exactly like the video (``signal_latents``), so the mask latents live in the
video latents' space and scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vidgen.data.sample import Regions
from vidgen.errors import ConfigError, DataError

SIGNALS = ("mask", "hed", "depth")


def check_signal(signal: str) -> str:
    if signal not in SIGNALS:
        raise ConfigError(
            f"method.signal={signal!r} is not a JDM regional signal; use one of {list(SIGNALS)} "
            "(mask: object masks, hed / depth: the whole-scene map cropped by the regional mask)"
        )
    return signal


def union_mask(masks: Tensor, members: Sequence[int]) -> Tensor:
    """``masks [R, F, H, W]`` bool, region indices -> their union ``[F, H, W]`` bool."""
    if len(members) == 0:
        return torch.zeros(masks.shape[1:], dtype=torch.bool)
    return masks[list(members)].bool().any(dim=0)


def regional_signal(regions: Regions, union: Tensor, signal: str, key: str = "?") -> Tensor:
    """The regional signal ``[F, H, W]`` float32 in [0, 1] of one union mask (zero outside it)."""
    check_signal(signal)
    union = union.bool()
    if signal == "mask":
        return union.float()
    scene = getattr(regions, signal)
    if scene is None:
        raise DataError(
            f"sample {key!r}: field regions.{signal}: JDM with method.signal={signal} needs the whole-scene "
            f"{signal} map of every clip, and this sample has none. Fix: use data that carries "
            f"regions.{signal} (e.g. data=shapes, or precompute shards with `{signal}` tensors), or set "
            "method.signal=mask."
        )
    if tuple(scene.shape) != tuple(union.shape):
        raise DataError(
            f"sample {key!r}: field regions.{signal}: shape {list(scene.shape)} differs from the region "
            f"masks' {list(union.shape)} ([F, H, W]). Fix: re-run precompute so both are at the clip's frame_size."
        )
    return scene.float().clamp(0, 1) * union.float()


def signal_video(signal: Tensor) -> Tensor:
    """``[..., F, H, W]`` in [0, 1] -> a 3-channel video ``[..., 3, F, H, W]`` in [-1, 1]."""
    x = signal.float() * 2 - 1
    return x.unsqueeze(-4).expand(*x.shape[:-3], 3, *x.shape[-3:]).contiguous()


@torch.no_grad()
def signal_latents(codec, signals: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Encode regional signals ``[K, F, H, W]`` (in [0, 1]) with the video codec -> ``[K, C, F', H', W']``."""
    latents = codec.encode(signal_video(signals))
    latents = latents.detach().to("cpu")
    return latents if dtype is None else latents.to(dtype)
