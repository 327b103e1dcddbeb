"""CLIP metrics on local weights: CLIPScore / CLIP-T and temporal consistency.

- CLIPScore (Hessel et al. 2021) = max(100 · cos(E_img, E_txt), 0), torchmetrics ``CLIPScore`` with the
  model and processor of a local transformers CLIP folder; a video scores the mean over its frames
  (Ingredients' "CLIP-T"/"CLIPScore", InstanceV's CLIP-B / CLIP-L columns).
- Temporal consistency = mean cosine of the CLIP image embeddings of consecutive frames (InstanceV
  Table 2/3 "Temporal"), in [−1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidgen.eval.frechet import to_uint8_frames
from vidgen.eval.weights import require_path

CLIP_FILES = (
    "a transformers CLIP folder (config.json, model.safetensors, tokenizer and preprocessor_config.json)"
)


class _Processor:
    """``processor(text=... | images=...)`` as torchmetrics calls it, from the folder's two halves."""

    def __init__(self, image_processor, tokenizer):
        self.image_processor, self.tokenizer = image_processor, tokenizer

    def __call__(self, text=None, images=None, return_tensors="pt", padding=True):
        if text is not None:
            return self.tokenizer(text, return_tensors=return_tensors, padding=padding, truncation=True)
        return self.image_processor(images=images, return_tensors=return_tensors)


class _Features(torch.nn.Module):
    """A CLIPModel whose ``get_*_features`` return the projected tensor (transformers 5 returns an output
    object holding it as ``pooler_output``; torchmetrics expects the tensor)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def get_image_features(self, *args, **kwargs) -> Tensor:
        out = self.model.get_image_features(*args, **kwargs)
        return out if isinstance(out, Tensor) else out.pooler_output

    def get_text_features(self, *args, **kwargs) -> Tensor:
        out = self.model.get_text_features(*args, **kwargs)
        return out if isinstance(out, Tensor) else out.pooler_output


def load_clip(path: str | None, key: str, metric: str = "CLIPScore"):
    """(model, processor) from a local CLIP folder; a missing folder names ``metric`` and ``key``."""
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    from vidgen.errors import ConfigError

    folder = require_path(metric, key, path, CLIP_FILES)
    try:
        model = CLIPModel.from_pretrained(folder).eval().requires_grad_(False)
        proc = _Processor(CLIPImageProcessor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{metric}: {key}={str(folder)!r} is not {CLIP_FILES} ({exc})") from None
    return _Features(model), proc


def clip_score_metric(model, processor):
    """torchmetrics ``CLIPScore`` over an already loaded local model."""
    from torchmetrics.multimodal.clip_score import CLIPScore

    return CLIPScore(model_name_or_path=lambda: (model, processor))


def update_clip_score(metric, video: Tensor, prompt: str) -> None:
    """Adds every frame of ``video`` [3, F, H, W] in [-1, 1] paired with ``prompt``."""
    frames = to_uint8_frames(video)
    metric.update(list(frames), [prompt] * len(frames))


@torch.no_grad()
def temporal_consistency(model, processor, video: Tensor) -> float:
    """Mean cos(E(f_i), E(f_{i+1})) over consecutive frames of ``video`` [3, F, H, W] in [-1, 1] (F >= 2)."""
    frames = to_uint8_frames(video)
    pixels = processor(images=list(frames))["pixel_values"]
    emb = F.normalize(model.get_image_features(pixel_values=pixels).float(), dim=-1)  # [F, E]
    return float((emb[:-1] * emb[1:]).sum(-1).mean())
