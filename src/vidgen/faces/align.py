"""Face detection results and Crop-and-Align (Ingredients Sec. 3.3: "Crop-and-Align operations are
applied to isolate the facial regions"; the released code aligns with facexlib's
FaceRestoreHelper: a similarity transform of the 5 landmarks onto its 512 x 512 template)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# facexlib FaceRestoreHelper.face_template (face_size 512): eyes, nose tip, mouth corners (x, y).
FACE_TEMPLATE_512 = (
    (192.98138, 239.94708),
    (318.90277, 240.1936),
    (256.63416, 314.01935),
    (201.26117, 371.41043),
    (313.08905, 371.15118),
)
# facexlib warps with cv2.BORDER_CONSTANT, borderValue (135, 133, 132) (BGR) -> RGB in [-1, 1].
BORDER_RGB = tuple(v / 127.5 - 1 for v in (132, 133, 135))


@dataclass
class FaceDetection:
    box: Tensor  # [4] xyxy in pixels
    score: float
    landmarks: Tensor | None = None  # [5, 2] (x, y) pixels: left eye, right eye, nose, mouth corners


def similarity_transform(src: Tensor, dst: Tensor) -> Tensor:
    """Least-squares similarity [2, 3] mapping src [P, 2] onto dst [P, 2] (rotation, scale, shift)."""
    src, dst = src.double(), dst.double()
    x, y = src[:, 0], src[:, 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    # [a, b, tx, ty]: u = a x - b y + tx, v = b x + a y + ty
    rows = torch.cat([torch.stack([x, -y, one, zero], 1), torch.stack([y, x, zero, one], 1)])
    a, b, tx, ty = torch.linalg.lstsq(rows, torch.cat([dst[:, 0], dst[:, 1]])[:, None]).solution[:, 0]
    return torch.stack([torch.stack([a, -b, tx]), torch.stack([b, a, ty])]).float()


def warp_affine(image: Tensor, matrix: Tensor, size: int, border: tuple[float, ...] = BORDER_RGB) -> Tensor:
    """cv2.warpAffine(image, matrix, (size, size)) for image [3, H, W]: bilinear, constant border."""
    _, h, w = image.shape
    inv = torch.linalg.inv(torch.cat([matrix.double(), matrix.new_tensor([[0, 0, 1]]).double()]))[:2]
    ys, xs = torch.meshgrid(torch.arange(size).double(), torch.arange(size).double(), indexing="ij")
    src = inv @ torch.stack([xs.flatten(), ys.flatten(), torch.ones(size * size).double()])  # [2, P]
    grid = torch.stack([(src[0] + 0.5) / w * 2 - 1, (src[1] + 0.5) / h * 2 - 1], -1).view(1, size, size, 2)
    fill = torch.tensor(border, dtype=torch.float32).view(3, 1, 1)
    padded = torch.cat([image.float(), torch.ones(1, h, w)])  # validity channel marks the border
    out = F.grid_sample(
        padded[None], grid.float(), mode="bilinear", padding_mode="zeros", align_corners=False
    )[0]
    return out[:3] + (1 - out[3:]) * fill


def align_face(image: Tensor, detection: FaceDetection, size: int) -> Tensor:
    """The aligned crop [3, size, size] of one detection in image [3, H, W] (values as the image's).

    With landmarks: facexlib's similarity warp onto its template (scaled to `size`). Without
    (detectors that give only boxes, e.g. the shapes world's): the box's enclosing square, resized.
    """
    if detection.landmarks is not None:
        template = torch.tensor(FACE_TEMPLATE_512) * (size / 512)
        return warp_affine(image, similarity_transform(detection.landmarks, template), size)
    x0, y0, x1, y1 = detection.box.tolist()
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = size / side
    # box corners are pixel edges; the matrix maps pixel centres (cv2's convention)
    tx, ty = size / 2 - 0.5 - scale * (cx - 0.5), size / 2 - 0.5 - scale * (cy - 0.5)
    matrix = torch.tensor([[scale, 0.0, tx], [0.0, scale, ty]])
    return warp_affine(image, matrix, size, border=(0.0, 0.0, 0.0))
