"""InstanceDiffusion's metrics on the shapes world, from its exact detector (data/shapes_segment.py).

The paper detects with YOLOv8m-Det / -Seg on COCO (Tables 1, 4-6) and measures attribute binding
with a colour classifier (Table 2). Here the world's exact colour segmenter is the detector: each
instance prompt's colour gives one detected mask (score 1) whose box and mask are scored against the
input box and mask by pycocotools' ``COCOeval`` (the COCO AP the paper reports; torchmetrics'
``MeanAveragePrecision`` wraps the same code but needs torchvision, which the project does not
install). Colour binding asks whether at least half of the generated pixels inside an instance's
input mask show its prompt's colour.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

from vidgen.data.shapes import COLOURS
from vidgen.data.shapes_segment import colour_of, detect_prompt, segment_colour
from vidgen.eval.instance_metrics import shapes_layout_metrics


def _coco_entry(box: Tensor, mask: Tensor, h: int, w: int) -> dict:
    """Normalised xyxy box + bool mask [H, W] -> COCO bbox (pixel xywh), RLE segmentation, area."""
    x0, y0, x1, y1 = (box.float() * torch.tensor([w, h, w, h])).tolist()
    rle = mask_utils.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return {"bbox": [x0, y0, x1 - x0, y1 - y0], "segmentation": rle, "area": float(mask.sum())}


def coco_records(videos: Sequence[Tensor], samples: Sequence) -> tuple[dict, list[dict]]:
    """(ground truth in COCO's dataset format, detections) of generated images [3, F, H, W] (frame 0)."""
    images, gts, dets = [], [], []
    for i, (video, sample) in enumerate(zip(videos, samples)):
        inst, (_, _, h, w) = sample.instances, video.shape
        images.append({"id": i, "height": h, "width": w})
        for k, prompt in enumerate(inst.prompts):
            if not bool(inst.visible[k, 0]):
                continue
            label = list(COLOURS).index(colour_of(prompt))
            gt_mask = inst.masks[k, 0].bool() if inst.masks is not None else None
            if gt_mask is None or gt_mask.shape != (h, w):
                gt_mask = torch.zeros(h, w, dtype=torch.bool)
            entry = _coco_entry(inst.boxes[k, 0], gt_mask, h, w)
            gts.append({"id": len(gts) + 1, "image_id": i, "category_id": label, "iscrowd": 0, **entry})
            mask, boxes, visible = detect_prompt(video[:, :1].float().clamp(-1, 1), prompt)
            if bool(visible[0]):
                dets.append(
                    {
                        "image_id": i,
                        "category_id": label,
                        "score": 1.0,
                        **_coco_entry(boxes[0], mask[0], h, w),
                    }
                )
    categories = [{"id": j, "name": c} for j, c in enumerate(COLOURS)]
    return {"images": images, "annotations": gts, "categories": categories}, dets


def coco_ap(truth: dict, dets: list[dict], iou_type: str) -> tuple[float, float]:
    """(AP@[.5:.95], AP50) from pycocotools; 0 when nothing was detected."""
    if not dets or not truth["annotations"]:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        gt = COCO()
        gt.dataset = truth
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return max(float(ev.stats[0]), 0.0), max(float(ev.stats[1]), 0.0)


def colour_binding(video: Tensor, sample) -> tuple[int, int]:
    """(instances with at least half of their input mask in their prompt's colour, instances with a mask)."""
    inst = sample.instances
    hit = total = 0
    for k, prompt in enumerate(inst.prompts):
        if not bool(inst.visible[k, 0]) or inst.masks is None or not inst.masks[k, 0].any():
            continue
        region = inst.masks[k, 0].bool()
        shown = segment_colour(video[:, :1].float().clamp(-1, 1), colour_of(prompt))[0]
        hit += int(shown[region].float().mean() >= 0.5)
        total += 1
    return hit, total


def points_in_mask(video: Tensor, sample) -> tuple[int, int]:
    """PiM (Table 1 / 4): (instances whose input point, the box centre, lies in their detected mask, instances)."""
    inst, (_, _, h, w) = sample.instances, video.shape
    hit = total = 0
    for k, prompt in enumerate(inst.prompts):
        if not bool(inst.visible[k, 0]):
            continue
        x0, y0, x1, y1 = inst.boxes[k, 0].tolist()
        row, col = min(int((y0 + y1) / 2 * h), h - 1), min(int((x0 + x1) / 2 * w), w - 1)
        mask = segment_colour(video[:, :1].float().clamp(-1, 1), colour_of(prompt))[0]
        hit += int(mask[row, col])
        total += 1
    return hit, total


def shapes_instance_metrics(videos: Sequence[Tensor], samples: Sequence) -> dict[str, float]:
    """layout_iou(_aw), box_ap(50), mask_ap(50), colour_acc, pim of generated images [3, F, H, W] (frame 0)."""
    out = dict(shapes_layout_metrics(videos, samples))
    truth, dets = coco_records(videos, samples)
    out["box_ap"], out["box_ap50"] = coco_ap(truth, dets, "bbox")
    out["mask_ap"], out["mask_ap50"] = coco_ap(truth, dets, "segm")
    for key, fn in (("colour_acc", colour_binding), ("pim", points_in_mask)):
        hits = [fn(v, s) for v, s in zip(videos, samples)]
        total = sum(t for _, t in hits)
        out[key] = sum(h for h, _ in hits) / total if total else 0.0
    return out
