"""Face detectors: `detect(image [3, H, W] in [-1, 1]) -> list[FaceDetection]`, best first.

- `ScrfdDetector`: insightface's SCRFD (antelopev2 folder) by onnxruntime, boxes + 5 landmarks.

- `ShapesFaceDetector`: exact on the shapes world. A face there is a disc whose skin is one of
  the identity table's skin colours and which carries dark eyes / mouth; each identity's skin
  colour is distinct, so one box per skin colour present together with dark feature pixels.
  The box is the disc's bounding square (the skin's width; the hair band sits on top).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from vidgen.data.shapes import COLOURS, IDENTITIES
from vidgen.errors import ConfigError
from vidgen.faces.align import FaceDetection

# PNG round trip quantises to 1/255: colours match within this tolerance (in [-1, 1] units).
_TOL = 2.5 / 255


class FaceDetector(Protocol):
    def detect(self, image: Tensor) -> list[FaceDetection]: ...


class ShapesFaceDetector:
    """Exact face detector of the shapes world (no landmarks: faces are axis-aligned discs)."""

    min_pixels = 4

    def detect(self, image: Tensor) -> list[FaceDetection]:
        image = image.float()
        dark = (image - (0.02 * 2 - 1)).abs().amax(0) <= _TOL  # eyes and mouth: 0.02 in [0, 1]
        found = []
        for ident in IDENTITIES:
            skin = torch.tensor(COLOURS[ident.skin]).view(3, 1, 1) * 2 - 1
            mask = (image - skin).abs().amax(0) <= _TOL
            if int(mask.sum()) < self.min_pixels:
                continue
            ys, xs = mask.nonzero(as_tuple=True)
            x0, x1, y1 = float(xs.min()), float(xs.max()) + 1, float(ys.max()) + 1
            side = x1 - x0
            y0 = y1 - side
            inside = dark[max(int(y0), 0) : int(y1), int(x0) : int(x1)]
            if not bool(inside.any()):
                continue  # a plain disc of that colour, not a face
            found.append((int(mask.sum()), FaceDetection(torch.tensor([x0, y0, x1, y1]), 1.0)))
        return [d for _, d in sorted(found, key=lambda t: -t[0])]


SCRFD_FILES = ("scrfd_10g_bnkps.onnx", "det_10g.onnx")  # insightface antelopev2 / buffalo_l


class ScrfdDetector:
    """insightface's SCRFD face detector (boxes + 5 landmarks) run by onnxruntime.

    The released Ingredients code detects with facexlib's RetinaFace-R50, which needs torchvision
    (its wheel replaces the CPU torch); SCRFD ships in the same antelopev2 folder as the ArcFace
    model. Decoding follows insightface's `SCRFD.detect`: letterbox into `input_size` (top-left,
    zero padding), (RGB - 127.5) / 128, strides 8/16/32 with 2 anchors per cell, distance boxes
    and landmarks, score threshold 0.5, NMS IoU 0.4 (insightface's +1 pixel areas). Best score first.
    """

    strides = (8, 16, 32)
    anchors = 2

    def __init__(self, path: str | Path, input_size: int = 640, threshold: float = 0.5, nms: float = 0.4):
        path = Path(path)
        if path.is_dir():
            path = next((path / f for f in SCRFD_FILES if (path / f).is_file()), path / SCRFD_FILES[0])
        if not path.is_file():
            raise ConfigError(
                f"face detector model {path} is missing. Fix: put insightface's antelopev2 folder "
                f"(with {SCRFD_FILES[0]}) there."
            )
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.size, self.threshold, self.nms = input_size, threshold, nms

    def _letterbox(self, image: Tensor) -> tuple[Tensor, float]:
        _, h, w = image.shape
        if h / w > 1.0:
            new_h, new_w = self.size, int(self.size * w / h)
        else:
            new_w, new_h = self.size, int(self.size * h / w)
        pixels = (image.float() + 1) * 127.5  # RGB in [0, 255]
        resized = F.interpolate(pixels[None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
        canvas = torch.zeros(3, self.size, self.size)
        canvas[:, :new_h, :new_w] = resized
        return (canvas - 127.5) / 128.0, new_h / h

    def detect(self, image: Tensor) -> list[FaceDetection]:
        blob, scale = self._letterbox(image)
        outs = [
            torch.from_numpy(o).float() for o in self.session.run(None, {self.input_name: blob[None].numpy()})
        ]
        outs = [o[0] if o.dim() == 3 else o for o in outs]  # batched exports: [1, N, C]
        n = len(self.strides)
        scores, boxes, kps = [], [], []
        for i, stride in enumerate(self.strides):
            cells = self.size // stride
            ys, xs = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
            centres = (torch.stack([xs, ys], -1).reshape(-1, 1, 2) * stride).expand(-1, self.anchors, 2)
            centres = centres.reshape(-1, 2).float()  # [cells^2 * anchors, 2] (x, y)
            d = outs[i + n] * stride
            boxes.append(torch.cat([centres - d[:, :2], centres + d[:, 2:]], -1))
            kps.append(centres[:, None] + (outs[i + 2 * n] * stride).view(-1, 5, 2))
            scores.append(outs[i][:, 0])
        score, box, lmk = torch.cat(scores), torch.cat(boxes) / scale, torch.cat(kps) / scale
        keep = score >= self.threshold
        score, box, lmk = score[keep], box[keep], lmk[keep]
        order = _nms(box, score, self.nms)
        return [FaceDetection(box[i], float(score[i]), lmk[i]) for i in order]


def _nms(boxes: Tensor, scores: Tensor, iou: float) -> list[int]:
    """insightface's greedy NMS (areas with +1 pixel), indices best first."""
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    order, keep = scores.argsort(descending=True).tolist(), []
    while order:
        i, rest = order[0], torch.tensor(order[1:], dtype=torch.long)
        keep.append(i)
        if not len(rest):
            break
        lt = torch.maximum(boxes[i, :2], boxes[rest, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = (rb - lt + 1).clamp(min=0).prod(-1)
        ovr = inter / (areas[i] + areas[rest] - inter)
        order = rest[ovr <= iou].tolist()
    return keep
