"""Location parameterisation (InstanceDiffusion slide "Location parameterization"): every format -> 2D points.

- box: (x0, y0, x1, y1), 4 coordinates
- point: one point, the box centre (the released code's fallback when no point is annotated)
- scribble: ``n`` points drawn uniformly inside the instance mask
- polygon / mask: ``n_boundary`` points spread evenly along the mask boundary plus ``n_inside``
  points drawn inside the mask ("sparsely sampled points within the mask and uniformly sampled
  points from boundary polygons"; 128 + 128 in the released code, Table 6c/6d vary them)

Coordinates are normalised xy in [0, 1]. Masks are bool [..., H, W]; every draw comes from the
caller's generator. An empty mask falls back to its box (corners and centre), so it still has points.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def box_centre(boxes: Tensor) -> Tensor:
    """[..., 4] xyxy -> [..., 2] centre xy (the 'point' format)."""
    return torch.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], dim=-1)


def _pixel_xy(idx: Tensor, width: int, height: int) -> Tensor:
    """Flat pixel indices [K] -> normalised centre xy [K, 2]."""
    y, x = idx // width, idx % width
    return torch.stack([(x.float() + 0.5) / width, (y.float() + 0.5) / height], dim=-1)


def _box_fallback(box: Tensor, n: int) -> Tensor:
    """n points cycling over the box's four corners and centre (masks with no pixels)."""
    x0, y0, x1, y1 = box.tolist()
    ring = torch.tensor([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [(x0 + x1) / 2, (y0 + y1) / 2]])
    return ring[torch.arange(n) % len(ring)]


def inside_points(mask: Tensor, n: int, gen: torch.Generator, box: Tensor) -> Tensor:
    """n points drawn uniformly (with replacement) among the mask's pixels -> [n, 2]."""
    idx = mask.flatten().nonzero().squeeze(-1)
    if idx.numel() == 0:
        return _box_fallback(box, n)
    pick = idx[torch.randint(idx.numel(), (n,), generator=gen)]
    return _pixel_xy(pick, mask.shape[-1], mask.shape[-2])


def boundary_points(mask: Tensor, n: int, box: Tensor) -> Tensor:
    """n points spread evenly along the mask boundary, ordered by angle about the centroid -> [n, 2].

    The boundary is the mask's pixels with a 4-neighbour outside it. Ordering by angle traces a
    star-shaped outline (every shape of the shapes world); evenly spaced indices along it stand in
    for the released code's uniform sampling along the cv2 contour polygon (not a dependency here).
    """
    m = mask.float()[None, None]
    eroded = -F.max_pool2d(-F.pad(m, (1, 1, 1, 1), value=0.0), 3, stride=1)  # [1, 1, H, W]
    edge = (mask & ~(eroded[0, 0] > 0.5)).flatten().nonzero().squeeze(-1)
    if edge.numel() == 0:
        return _box_fallback(box, n)
    xy = _pixel_xy(edge, mask.shape[-1], mask.shape[-2])  # [K, 2]
    centre = xy.mean(0)
    angle = torch.atan2(xy[:, 1] - centre[1], xy[:, 0] - centre[0])
    xy = xy[torch.argsort(angle, stable=True)]
    pick = torch.floor(torch.arange(n, dtype=torch.float64) * xy.shape[0] / n).long()
    return xy[pick]


def polygon_points(mask: Tensor, n_boundary: int, n_inside: int, gen: torch.Generator, box: Tensor) -> Tensor:
    """The polygon / mask format: boundary points then inside points -> [n_boundary + n_inside, 2]."""
    parts = [boundary_points(mask, n_boundary, box)]
    if n_inside:
        parts.append(inside_points(mask, n_inside, gen, box))
    return torch.cat(parts, dim=0)


def mask_from_box(box: Tensor, height: int, width: int) -> Tensor:
    """A box [4] xyxy -> bool mask [H, W] of the pixels whose centre lies inside it (boxes-only data)."""
    ys = (torch.arange(height) + 0.5) / height
    xs = (torch.arange(width) + 0.5) / width
    in_y = (ys >= box[1]) & (ys < box[3])
    in_x = (xs >= box[0]) & (xs < box[2])
    return in_y[:, None] & in_x[None, :]


def location_points(
    boxes: Tensor, masks: Tensor | None, scribble: int, boundary: int, inside: int, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Instances of one image: boxes [N, 4], masks [N, H, W] bool or None (boxes rasterised at 64 x 64).

    Returns (masks [N, H, W], points [N, 2], scribbles [N, scribble, 2], polygons [N, boundary + inside, 2]).
    """
    if masks is None:
        masks = (
            torch.stack([mask_from_box(b, 64, 64) for b in boxes])
            if len(boxes)
            else torch.zeros(0, 64, 64, dtype=torch.bool)
        )
    masks = masks.bool().cpu()
    boxes = boxes.float().cpu()
    scribbles = [inside_points(m, scribble, gen, b) for m, b in zip(masks, boxes)]
    polygons = [polygon_points(m, boundary, inside, gen, b) for m, b in zip(masks, boxes)]
    empty = torch.zeros(0, 1, 2)
    return (
        masks,
        box_centre(boxes),
        torch.stack(scribbles) if scribbles else empty.expand(0, scribble, 2),
        torch.stack(polygons) if polygons else empty.expand(0, boundary + inside, 2),
    )
