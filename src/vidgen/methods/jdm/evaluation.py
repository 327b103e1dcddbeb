"""JDM Table 3 (mask quality): the jointly generated mask against a segmentation of the generated video.

Paper protocol (Sec. 4, "Mask Quality Evaluation"): 100 VBench prompts, 50 sampler steps; each
generated video is segmented (a first-frame mask propagated by Grounded-SAM2) and the mask the
model generated with it is scored against that segmentation (IoU, F1, pixel accuracy).

- Prompts: ``method.eval_prompts`` (a text file, one prompt per line, the first
  ``method.eval_samples`` used, default 100 as the paper's VBench prompts), else the global
  captions of the first ``method.eval_samples`` (default 4) clips of the data. Steps: ``method.eval_steps`` (null: ``sample.steps``,
  50 in the paper's experiments). Seeds: ``seed + index`` per video.
- Reference (``mask_*``): ``method.eval_reference_masks`` (a folder written by an external
  segmenter from the generated videos, layout in ``eval.mask_metrics``), else on the shapes world
  the exact segmenter ``data.shapes_segment`` (every colour the prompt names). Real data without
  a reference folder has no ``mask_*`` metric.
- ``source_mask_*`` (not the paper's protocol): the generated mask against the mask of the
  training clip whose caption was the prompt (data captions only).
- ``method.eval_videos``: a folder to write each generated video (``<video_id>.mp4``) and its
  mask (``<video_id>.npz``, key ``masks``) into, for the external segmenter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vidgen.data.shapes import COLOURS
from vidgen.data.shapes_segment import segment_colour
from vidgen.errors import ConfigError, DataError
from vidgen.eval.mask_metrics import (
    binarize,
    compare_with_reference,
    load_reference_masks,
    mask_metrics,
    resize_masks,
)

PAPER_PROMPTS = 100  # Table 3: "100 masks generated from the VBench prompts"
DATA_PROMPTS = 4  # without a prompt file: a quick check on the data's first clips (not the paper's protocol)
_COLOUR_WORDS = re.compile(r"\b(" + "|".join(COLOURS) + r")\b")


@dataclass
class EvalPrompt:
    video_id: str
    text: str  # what the shapes-world segmenter reads (the prompt, or the clip's regional captions)
    text_embeds: Tensor  # [L, D]
    text_mask: Tensor  # [L] bool
    source_mask: Tensor | None = None  # [F, H, W] bool: the training clip's all-objects mask


def read_prompt_file(path: str | Path, limit: int) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"method.eval_prompts={path}: file does not exist; give a text file with one prompt per line"
        )
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise ConfigError(f"method.eval_prompts={path}: no prompts (one prompt per line)")
    return prompts[:limit]


def eval_prompts(method_cfg, datamodule, dataset_samples) -> list[EvalPrompt]:
    """The Table 3 prompts: from ``method.eval_prompts``, else the data's first clips (global caption)."""
    n = method_cfg.eval_samples
    if n is None:
        n = PAPER_PROMPTS if method_cfg.eval_prompts else DATA_PROMPTS
    if n <= 0:
        return []
    if method_cfg.eval_prompts:
        texts = read_prompt_file(method_cfg.eval_prompts, n)
        embeds, mask = datamodule.text_encoder().encode(texts)
        return [EvalPrompt(f"{i:04d}", t, embeds[i].cpu(), mask[i].bool().cpu()) for i, t in enumerate(texts)]
    out = []
    for s in dataset_samples(n):
        regional = " ".join(s.regions.captions) if s.regions is not None else s.caption
        out.append(
            EvalPrompt(
                s.key, regional, s.text_embeds, s.text_mask.bool(), s.extras.get("jdm/masks", [None])[0]
            )
        )
    return out


def segment_named_objects(video: Tensor, text: str) -> Tensor:
    """Shapes world: the union of the pixels of every colour ``text`` names, bool [F, H, W]."""
    colours = sorted(set(_COLOUR_WORDS.findall(text)))
    out = torch.zeros(video.shape[1:], dtype=torch.bool)
    for c in colours:
        out |= segment_colour(video, c)
    return out


def write_generated(folder: str | Path, video_id: str, video: Tensor, mask: Tensor) -> None:
    """``<folder>/<video_id>.mp4`` (video [3, F, H, W] in [-1, 1]) and ``<video_id>.npz`` (masks)."""
    import os

    from vidgen.data.video_io import from_model_pixels, write_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_video(folder / f"{video_id}.mp4", from_model_pixels(video.cpu()))
    tmp = folder / f".{video_id}.tmp-{os.getpid()}.npz"
    np.savez_compressed(tmp, masks=mask.cpu().numpy())
    os.replace(tmp, folder / f"{video_id}.npz")


def score(
    prompts: list[EvalPrompt],
    videos: Tensor,
    masks: Tensor,
    reference_dir: str | None,
    shapes_world: bool,
) -> dict[str, float]:
    """Table 3 metrics of generated ``videos [N, 3, F, H, W]`` and ``masks [N, F, H, W]`` (see module doc)."""
    out: dict[str, float] = {}
    generated = {p.video_id: m for p, m in zip(prompts, masks)}
    if reference_dir:
        try:
            reference = load_reference_masks(reference_dir)
            out.update(compare_with_reference(generated, reference))
        except (FileNotFoundError, ValueError) as err:
            raise DataError(
                f"method.eval_reference_masks={reference_dir}: {err}. Fix: segment the generated videos "
                "(method.eval_videos) with the external segmenter and name each entry by its video id."
            ) from None
    elif shapes_world:
        reference = torch.stack([segment_named_objects(v, p.text) for v, p in zip(videos, prompts)])
        out.update(mask_metrics(masks, reference))
    sources = [p.source_mask for p in prompts]
    if sources and all(s is not None for s in sources):
        target = torch.stack([s.bool() for s in sources])
        pred = resize_masks(masks, tuple(target.shape[-2:]))
        n = min(pred.shape[1], target.shape[1])
        out.update({f"source_{k}": v for k, v in mask_metrics(pred[:, :n], target[:, :n]).items()})
    return out


__all__ = ["EvalPrompt", "binarize", "eval_prompts", "score", "segment_named_objects", "write_generated"]
