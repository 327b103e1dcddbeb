"""A deterministic linear latent codec with the compression of a real video VAE.

`ShapesCodec(latent_channels, vae_scale=(t, s, s), seed)` maps pixels [B, 3, F, H, W] in [-1, 1]
to latents [B, C, F', H', W'] with F' = (F - 1) // t + 1, H' = H / s, W' = W / s, like the causal
VAEs of CogVideoX / Wan (t=4, s=8, C=16: the first frame is encoded alone, then groups of t frames)
and ModelScope (t=1, s=8, C=4). Frames past 1 + (F' - 1) * t are dropped (real VAEs need
F = 1 + k * t as well); H and W must be multiples of s.

Design (no learned weights):
1. patchify: each latent cell sees a patch of (t_g, s, s) pixels x 3 colours (t_g = 1 for the
   first frame group, t otherwise);
2. project onto the C lowest-frequency separable basis functions colour (x) DCT-t (x) DCT-y (x)
   DCT-x (colours in an opponent basis: luma, red-green, yellow-blue; order: total frequency,
   then luma before chroma, then spatial before temporal). These columns are orthonormal, so
   decode = the transpose = the pseudo-inverse, and decode(encode(x)) is the orthogonal
   projection of x onto that low-frequency subspace (each cell keeps its mean colour plus the
   strongest gradients: a shape's colour and coarse position survive);
3. coefficients are divided by sqrt(patch size) (so the DC term is the patch mean, whatever
   t and s), mixed by a fixed seeded orthogonal C x C matrix (for C a power of two a signed,
   row-permuted Hadamard matrix: every channel receives 1/C of every frequency's energy, and the
   DC terms get zero-sum rows so a global brightness offset does not shift all channels alike;
   otherwise a random orthogonal matrix), and multiplied by `LATENT_SCALE * sqrt(C)`.

`LATENT_SCALE = 1.6` was measured on shapes-world clips (64 clips of 9 x 64 x 64 with C=16,
(4, 8, 8) and 8 x 64 x 64 with C=4, (1, 8, 8)): the root-mean-square of the unscaled mixed
coefficients times sqrt(C) is 0.60-0.65, so the latents have a mean of about 0 and a standard
deviation of about 1 (0.95-1.05; per channel 0.9-1.1). The codec is linear, so it encodes
anything, e.g. masks given as 3-channel videos in [-1, 1]. Decode does not clamp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from vidgen.errors import ConfigError

LATENT_SCALE = 1.6

# Opponent colour basis (orthonormal rows): luma, red-green, yellow-blue.
_COLOUR_BASIS = torch.tensor(
    [
        [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
        [1 / math.sqrt(2), -1 / math.sqrt(2), 0.0],
        [1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)],
    ],
    dtype=torch.float64,
)


def _dct_matrix(n: int) -> Tensor:
    """Orthonormal DCT-II rows: [n (frequency), n (position)]."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * (i + 0.5) * k / n) * math.sqrt(2.0 / n)
    m[0] = 1.0 / math.sqrt(n)
    return m


def low_frequency_basis(channels: int, t: int, s: int) -> Tensor:
    """[3 * t * s * s, channels] orthonormal columns (patch layout: colour, time, y, x)."""
    dim = 3 * t * s * s
    if channels > dim:
        raise ConfigError(
            f"ShapesCodec: latent_channels={channels} exceeds the patch size 3*{t}*{s}*{s}={dim}; "
            f"use fewer latent channels or a larger vae_scale"
        )
    keys = []
    for c in range(3):
        for kt in range(t):
            for ky in range(s):
                for kx in range(s):
                    freq = kt + ky + kx
                    keys.append((freq, 0 if (c == 0 or freq == 0) else 1, kt, c, ky, kx))
    keys.sort()
    dt, ds = _dct_matrix(t), _dct_matrix(s)
    cols = []
    for _freq, _chroma, kt, c, ky, kx in keys[:channels]:
        col = torch.einsum("c,t,y,x->ctyx", _COLOUR_BASIS[c], dt[kt], ds[ky], ds[kx])
        cols.append(col.reshape(-1))
    return torch.stack(cols, dim=1)


