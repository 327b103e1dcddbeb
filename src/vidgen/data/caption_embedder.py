"""A deterministic caption embedder: no pretrained text encoder needed.

`CaptionEmbedder(dim, max_len, seed).encode(prompts) -> (emb [B, L, D], mask [B, L] bool)`:
- tokens: lowercase words and numbers (`[a-z0-9]+`), truncated to `max_len`;
- each word maps to a fixed Gaussian vector seeded by `zlib.crc32(f"{seed}:{word}")` (stable
  across processes, unlike Python's salted `hash()`), plus `POSITION_WEIGHT` times a sinusoidal
  position code; every token vector is normalised to unit RMS (norm sqrt(D)), like the output
  of a LayerNorm;
- padded positions are zero with mask False; the empty prompt gives all zeros and an all-False
  mask (the null text for classifier-free guidance).
Identical captions give identical embeddings; words are nearly orthogonal to each other, so
"a red circle" and "a blue circle" differ exactly at the colour token.
"""

from __future__ import annotations

import math
import re
import zlib

import torch
from torch import Tensor

POSITION_WEIGHT = 0.3
_MAX_CACHED_WORDS = 100_000
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(prompt: str) -> list[str]:
    return _WORD.findall(prompt.lower())


class CaptionEmbedder:
    """Deterministic `TextEncoder`: prompts -> (embeddings [B, L, D], mask [B, L])."""

    def __init__(self, dim: int, max_len: int, seed: int = 0):
        if dim < 2 or max_len < 1:
            raise ValueError(f"CaptionEmbedder needs dim >= 2 and max_len >= 1 (got dim={dim}, max_len={max_len})")
        self.dim, self.max_len, self.seed = dim, max_len, seed
        self._words: dict[str, Tensor] = {}
        pos = torch.arange(max_len, dtype=torch.float64)[:, None]
        half = dim // 2
        freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / max(half, 1))
        code = torch.zeros(max_len, dim, dtype=torch.float64)
        code[:, 0 : 2 * half : 2] = torch.sin(pos * freq)
        code[:, 1 : 2 * half : 2] = torch.cos(pos * freq)
        # unit RMS per position, then weighted
        code = code / code.pow(2).mean(dim=1, keepdim=True).sqrt()
        self._positions = (POSITION_WEIGHT * code).float()

    def word_vector(self, word: str) -> Tensor:
        """[D] unit-RMS Gaussian vector of a word (cached)."""
        vec = self._words.get(word)
        if vec is None:
            g = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}:{word}".encode()))
            vec = torch.randn(self.dim, generator=g)
            vec = vec / vec.pow(2).mean().sqrt()
            if len(self._words) >= _MAX_CACHED_WORDS:
                self._words.clear()
            self._words[word] = vec
        return vec

    def encode_one(self, prompt: str) -> tuple[Tensor, Tensor]:
        """([L, D], [L]) for one prompt."""
        words = tokenize(prompt)[: self.max_len]
        emb = torch.zeros(self.max_len, self.dim)
        mask = torch.zeros(self.max_len, dtype=torch.bool)
        if words:
            n = len(words)
            tok = torch.stack([self.word_vector(w) for w in words]) + self._positions[:n]
            emb[:n] = tok / tok.pow(2).mean(dim=1, keepdim=True).sqrt()
            mask[:n] = True
        return emb, mask

    def encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts:
            return torch.zeros(0, self.max_len, self.dim), torch.zeros(0, self.max_len, dtype=torch.bool)
        embs, masks = zip(*(self.encode_one(p) for p in prompts))
        return torch.stack(embs), torch.stack(masks)

    def __repr__(self) -> str:
        return f"CaptionEmbedder(dim={self.dim}, max_len={self.max_len}, seed={self.seed})"
