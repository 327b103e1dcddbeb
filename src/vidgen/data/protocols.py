"""What a datamodule hands the trainer and the sampler besides batches."""

from __future__ import annotations

from typing import Protocol

from torch import Tensor


class TextEncoder(Protocol):
    """Prompts -> (embeddings [B, L, D], mask [B, L] bool). L and D match the backbone's text input."""

    def encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]: ...


class LatentCodec(Protocol):
    """Pixels [B, 3, F, H, W] in [-1, 1] <-> latents [B, C, F', H', W'] (already scaled for the backbone)."""

    def encode(self, video: Tensor) -> Tensor: ...

    def decode(self, latents: Tensor) -> Tensor: ...
