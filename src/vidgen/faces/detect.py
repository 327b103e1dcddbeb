"""Face detectors: `detect(image [3, H, W] in [-1, 1]) -> list[FaceDetection]`, best first.

- `ShapesFaceDetector`: exact on the shapes world. A face there is a disc whose skin is one of
  the identity table's skin colours and which carries dark eyes / mouth; each identity's skin
  colour is distinct, so one box per skin colour present together with dark feature pixels.
  The box is the disc's bounding square (the skin's width; the hair band sits on top).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from vidgen.data.shapes import COLOURS, IDENTITIES
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
