"""InstanceBench instance-aware metrics (InstanceV Sec. 5.2, 9.1), shared by the instance-control methods.

- layout IoU per instance, matched by label: the mean over the frames where the ground-truth
  instance is visible of the box IoU between the detection of its prompt and its ground-truth
  box; an instance the detector does not find scores 0 (Sec. 9.1);
- instance CLIP-Score: each ground-truth box cropped from the generated frame, resized to the
  CLIP input size, cosine similarity with the instance prompt, averaged over frames; 0 when the
  instance is not detected (Sec. 9.1);
- their plain mean and the area-weighted mean (weights = ground-truth box area, Table 2).
On the shapes world the detector is exact (``vidgen.data.shapes_segment.detect_prompt``), so the
layout IoU of a generated clip needs no pretrained model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from vidgen.data.shapes_segment import box_iou, detect_prompt


def instance_layout_iou(
    pred_boxes: Tensor, pred_visible: Tensor, gt_boxes: Tensor, gt_visible: Tensor
) -> Tensor:
    """Per-instance IoU [N]: boxes [N, F, 4], visible [N, F]; frames where the GT is absent are skipped."""
    iou = box_iou(pred_boxes, gt_boxes) * pred_visible.float()  # missed detections score 0
    gt = gt_visible.float()
    return (iou * gt).sum(-1) / gt.sum(-1).clamp(min=1)


def box_areas(boxes: Tensor, visible: Tensor) -> Tensor:
    """Mean ground-truth box area [N] over the frames an instance is visible (the area weights)."""
    area = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0).prod(-1) * visible.float()
    return area.sum(-1) / visible.float().sum(-1).clamp(min=1)


def weighted_means(values: Tensor, areas: Tensor) -> tuple[float, float]:
    """(plain mean, area-weighted mean) of per-instance values [M] pooled over all videos."""
    if values.numel() == 0:
        return 0.0, 0.0
    w = areas.float()
    aw = float((values * w).sum() / w.sum()) if float(w.sum()) > 0 else 0.0
    return float(values.mean()), aw


def shapes_layout_records(videos: Sequence[Tensor], samples: Sequence) -> tuple[Tensor, Tensor]:
    """Per-instance layout IoU and ground-truth box area [M] of generated clips [3, F, H, W], in
    (sample, instance) order, so two models' records pair up (benchmarks compare them)."""
    ious, areas = [], []
    for video, sample in zip(videos, samples):
        inst = sample.instances
        n_frames = min(video.shape[1], inst.boxes.shape[1])
        for k, prompt in enumerate(inst.prompts):
            _, boxes, visible = detect_prompt(video[:, :n_frames].float().clamp(-1, 1), prompt)
            gt_b, gt_v = inst.boxes[k, :n_frames], inst.visible[k, :n_frames]
            ious.append(instance_layout_iou(boxes[None], visible[None], gt_b[None], gt_v[None]))
            areas.append(box_areas(gt_b[None], gt_v[None]))
    return (torch.cat(ious) if ious else torch.zeros(0)), (torch.cat(areas) if areas else torch.zeros(0))


def shapes_layout_metrics(videos: Sequence[Tensor], samples: Sequence) -> dict[str, float]:
    """Layout IoU (mean, area-weighted) of generated clips [3, F, H, W] against their samples' instances."""
    mean, aw = weighted_means(*shapes_layout_records(videos, samples))
    return {"layout_iou": mean, "layout_iou_aw": aw}


