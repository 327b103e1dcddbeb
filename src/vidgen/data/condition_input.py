"""Conditioning frames for `vidgen sample image=PATH` / `video=PATH` (STIV TI2V / V2V / TUP).

An image (PNG / JPEG / ..., read with Pillow) is one frame; a video (read with PyAV) gives its first
``count`` frames. The frames must have the video's size (data.height x data.width): no silent
resize, the error names the file, the field and the fix. Returned as pixels [1, 3, K, H, W] in
[-1, 1], the codec's input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vidgen.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def read_image(path: str | Path, field: str = "sample.image") -> Tensor:
    """uint8 [1, H, W, 3] of an image file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{field}={path}: no such file; pass the path of an image (e.g. a .png)")
    try:
        with Image.open(path) as img:
            return torch.from_numpy(np.asarray(img.convert("RGB")).copy())[None]
    except (UnidentifiedImageError, OSError) as err:
        raise ConfigError(f"{field}={path}: not a readable image ({err}); pass a .png or .jpg file") from None


def load_condition_pixels(
    image: str | None, video: str | None, count: int, height: int, width: int
) -> Tensor:
    """Pixels [1, 3, count, H, W] in [-1, 1] from ``image`` (count must be 1) or ``video``."""
    if image and video:
        raise ConfigError("sample.image and sample.video are both set; pass one of them")
    if image:
        field, frames = "sample.image", read_image(image)
        if count != 1:
            raise ConfigError(
                f"sample.image={image}: this model is conditioned on {count} frames; pass them as video=PATH"
            )
    else:
        from vidgen.data.video_io import read_video

        field = "sample.video"
        frames, _ = read_video(video, num_frames=count)
        if frames.shape[0] < count:
            raise ConfigError(
                f"sample.video={video} has {frames.shape[0]} frame(s); this model is conditioned on {count}"
            )
    source = image or video
    if tuple(frames.shape[1:3]) != (height, width):
        raise ConfigError(
            f"{field}={source} is {frames.shape[2]}x{frames.shape[1]} (W x H) but the video is "
            f"{width}x{height} (data.width x data.height); resize the file to {width}x{height} or set "
            f"data.height={frames.shape[1]} data.width={frames.shape[2]}"
        )
    return frames.permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
