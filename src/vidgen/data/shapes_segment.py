"""An exact segmenter for the shapes world: which pixels of a (generated) clip show a named colour.

The shapes world paints every non-face instance in one flat colour of `COLOURS` on one of the
`BACKGROUNDS`, and every instance colour is far from every other palette colour (smallest RGB
distance 0.357, yellow-orange, in [0, 1] units). So a pixel "shows colour c" when c is its
nearest palette colour and lies within `tol` of it. On a rendered clip this returns the visible
mask of the instances of that colour exactly (tested; two instances of one colour come back as
their union). On a generated clip it stands in for Grounded-SAM2 (JDM Table 3 protocol): the
segmenter the world itself provides, no learned model involved.

Faces carry an identity texture (hair band, eyes, mouth in other colours), so their segment is
the skin-coloured part only: a lower bound of the face mask. Callers that need exactness pick
non-face instances (`ShapesClip.specs[i].identity < 0`).
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from vidgen.data.shapes import BACKGROUNDS, COLOURS, masks_to_boxes

_PALETTE_NAMES = tuple(COLOURS) + tuple(f"bg:{k}" for k in BACKGROUNDS)
_PALETTE = torch.tensor([*COLOURS.values(), *BACKGROUNDS.values()], dtype=torch.float32)  # [P, 3]
_COLOUR_WORD = re.compile(r"\b(" + "|".join(COLOURS) + r")\b")


def colour_of(prompt: str) -> str:
    """The first palette colour named in an instance prompt ("a red circle moving right" -> "red")."""
    m = _COLOUR_WORD.search(prompt)
    if m is None:
        raise ValueError(f"no shapes-world colour in {prompt!r} (known: {', '.join(COLOURS)})")
    return m.group(1)


def segment_colour(video: Tensor, colour: str, tol: float = 0.25) -> Tensor:
    """Pixels of `video` [3, F, H, W] in [-1, 1] whose nearest palette colour is `colour`.

    Returns a bool mask [F, H, W]. `tol` is the largest RGB distance (in [0, 1] units) a pixel may
    have from the colour. 0.25 accepts generated colours somewhat off the palette; the nearest-colour
    test keeps a pixel that is nearer another palette colour out, whatever `tol` is.
    """
    if colour not in COLOURS:
        raise ValueError(f"unknown shapes-world colour {colour!r} (known: {', '.join(COLOURS)})")
    if video.dim() != 4 or video.shape[0] != 3:
        raise ValueError(f"expected a video [3, F, H, W], got {tuple(video.shape)}")
    rgb = (video.float().clamp(-1, 1) + 1) / 2  # [3, F, H, W] in [0, 1]
    dist = torch.cdist(rgb.flatten(1).T, _PALETTE)  # [F*H*W, P]
    best, idx = dist.min(dim=1)
    hit = (idx == _PALETTE_NAMES.index(colour)) & (best <= tol)
    return hit.view(video.shape[1:])


def detect_prompt(video: Tensor, prompt: str, tol: float = 0.25) -> tuple[Tensor, Tensor, Tensor]:
    """Segment the instance a prompt names: (mask [F, H, W], boxes [F, 4] normalised xyxy, visible [F])."""
    mask = segment_colour(video, colour_of(prompt), tol)
    boxes, visible = masks_to_boxes(mask)
    return mask, boxes, visible


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of xyxy boxes a [..., 4] and b [..., 4] (elementwise); 0 where both are empty."""
    lo = torch.maximum(a[..., :2], b[..., :2])
    hi = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (hi - lo).clamp(min=0).prod(-1)
    area = lambda x: (x[..., 2:] - x[..., :2]).clamp(min=0).prod(-1)  # noqa: E731
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))
