"""Mask quality of generated masks (JDM Table 3): IoU, F1 and pixel accuracy (torchmetrics, binary).

``mask_metrics(pred, target)`` compares boolean masks ``[N, F, H, W]`` (N videos) and returns
``{"mask_iou", "mask_f1", "mask_pixel_acc"}``: each metric is computed over all pixels of one
video (every frame) and then averaged over the N videos, as Table 3 averages over its 100
generated masks. A video whose reference and prediction are both empty scores 1 on every metric
(nothing to find, nothing found); an empty reference with a non-empty prediction scores IoU = F1 = 0.

Reference masks (JDM Table 3: a segmentation of the *generated* video, ``methods/jdm/evaluation.py``)
---------------
- shapes world: the world's exact segmenter applied to the generated video
  (``vidgen.data.shapes_segment``, every colour the prompt names);
- real videos: an external segmenter's masks of the generated videos (the paper: a human-drawn
  first-frame mask propagated by Grounded-SAM2), stored in a folder with one entry per video
  whose name is the generated video's id (``method.eval_videos`` writes ``<video_id>.mp4``)::

      <root>/
        <video_id>.npz            # key "masks": bool/uint8 [F, H, W] (or [H, W] for one frame)
        <video_id>/               # or one PNG per frame, sorted by name:
          00000.png               #   single-channel (or RGB, any channel > 0), non-zero = object
          00001.png
          ...

  ``load_reference_masks(root)`` reads every entry into ``{video_id: Tensor[F, H, W] bool}``.
  Generated masks are compared with them after resizing to the reference resolution with
  ``resize_masks`` (nearest) and truncating both to the shorter frame count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.classification import binary_accuracy, binary_f1_score, binary_jaccard_index

METRIC_NAMES = ("mask_iou", "mask_f1", "mask_pixel_acc")


def _as_batch(masks: Tensor) -> Tensor:
    masks = torch.as_tensor(masks)
    if masks.dim() == 3:  # one video [F, H, W]
        masks = masks[None]
    if masks.dim() != 4:
        raise ValueError(f"masks must be [N, F, H, W] or [F, H, W], got {tuple(masks.shape)}")
    return masks.bool()


def video_mask_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    """The three metrics of one video's masks (any equal shapes, e.g. [F, H, W])."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and reference {tuple(target.shape)} differ in shape")
    p, t = pred.reshape(-1).long(), target.reshape(-1).long()
    if not t.any() and not p.any():
        return {"mask_iou": 1.0, "mask_f1": 1.0, "mask_pixel_acc": 1.0}
    return {
        "mask_iou": float(binary_jaccard_index(p, t)),
        "mask_f1": float(binary_f1_score(p, t)),
        "mask_pixel_acc": float(binary_accuracy(p, t)),
    }


def mask_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Mean over videos of IoU, F1 and pixel accuracy of boolean masks [N, F, H, W]."""
    pred, target = _as_batch(pred), _as_batch(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and reference {tuple(target.shape)} differ in shape")
    per_video = [video_mask_metrics(p, t) for p, t in zip(pred, target)]
    return {k: float(np.mean([m[k] for m in per_video])) for k in METRIC_NAMES}


def binarize(decoded: Tensor, threshold: float = 0.0) -> Tensor:
    """Decoded mask videos [..., 3, F, H, W] in [-1, 1] (white = object) -> bool [..., F, H, W]."""
    return decoded.float().mean(dim=-4) > threshold


def resize_masks(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of bool masks [..., H, W] to ``size`` (H, W)."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks.bool()
    lead = masks.shape[:-2]
    flat = masks.reshape(-1, 1, *masks.shape[-2:]).float()
    out = F.interpolate(flat, size=tuple(size), mode="nearest")
    return out.reshape(*lead, *size) > 0.5


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    arr = np.asarray(Image.open(path))
    return arr.any(axis=-1) if arr.ndim == 3 else arr > 0


def load_reference_masks(root: str | Path) -> dict[str, Tensor]:
    """Read a reference-mask folder (layout in the module docstring) into {video_id: bool [F, H, W]}."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"reference mask folder {root} does not exist")
    out: dict[str, Tensor] = {}
    for entry in sorted(root.iterdir()):
        if entry.suffix == ".npz":
            with np.load(entry) as data:
                if "masks" not in data:
                    raise ValueError(f"{entry}: expected an array named 'masks' [F, H, W]")
                arr = np.asarray(data["masks"]).astype(bool)
            out[entry.stem] = torch.from_numpy(arr if arr.ndim == 3 else arr[None])
        elif entry.is_dir():
            frames = sorted(entry.glob("*.png"))
            if frames:
                out[entry.name] = torch.from_numpy(np.stack([_read_png(f) for f in frames]))
    return out


def compare_with_reference(generated: dict[str, Tensor], reference: dict[str, Tensor]) -> dict[str, float]:
    """Metrics of generated masks {video_id: bool [F, H, W]} against a loaded reference folder.

    Only videos present in both are scored (resized to the reference, frames truncated to the
    shorter of the two); raises if none match."""
    keys = sorted(set(generated) & set(reference))
    if not keys:
        raise ValueError("no generated video has a reference mask (match the file stems)")
    per_video = []
    for k in keys:
        ref = reference[k].bool()
        gen = resize_masks(generated[k].bool(), tuple(ref.shape[-2:]))
        n = min(gen.shape[0], ref.shape[0])
        per_video.append(video_mask_metrics(gen[:n], ref[:n]))
    return {m: float(np.mean([v[m] for v in per_video])) for m in METRIC_NAMES}