def _rotation(channels: int, seed: int) -> Tensor:
    """A fixed seeded orthogonal C x C matrix that spreads every basis function over all channels.

    For C a power of two: a normalised Hadamard matrix (every entry +-1/sqrt(C), so each channel
    receives exactly 1/C of every coefficient's energy) with seeded row signs and column order;
    otherwise a seeded random orthogonal matrix (QR of a Gaussian).
    """
    g = torch.Generator().manual_seed(seed)
    if channels & (channels - 1) == 0:
        h = torch.ones(1, 1, dtype=torch.float64)
        while h.shape[0] < channels:
            h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
        signs = torch.randint(0, 2, (channels,), generator=g).double() * 2 - 1
        # Row i mixes basis function i into the channels. The all-ones Hadamard row goes to the
        # last (highest-frequency) basis function: the DC terms, whose mean is far from zero,
        # get zero-sum rows, so a global brightness offset does not shift every channel alike.
        perm = torch.cat([1 + torch.randperm(channels - 1, generator=g), torch.zeros(1, dtype=torch.long)])
        return signs[:, None] * h[perm] / math.sqrt(channels)
    a = torch.randn(channels, channels, generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    return q * torch.sign(torch.diagonal(r))[None, :]


class ShapesCodec:
    """Deterministic `LatentCodec`: pixels [B, 3, F, H, W] <-> latents [B, C, F', H', W']."""

    def __init__(self, latent_channels: int, vae_scale: Sequence[int] = (4, 8, 8), seed: int = 0,
                 scale: float = LATENT_SCALE):
        t, sh, sw = (int(v) for v in vae_scale)
        if sh != sw:
            raise ConfigError(f"ShapesCodec: vae_scale must have equal spatial factors (got {tuple(vae_scale)})")
        if t < 1 or sh < 1 or latent_channels < 1:
            raise ConfigError(f"ShapesCodec: invalid latent_channels={latent_channels} / vae_scale={tuple(vae_scale)}")
        self.latent_channels = latent_channels
        self.vae_scale = (t, sh, sw)
        self.t, self.s = t, sh
        self.seed = seed
        self.scale = float(scale) * math.sqrt(latent_channels)
        rot = _rotation(latent_channels, seed)
        # encode: z = scale * R^T B^T patch / sqrt(D); decode: patch = sqrt(D) * B R z / scale
        self._first = self._matrix(1, rot)
        self._group = self._matrix(t, rot) if t > 1 else self._first
        self._cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    def _matrix(self, t: int, rot: Tensor) -> Tensor:
        basis = low_frequency_basis(self.latent_channels, t, self.s)
        return (basis @ rot).float().contiguous()  # [D, C], orthonormal columns

    def _mats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = (self._first.to(like), self._group.to(like))
        return self._cache[key]

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, F', H', W') of a clip of `frames` x `height` x `width` pixels."""
        self._check(frames, height, width)
        return (self.latent_channels, (frames - 1) // self.t + 1, height // self.s, width // self.s)

    def pixel_frames(self, latent_frames: int) -> int:
        return 1 + (latent_frames - 1) * self.t

    def _check(self, frames: int, height: int, width: int) -> None:
        if frames < 1 or height % self.s or width % self.s:
            raise ConfigError(
                f"ShapesCodec: video of {frames}x{height}x{width} pixels cannot be encoded with "
                f"vae_scale={self.vae_scale}: height and width must be multiples of {self.s}"
            )

    # -- encode --------------------------------------------------------------------------------
    def _encode_part(self, x: Tensor, t: int, mat: Tensor) -> Tensor:
        """x [B, 3, G*t, H, W] -> [B, C, G, H/s, W/s]."""
        b, c, f, h, w = x.shape
        s = self.s
        g, hh, ww = f // t, h // s, w // s
        p = x.reshape(b, c, g, t, hh, s, ww, s).permute(0, 2, 4, 6, 1, 3, 5, 7)
        p = p.reshape(b, g, hh, ww, c * t * s * s)
        z = (p @ mat) * (self.scale / math.sqrt(mat.shape[0]))
        return z.permute(0, 4, 1, 2, 3).contiguous()

    def encode(self, video: Tensor) -> Tensor:
        if video.dim() != 5 or video.shape[1] != 3:
            raise ValueError(f"ShapesCodec.encode expects [B, 3, F, H, W], got {tuple(video.shape)}")
        b, _, f, h, w = video.shape
        self._check(f, h, w)
        if not video.is_floating_point():
            video = video.float()
        first, group = self._mats(video)
        parts = [self._encode_part(video[:, :, :1], 1, first)]
        n_groups = (f - 1) // self.t
        if n_groups:
            rest = video[:, :, 1 : 1 + n_groups * self.t]
            parts.append(self._encode_part(rest, self.t, group))
        return torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]

    # -- decode --------------------------------------------------------------------------------
    def _decode_part(self, z: Tensor, t: int, mat: Tensor) -> Tensor:
        """z [B, C, G, H', W'] -> [B, 3, G*t, H'*s, W'*s]."""
        b, _, g, hh, ww = z.shape
        s = self.s
        p = z.permute(0, 2, 3, 4, 1) @ mat.T * (math.sqrt(mat.shape[0]) / self.scale)
        p = p.reshape(b, g, hh, ww, 3, t, s, s).permute(0, 4, 1, 5, 2, 6, 3, 7)
        return p.reshape(b, 3, g * t, hh * s, ww * s)

    def decode(self, latents: Tensor) -> Tensor:
        if latents.dim() != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"ShapesCodec.decode expects [B, {self.latent_channels}, F', H', W'], got {tuple(latents.shape)}"
            )
        first, group = self._mats(latents)
        parts = [self._decode_part(latents[:, :, :1], 1, first)]
        if latents.shape[2] > 1:
            parts.append(self._decode_part(latents[:, :, 1:], self.t, group))
        return torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]

    def __repr__(self) -> str:
        return f"ShapesCodec(latent_channels={self.latent_channels}, vae_scale={self.vae_scale}, seed={self.seed})"
