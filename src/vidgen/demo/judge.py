"""Judge generated shapes-world clips with the world's exact detector (JDM Table 3 protocol, demo scale).

For each clip of the demo set the model generates a video and a mask from the clip's global caption.
- Layout: `vidgen.data.shapes_segment.detect_prompt` finds each captioned flat shape by its colour in
  the *generated video*; its per-frame box is compared with the ground-truth box (box IoU), over the
  frames where the shape is visible. Instances whose colour another instance of the clip shares, and
  faces (textured, so their colour segment is only a lower bound), are not judged.
- Mask: the *generated mask* against the exact all-objects mask (IoU, F1, pixel accuracy,
  `vidgen.eval.mask_metrics`, the columns of JDM Table 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vidgen.data.shapes import ShapesClip
from vidgen.data.shapes_segment import box_iou, detect_prompt
from vidgen.eval.mask_metrics import video_mask_metrics


@dataclass(frozen=True)
class ClipScore:
    index: int  # clip index in the demo set
    caption: str
    judged: tuple[str, ...]  # instance prompts whose box was judged
    box_iou: float | None  # mean over judged instances and their visible frames; None: nothing judgeable
    mask_iou: float
    mask_f1: float
    mask_pixel_acc: float


def judgeable(clip: ShapesClip) -> list[int]:
    """Instances whose colour segment is exactly their mask: flat shapes of a colour unique in the clip."""
    colours = [s.colour for s in clip.specs]
    return [i for i, s in enumerate(clip.specs) if s.identity < 0 and colours.count(s.colour) == 1]


def layout_iou(video: Tensor, clip: ShapesClip, instances: list[int]) -> float | None:
    """Mean box IoU of the detected vs. true boxes of `instances` in `video` [3, F, H, W] (frames truncated)."""
    scores = []
    for i in instances:
        _, boxes, _ = detect_prompt(video, clip.prompts[i])  # boxes [F, 4]
        n = min(boxes.shape[0], clip.boxes.shape[1])
        seen = clip.visible[i, :n]
        if seen.any():
            scores.append(box_iou(boxes[:n], clip.boxes[i, :n])[seen].mean())
    return float(torch.stack(scores).mean()) if scores else None


def judge_clip(video: Tensor, mask: Tensor, clip: ShapesClip) -> ClipScore:
    """Score one generated clip: video [3, F, H, W] in [-1, 1], mask [F, H, W] bool, against `clip`."""
    instances = judgeable(clip)
    truth = clip.masks.any(dim=0)  # [F, H, W]: all objects, = JDM's combination-0 mask
    n = min(mask.shape[0], truth.shape[0])
    m = video_mask_metrics(mask[:n].bool(), truth[:n])
    return ClipScore(
        index=clip.index,
        caption=clip.caption,
        judged=tuple(clip.prompts[i] for i in instances),
        box_iou=layout_iou(video, clip, instances),
        mask_iou=m["mask_iou"],
        mask_f1=m["mask_f1"],
        mask_pixel_acc=m["mask_pixel_acc"],
    )


def summarise(scores: list[ClipScore]) -> dict[str, float]:
    """Means over clips: box_iou (over clips with a judgeable instance), mask_iou, mask_f1, mask_pixel_acc."""
    boxes = [s.box_iou for s in scores if s.box_iou is not None]
    out = {"box_iou": sum(boxes) / len(boxes) if boxes else float("nan")}
    for key in ("mask_iou", "mask_f1", "mask_pixel_acc"):
        out[key] = sum(getattr(s, key) for s in scores) / len(scores)
    return out
