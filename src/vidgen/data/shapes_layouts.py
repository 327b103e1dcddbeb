"""Shapes-world layout settings: `small_overlap`, a small instance on top of a large one.

InstanceV Sec. 4.3 states SAUG's target: "the disappearance of small instances that overlap with
larger ones", where a small instance covers only a few visual tokens and those tokens also lie in
a large instance's box. `small_on_large` rewrites a clip's first two instances into that case:

- instance `LARGE` (0): a flat circle, square or diamond of half extent `LARGE_SIZE` (0.28-0.36)
  of the frame's shorter side, moving slowly on a straight line from near the centre;
- instance `SMALL` (1): a flat shape of half extent `SMALL_SIZE` (0.10-0.14: on the tiny 64 x 64
  Wan about one 16 x 16 visual token; 0.06-0.09 was tried first and no model, the starting
  backbone included, ever generated it), riding on the large one at a fixed offset of at most
  0.45 of its half extent, so its box lies in the large one's box in every frame; it is the nearest
  instance of the clip, so it is visible (it occludes the large one, never the reverse);
- both colours differ from each other and from every other instance's (faces included), so the
  exact colour detector (`shapes_segment.detect_prompt`) finds each of the two alone.
The other instances keep their draws. Everything comes from the clip's own `random.Random`, so a
clip still depends only on (seed, index).
"""

from __future__ import annotations

import math
import random

import torch

from vidgen.data.shapes import COLOURS, InstanceSpec, _direction_words

LARGE, SMALL = 0, 1  # instance indices of the pair in every clip
MAX_INSTANCES = 6  # the pair's two colours must stay free among the 8 palette colours
LARGE_SIZE, SMALL_SIZE = (0.28, 0.36), (0.10, 0.14)  # half extents, fractions of min(H, W)


def small_on_large(
    specs: list[InstanceSpec], rng: random.Random, frames: int, height: int, width: int
) -> None:
    """Rewrite specs[LARGE] and specs[SMALL] (in place) into a small instance on a large one."""
    if len(specs) < 2:
        raise ValueError(f"small_overlap needs at least 2 instances per clip, got {len(specs)}")
    m, t = min(height, width), torch.arange(frames, dtype=torch.float32)
    others = {s.colour for i, s in enumerate(specs) if i not in (LARGE, SMALL)}
    big_colour, small_colour = rng.sample([c for c in COLOURS if c not in others], 2)

    # 1. the large instance: slow and straight from near the centre
    size = rng.uniform(*LARGE_SIZE) * m
    speed, angle = rng.uniform(0.01, 0.03) * m, rng.uniform(0, 2 * math.pi)
    vx, vy = speed * math.cos(angle), speed * math.sin(angle)
    x0, y0 = rng.uniform(0.4 * width, 0.6 * width), rng.uniform(0.4 * height, 0.6 * height)
    path = torch.stack([x0 + vx * t, y0 + vy * t], dim=-1)
    direction = _direction_words(vx, vy)
    # 2. the small instance rides on it; 3. depths: the small one nearest, the large one next
    r, phi = rng.uniform(0, 0.45) * size, rng.uniform(0, 2 * math.pi)
    offset = torch.tensor([r * math.cos(phi), r * math.sin(phi)])
    depths = sorted(s.depth for s in specs)
    rest = iter(depths[:-2])
    for i, s in sorted(enumerate(specs), key=lambda p: p[1].depth):
        if i not in (LARGE, SMALL):
            s.depth = next(rest)
    specs[LARGE] = InstanceSpec(
        colour=big_colour,
        shape=rng.choice(("circle", "square", "diamond")),
        motion="linear",
        size=size,
        depth=depths[-2],
        path=path,
        direction=direction,
    )
    specs[SMALL] = InstanceSpec(
        colour=small_colour,
        shape=rng.choice(("circle", "square", "triangle", "diamond", "cross")),
        motion="linear",
        size=rng.uniform(*SMALL_SIZE) * m,
        depth=depths[-1],
        path=path + offset,
        direction=direction,
    )
