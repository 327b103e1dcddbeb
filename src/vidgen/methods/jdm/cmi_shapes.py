"""The shapes world's Ī (Eq. 12) with deterministic stand-in encoders in place of CLIP.

A smoke run then weights every clip by a real Ī, so it exercises the path a real run takes
(`vidgen jdm cmi` -> ``jdm/cmi`` -> w'). The stand-ins see what CLIP would see in this world:

- text ``e_y``: word counts over the world's content words (colours, shapes, motion words),
  L2-normalised; function words ("a", "and", "moving") carry no content and are left out;
- image ``e_x0``: the fraction of the middle frame's pixels nearest to each palette colour.

Negatives and the estimator are those of ``vidgen jdm cmi``: one regional caption from each of the
M clips with the nearest middle-frame embeddings (cosine, the clip excluded), seeded.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import torch
from torch import Tensor

from vidgen.data.shapes import BACKGROUNDS, COLOURS, SHAPES
from vidgen.methods.jdm.cmi_estimator import DEFAULT_CRITIC, DEFAULT_TEMPERATURE, average_cmi

_WORDS = (*COLOURS, *SHAPES, "still", "right", "up", "left", "down")
_INDEX = {w: i for i, w in enumerate(_WORDS)}
_PALETTE = torch.tensor([*COLOURS.values(), *BACKGROUNDS.values()], dtype=torch.float32)  # [P, 3]
DEFAULT_NEGATIVES = 1024


def text_embedding(caption: str) -> Tensor:
    """Content-word counts of ``caption`` [len(_WORDS)], L2-normalised (zeros without content words)."""
    v = torch.zeros(len(_WORDS))
    for word in re.findall(r"[a-z]+", caption.lower()):
        if word in _INDEX:
            v[_INDEX[word]] += 1
    return v / v.norm().clamp_min(1e-12)


def image_embedding(frame: Tensor) -> Tensor:
    """Palette histogram of one frame [3, H, W] in [-1, 1]: [P], L2-normalised."""
    rgb = ((frame.float().clamp(-1, 1) + 1) / 2).flatten(1).T  # [H*W, 3]
    nearest = torch.cdist(rgb, _PALETTE).argmin(dim=1)
    hist = torch.bincount(nearest, minlength=_PALETTE.shape[0]).float()
    return hist / hist.norm().clamp_min(1e-12)


def clips_cmi(
    captions: Sequence[Sequence[str]],
    frames: Tensor,
    negatives: int = DEFAULT_NEGATIVES,
    critic: str = DEFAULT_CRITIC,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
) -> list[float]:
    """Ī per clip from its regional ``captions`` and middle ``frames`` [N, 3, H, W]."""
    images = torch.stack([image_embedding(f) for f in frames])  # [N, P]
    texts = [torch.stack([text_embedding(c) for c in caps]) if caps else None for caps in captions]
    pool = [i for i, t in enumerate(texts) if t is not None]
    sims = images @ images.T
    rng = random.Random(f"jdm-cmi-shapes:{seed}")
    out = []
    for i, own in enumerate(texts):
        others = [j for j in pool if j != i]
        if own is None or own.shape[0] < 2 or not others:
            out.append(0.0)
            continue
        order = sorted(others, key=lambda j: (-float(sims[i, j]), j))[:negatives]  # nearest contexts
        neg = torch.stack([texts[j][rng.randrange(texts[j].shape[0])] for j in order])
        out.append(average_cmi(own, neg, images[i], critic, temperature))
    return out


def shapes_cmi(world, num_clips: int, **kwargs) -> dict[str, float]:
    """``{sample key: Ī}`` for the first ``num_clips`` clips of a ``ShapesWorld``."""
    clips = [world.render_clip(i) for i in range(num_clips)]
    frames = torch.stack([c.video[:, c.video.shape[1] // 2] for c in clips])
    values = clips_cmi([c.region_captions for c in clips], frames, **kwargs)
    # the key ShapesDataset.encode_clip gives the sample (a test holds the two together)
    return {f"shapes-{world.seed}-{c.index:06d}": v for c, v in zip(clips, values)}
