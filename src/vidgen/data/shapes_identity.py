"""The shapes world's exact identity classifier: which identity texture a face pixel shows.

A face of the shapes world is a disc textured with one of `NUM_IDENTITIES` fixed identity
textures (`data/shapes.identity_texture`). Given where a face should be (its disc centre per
frame and radius, from the clip's spec), every identity's texture at each pixel is known, so a
pixel is classified as the identity whose texture colour is nearest (L2 in RGB).
A pixel is *informative* for identity k when no other identity renders the same colour there
(skin vs skin always differs; dark eyes, mouths and hair can coincide); only informative pixels
are counted, so a rendered ground-truth face scores exactly 1 and a face rendered with another
identity exactly 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidgen.data.shapes import NUM_IDENTITIES, InstanceSpec, identity_texture


def _unit_coords(spec: InstanceSpec, frames: int, height: int, width: int) -> tuple[Tensor, Tensor]:
    """(u, v) [F, H, W]: each pixel in the face's unit square, as `ShapesWorld._appearance` maps it."""
    ys = torch.arange(height, dtype=torch.float32).view(1, -1, 1) + 0.5
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, -1) + 0.5
    cx = spec.path[:frames, 0].view(-1, 1, 1)
    cy = spec.path[:frames, 1].view(-1, 1, 1)
    u = (xs - cx) / (2 * spec.size) + 0.5
    v = (ys - cy) / (2 * spec.size) + 0.5
    return u.expand(frames, height, width), v.expand(frames, height, width)


def identity_textures_at(spec: InstanceSpec, frames: int, height: int, width: int) -> Tensor:
    """[NUM_IDENTITIES, 3, F, H, W]: every identity's texture rendered on this face's geometry."""
    u, v = _unit_coords(spec, frames, height, width)
    return torch.stack([identity_texture(k, u, v) for k in range(NUM_IDENTITIES)])


def classify_identity(video: Tensor, spec: InstanceSpec) -> tuple[Tensor, Tensor]:
    """Per pixel of `video` [3, F, H, W]: (nearest identity [F, H, W] long, distances [NUM_IDENTITIES, F, H, W])."""
    _, f, h, w = video.shape
    textures = identity_textures_at(spec, f, h, w)  # [I, 3, F, H, W]
    dist = (textures - video.float()[None]).pow(2).sum(1)  # [I, F, H, W]
    return dist.argmin(0), dist


def informative(spec: InstanceSpec, identity: int, frames: int, height: int, width: int) -> Tensor:
    """[F, H, W] bool: pixels where `identity`'s texture colour differs from every other identity's."""
    textures = identity_textures_at(spec, frames, height, width)  # [I, 3, F, H, W]
    same = (textures - textures[identity : identity + 1]).abs().amax(1) == 0  # [I, F, H, W]
    return same.sum(0) == 1  # only `identity` itself renders this colour


def identity_fraction(video: Tensor, spec: InstanceSpec, identity: int, region: Tensor) -> Tensor:
    """Fraction of the informative pixels of `region` [F, H, W] bool whose nearest identity is `identity`.

    0-d tensor; NaN when the region holds no informative pixel (e.g. the face left the frame).
    """
    _, f, h, w = video.shape
    nearest, dist = classify_identity(video, spec)
    # a tie between identities at a pixel counts as wrong (not a unique nearest identity)
    unique = (dist == dist.min(0, keepdim=True).values).sum(0) == 1
    counted = region & informative(spec, identity, f, h, w)
    right = counted & unique & (nearest == identity)
    n = counted.sum()
    return right.sum().float() / n if n > 0 else torch.tensor(float("nan"))
