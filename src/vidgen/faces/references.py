"""Reference face images -> aligned crops -> facial embeddings (`vidgen sample ids=[a.png, ...]`).

`reference_faces(paths, extractor, detector, crop_size, max_ids)` is what a method's sampling
calls: one image per ID, the largest detected face of each is cropped and aligned, and the
extractor encodes the crops. Without a detector the images are taken as aligned crops already
(the shapes world's `face_crops`, or crops made offline) and only resized.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from vidgen.errors import ConfigError, DataError
from vidgen.faces.align import align_face
from vidgen.faces.detect import FaceDetector
from vidgen.faces.extractor import FaceEmbeddings, FacialExtractor


def read_image(path: str | Path) -> Tensor:
    """An RGB image file -> [3, H, W] float in [-1, 1] (DataError naming the file when unreadable)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"reference face image {path} does not exist. Fix: pass existing files in ids=[...]")
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
            pixels = data.view(rgb.height, rgb.width, 3).permute(2, 0, 1)
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"reference face image {path} is not a readable image ({e})") from None
    return pixels.float() / 127.5 - 1


def crop_reference(image: Tensor, detector: FaceDetector | None, crop_size: int, name: str) -> Tensor:
    """The aligned crop [3, S, S] of the first (best) face the detector finds in image [3, H, W]."""
    if detector is None:
        return F.interpolate(image[None].float(), size=(crop_size, crop_size), mode="bilinear")[0]
    found = detector.detect(image)
    if not found:
        raise DataError(
            f"no face detected in reference image {name}. Fix: give a photo with one clearly visible face"
        )
    return align_face(image, found[0], crop_size)


def reference_faces(
    paths: list[str | Path],
    extractor: FacialExtractor,
    detector: FaceDetector | None,
    crop_size: int,
    max_ids: int,
) -> tuple[Tensor, FaceEmbeddings]:
    """(crops [N, 3, S, S] in [-1, 1], embeddings) of N reference images, one ID each, in order."""
    if not paths:
        raise ConfigError("ids=[] is empty: give one reference face image per identity, ids=[a.png,b.png]")
    if len(paths) > max_ids:
        raise ConfigError(
            f"ids has {len(paths)} reference images, more than the configured maximum of {max_ids} IDs. "
            f"Fix: pass at most {max_ids} images or raise the method's max_ids (and retrain)."
        )
    crops = torch.stack([crop_reference(read_image(p), detector, crop_size, str(p)) for p in paths])
    return crops, extractor(crops)