def crop_boxes(frames: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Crop normalised xyxy boxes [M, 4] from frames [M, 3, H, W] and resize each to size x size."""
    h, w = frames.shape[-2:]
    crops = []
    for frame, (x0, y0, x1, y1) in zip(frames, boxes.tolist()):
        c0, r0 = int(x0 * w), int(y0 * h)
        c1, r1 = max(c0 + 1, round(x1 * w)), max(r0 + 1, round(y1 * h))
        crops.append(
            F.interpolate(
                frame[None, :, r0:r1, c0:c1], size=(size, size), mode="bilinear", align_corners=False
            )
        )
    return torch.cat(crops) if crops else frames.new_zeros(0, 3, size, size)


def _embedding(out) -> Tensor:
    """transformers < 5 returns the projected embedding; 5.x a ``BaseModelOutputWithPooling`` holding it."""
    return out if isinstance(out, Tensor) else out.pooler_output


@torch.no_grad()
def instance_clip_scores(
    model,
    processor,
    video: Tensor,
    boxes: Tensor,
    visible: Tensor,
    prompts: list[str],
    detected: Tensor | None = None,
) -> Tensor:
    """Instance CLIP-Score [N] of one video [3, F, H, W] in [-1, 1] (transformers ``CLIPModel`` from a folder).

    For each instance, the GT box of every frame where it is visible is cropped, CLIP-embedded and
    compared (cosine) with the prompt's text embedding; frames average. ``detected`` [N] bool: an
    instance the detector missed scores 0 (Sec. 9.1).
    """
    size = processor.image_processor.crop_size["height"]
    mean = torch.tensor(processor.image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_processor.image_std).view(1, 3, 1, 1)
    text = processor.tokenizer(prompts, padding=True, return_tensors="pt")
    t = F.normalize(_embedding(model.get_text_features(**text)), dim=-1)  # [N, E]
    scores = []
    for k in range(len(prompts)):
        idx = visible[k].nonzero().flatten()
        if len(idx) == 0:
            scores.append(torch.zeros(()))
            continue
        frames = video[:, idx].transpose(0, 1).float()  # [f, 3, H, W]
        pix = (crop_boxes((frames + 1) / 2, boxes[k, idx], size) - mean) / std
        v = F.normalize(_embedding(model.get_image_features(pixel_values=pix)), dim=-1)  # [f, E]
        scores.append((v @ t[k]).mean())
    out = torch.stack(scores)
    return out * detected.float() if detected is not None else out


class _ClipProcessor:
    """The two halves of a CLIP processor loaded separately (any tokenizer class AutoTokenizer knows)."""

    def __init__(self, image_processor, tokenizer):
        self.image_processor, self.tokenizer = image_processor, tokenizer


def load_clip(path: str, field: str):
    """(CLIPModel, processor) from a local folder (config.json + weights + tokenizer + preprocessor files)."""
    from pathlib import Path

    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    from vidgen.errors import ConfigError

    if not Path(path).is_dir():
        raise ConfigError(
            f"{field}={path!r} is not a folder; give a local CLIP folder (e.g. clip-vit-base-patch32)"
        )
    try:
        model = CLIPModel.from_pretrained(path).eval()
        proc = _ClipProcessor(CLIPImageProcessor.from_pretrained(path), AutoTokenizer.from_pretrained(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{field}={path!r}: cannot load a CLIP model and its processor ({exc})") from exc
    return model, proc


def shapes_clip_metrics(videos: Sequence[Tensor], samples: Sequence, clips: dict) -> dict[str, float]:
    """Instance CLIP-Score (mean, area-weighted) per CLIP model ``{name: (model, processor)}``;
    an instance the exact detector does not find in any frame scores 0 (Sec. 9.1)."""
    out: dict[str, float] = {}
    for name, (model, proc) in clips.items():
        scores, areas = [], []
        for video, sample in zip(videos, samples):
            inst = sample.instances
            f = min(video.shape[1], inst.boxes.shape[1])
            v = video[:, :f].float().clamp(-1, 1)
            found = torch.tensor([bool(detect_prompt(v, p)[2].any()) for p in inst.prompts])
            scores.append(
                instance_clip_scores(
                    model, proc, v, inst.boxes[:, :f], inst.visible[:, :f], inst.prompts, found
                )
            )
            areas.append(box_areas(inst.boxes[:, :f], inst.visible[:, :f]))
        mean, aw = weighted_means(torch.cat(scores), torch.cat(areas))
        out[name], out[f"{name}_aw"] = mean, aw
    return out
