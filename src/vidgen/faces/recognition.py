"""ArcFace-style face recognition (Ingredients Sec. 3.1: the face recognition backbone, 512-d).

Real: insightface's antelopev2 `glintr100.onnx` (an IResNet-100 ArcFace) run by onnxruntime,
the runtime insightface itself uses; insightface's own package is not needed for one session
(it would add opencv and scikit-image). Pre-processing as insightface's `ArcFaceONNX.get_feat`:
RGB, 112 x 112, (x - 127.5) / 127.5 = the crop's [-1, 1] values. The output is the raw
embedding, not normalised (Ingredients concatenates it as is).
Tiny: a random-init conv net with the same interface and output width, built from a config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.errors import ConfigError

ARCFACE_FILE = "glintr100.onnx"  # antelopev2
ARCFACE_DIM = 512


def _resize(crops: Tensor, size: int) -> Tensor:
    if crops.shape[-1] == size and crops.shape[-2] == size:
        return crops.float()
    return F.interpolate(crops.float(), size=(size, size), mode="bilinear", align_corners=False)


class OnnxArcFace(nn.Module):
    """`forward(crops [K, 3, S, S] in [-1, 1])` -> [K, 512] from an ArcFace ONNX model (frozen)."""

    def __init__(self, path: str | Path, input_size: int = 112):
        super().__init__()
        path = Path(path)
        if path.is_dir():
            path = path / ARCFACE_FILE
        if not path.is_file():
            raise ConfigError(
                f"face recognition model {path} is missing. Fix: put insightface's antelopev2 folder "
                f"(with {ARCFACE_FILE}) there, or set the faces size to tiny."
            )
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError(
                f"face recognition model {path} needs onnxruntime: pip install 'vidgen[faces]'"
            ) from None
        self.path, self.input_size = path, input_size
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, crops: Tensor) -> Tensor:
        x = _resize(crops, self.input_size).detach().cpu().numpy()
        out = self.session.run(None, {self.input_name: x})[0]
        return torch.from_numpy(out).float().to(crops.device)  # [K, 512]


@dataclass(frozen=True)
class TinyRecognitionConfig:
    input_size: int = 32
    channels: tuple[int, ...] = (16, 32)
    embed_dim: int = ARCFACE_DIM


class TinyRecognition(nn.Module):
    """Random-init stand-in for ArcFace: strided convs, global pool, linear to 512."""

    def __init__(self, cfg: TinyRecognitionConfig = TinyRecognitionConfig()):
        super().__init__()
        self.cfg = cfg
        layers, c_in = [], 3
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.PReLU(c)]
            c_in = c
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c_in, cfg.embed_dim)

    def forward(self, crops: Tensor) -> Tensor:
        return self.fc(self.body(_resize(crops, self.cfg.input_size)))  # [K, 512]


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise cosine similarity of [K, D] embeddings -> [K]."""
    return F.cosine_similarity(a.float(), b.float(), dim=-1)


def load_recognition(source: str | None) -> nn.Module:
    """`"tiny"` -> TinyRecognition (seeded by the caller); a path -> OnnxArcFace."""
    if source in (None, "tiny"):
        return TinyRecognition()
    return OnnxArcFace(source)


__all__ = ["OnnxArcFace", "TinyRecognition", "TinyRecognitionConfig", "cosine", "load_recognition"]
