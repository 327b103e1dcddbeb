"""A layout file for `vidgen sample instances=PATH`: instance prompts and boxes of one clip to generate.

The format is the instance part of a `vidgen precompute` annotation, so a training annotation can
be reused as it is::

    {"instances": [
        {"prompt": "a red square", "box": [0.1, 0.1, 0.4, 0.5]},                 # static box
        {"prompt": "a blue circle", "boxes": [[0.5, 0.2, 0.8, 0.6], null, ...]}  # one per pixel frame
    ]}

(a bare list of instances is accepted too). Boxes are normalised xyxy in [0, 1]. ``boxes`` has
one entry per pixel frame of the generated clip (``null``: the instance is absent from that frame);
``box`` is the same box in every frame. The checks are `check_instances`' (the training data's),
plus the JSON shape, each naming the file, the field and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vidgen.data.sample import Instances
from vidgen.errors import DataError
from vidgen.instances.validate import check_instances

FORMAT_HINT = (
    'Fix: write {"instances": [{"prompt": "...", "box": [x1, y1, x2, y2]}, ...]} (see `vidgen sample --help`)'
)


def _box(path: Path, field: str, value) -> list[float]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise DataError(
            f"{path}: {field} = {value!r} is not a box. Fix: four numbers [x1, y1, x2, y2] in [0, 1]"
        )
    x1, y1, x2, y2 = (float(v) for v in value)
    if not (x1 < x2 and y1 < y2):
        raise DataError(
            f"{path}: {field} = {value!r} has x2 <= x1 or y2 <= y1. Fix: give [x1, y1, x2, y2] with x1 < x2, y1 < y2"
        )
    return [x1, y1, x2, y2]


def load_layout(path: str | Path, frames: int, max_instances: int) -> Instances:
    """Read a layout file into ``Instances`` (boxes [N, frames, 4], visible [N, frames], prompts)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"instances={path}: no such file. {FORMAT_HINT}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise DataError(f"{path}: not valid JSON ({e}). {FORMAT_HINT}") from None
    items = data.get("instances") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise DataError(f"{path}: expected a non-empty list under 'instances'. {FORMAT_HINT}")
    prompts, boxes, visible = [], [], []
    for i, item in enumerate(items):
        name = f"instances[{i}]"
        if not isinstance(item, dict):
            raise DataError(f"{path}: {name} is {type(item).__name__}, not an object. {FORMAT_HINT}")
        prompt = item.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(f"{path}: {name}.prompt is missing or empty. Fix: give each instance its prompt")
        if ("box" in item) == ("boxes" in item):
            raise DataError(
                f"{path}: {name} needs exactly one of 'box' (static) or 'boxes' (one per frame). {FORMAT_HINT}"
            )
        if "box" in item:
            per_frame = [_box(path, f"{name}.box", item["box"])] * frames
        else:
            raw = item["boxes"]
            if not isinstance(raw, list) or len(raw) != frames:
                n = len(raw) if isinstance(raw, list) else type(raw).__name__
                raise DataError(
                    f"{path}: {name}.boxes has {n} entries, the clip has {frames} frames. Fix: one box "
                    "(or null) per pixel frame, or a static 'box'"
                )
            per_frame = [
                None if b is None else _box(path, f"{name}.boxes[{f}]", b) for f, b in enumerate(raw)
            ]
        prompts.append(prompt)
        visible.append([b is not None for b in per_frame])
        boxes.append([b if b is not None else [0.0] * 4 for b in per_frame])
    instances = Instances(
        boxes=torch.tensor(boxes, dtype=torch.float32),
        visible=torch.tensor(visible, dtype=torch.bool),
        prompts=prompts,
    )
    check_instances(instances, "layout", max_instances, f"instances={path}")
    return instances


def draw_layout(video: torch.Tensor, instances: Instances, width: int = 1) -> torch.Tensor:
    """Box outlines over pixels [3, F, H, W] in [-1, 1] (white, 1 px): a check of where each instance was asked."""
    out = video.clone()
    _, f, h, w = out.shape
    for n in range(instances.boxes.shape[0]):
        for t in range(min(f, instances.boxes.shape[1])):
            if not bool(instances.visible[n, t]):
                continue
            x1, y1, x2, y2 = instances.boxes[n, t].tolist()
            left, r = round(x1 * (w - 1)), round(x2 * (w - 1))
            top, bot = round(y1 * (h - 1)), round(y2 * (h - 1))
            out[:, t, top : top + width, left : r + 1] = 1.0
            out[:, t, bot - width + 1 : bot + 1, left : r + 1] = 1.0
            out[:, t, top : bot + 1, left : left + width] = 1.0
            out[:, t, top : bot + 1, r - width + 1 : r + 1] = 1.0
    return out
