"""Video decoding / encoding with PyAV, clip sampling and resize + centre crop.

Layouts:
- decoded frames: uint8 [F, H, W, 3] (RGB)
- model pixels:   float [3, F, H, W] in [-1, 1]  (see `to_model_pixels` / `from_model_pixels`)
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidgen.errors import DataError


def _open_error(path: Path, exc: Exception) -> DataError:
    return DataError(
        f"cannot read video {path}: {exc}. Check that the file is a complete, valid video "
        f"(e.g. `ffprobe {path}`), or remove it from the annotations."
    )


def read_video(
    path: str | Path, num_frames: int | None = None, stride: int = 1, start: int = 0
) -> tuple[Tensor, float]:
    """Decode frames `start, start+stride, ...` (at most `num_frames`) -> (uint8 [F, H, W, 3], fps).

    Decoding stops as soon as enough frames were read. An unreadable or empty file raises
    `DataError` naming the path.
    """
    import av

    path = Path(path)
    if stride < 1 or start < 0:
        raise ValueError(f"stride must be >= 1 and start >= 0, got stride={stride}, start={start}")
    if not path.is_file():
        raise DataError(f"video file {path} does not exist; check the path (and --videos root).")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path} has no video stream; remove it from the annotations.")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            if num_frames is not None and num_frames <= 0:
                return torch.zeros(0, stream.height, stream.width, 3, dtype=torch.uint8), fps
            for index, frame in enumerate(container.decode(stream)):
                if index < start or (index - start) % stride:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                if num_frames is not None and len(frames) >= num_frames:
                    break
    except DataError:
        raise
    except Exception as exc:  # av.error.FFmpegError, OSError, codec errors
        raise _open_error(path, exc) from exc
    if not frames:
        raise DataError(
            f"no frames decoded from {path} (start={start}); the video is empty or shorter than "
            f"the start frame. Remove it from the annotations."
        )
    return torch.from_numpy(np.stack(frames)), fps


def from_model_pixels(video: Tensor) -> Tensor:
    """float [3, F, H, W] in [-1, 1] -> uint8 [F, H, W, 3]."""
    if video.dim() != 4 or video.shape[0] != 3:
        raise ValueError(f"expected float video [3, F, H, W], got shape {tuple(video.shape)}")
    pixels = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(1, 2, 3, 0).contiguous().cpu()


def to_model_pixels(frames: Tensor) -> Tensor:
    """uint8 [F, H, W, 3] -> float [3, F, H, W] in [-1, 1]."""
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [F, H, W, 3], got shape {tuple(frames.shape)}")
    return frames.permute(3, 0, 1, 2).float().div(127.5).sub(1.0)


def write_video(path: str | Path, frames: Tensor, fps: float = 8, crf: int = 18) -> Path:
    """Write an H.264 mp4 (libx264, yuv420p). Odd sizes are edge-padded to even.

    `frames` is uint8 [F, H, W, 3] or float [3, F, H, W] in [-1, 1] (a leading batch dim of 1
    is accepted for the float layout).
    """
    import av

    path = Path(path)
    if frames.dtype != torch.uint8:
        if frames.dim() == 5 and frames.shape[0] == 1:
            frames = frames[0]
        frames = from_model_pixels(frames)
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [F, H, W, 3], got shape {tuple(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError("cannot write a video with zero frames")
    _, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2
    array = frames.cpu().numpy()
    if pad_h or pad_w:
        array = np.pad(array, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, int) else fps
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width = w + pad_w
        stream.height = h + pad_h
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for image in array:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def fit_stride(total: int, num_frames: int, stride: int) -> int:
    """The largest stride <= `stride` such that `num_frames` frames fit in `total` (0 if none does)."""
    if num_frames <= 1:
        return max(stride, 1) if total >= num_frames else 0
    if total < num_frames:
        return 0
    return max(1, min(stride, (total - 1) // (num_frames - 1)))


def sample_clip(frames: Tensor, num_frames: int, stride: int = 1, start: int = 0) -> Tensor:
    """Frames `start, start+stride, ...` (exactly `num_frames` of them) from [F, ...].

    Raises ValueError when the clip does not fit; use `fit_stride` to choose a stride that does.
    """
    needed = (num_frames - 1) * stride + 1
    if stride < 1 or num_frames < 1:
        raise ValueError(f"num_frames and stride must be >= 1, got {num_frames}, {stride}")
    if start + needed > frames.shape[0]:
        raise ValueError(
            f"clip of {num_frames} frames with stride {stride} from frame {start} needs "
            f"{start + needed} frames, the video has {frames.shape[0]}"
        )
    return frames[start : start + needed : stride]


def resize_crop(frames: Tensor, height: int, width: int) -> tuple[Tensor, tuple[int, int], tuple[int, int]]:
    """Resize the shorter side (keeping aspect) so the frame covers (height, width), centre crop.

    `frames` is [F, H, W, 3] (uint8 or float; the output keeps the dtype).
    Returns (frames [F, height, width, 3], original_size (H, W), crop (top, left)); the crop
    offset is in source-video pixels, as `MicroConditions.crop` records it.
    """
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [F, H, W, 3], got shape {tuple(frames.shape)}")
    _, h, w, _ = frames.shape
    new_h, new_w, top, left, scale = crop_geometry((h, w), height, width)
    x = frames.permute(0, 3, 1, 2).float()
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    x = x[:, :, top : top + height, left : left + width]
    x = x.permute(0, 2, 3, 1)
    if frames.dtype == torch.uint8:
        x = x.round().clamp(0, 255).to(torch.uint8)
    else:
        x = x.to(frames.dtype)
    crop = (int(round(top / scale)), int(round(left / scale)))
    return x.contiguous(), (h, w), crop


def crop_geometry(
    original_size: tuple[int, int], height: int, width: int
) -> tuple[int, int, int, int, float]:
    """(resized_h, resized_w, top, left, scale) used by `resize_crop` (top/left in resized pixels)."""
    h, w = original_size
    scale = max(height / h, width / w)
    new_h = max(height, math.ceil(h * scale - 1e-6))
    new_w = max(width, math.ceil(w * scale - 1e-6))
    return new_h, new_w, (new_h - height) // 2, (new_w - width) // 2, scale


def resize_crop_masks(masks: Tensor, height: int, width: int) -> Tensor:
    """Bool masks [..., H, W] through the same resize + centre crop as `resize_crop` (nearest)."""
    *lead, h, w = masks.shape
    new_h, new_w, top, left, _ = crop_geometry((h, w), height, width)
    x = masks.reshape(-1, 1, h, w).float()
    if x.shape[0] and (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="nearest-exact")
    x = x[:, :, top : top + height, left : left + width]
    return (x > 0.5).reshape(*lead, height, width)


def crop_box_transform(
    original_size: tuple[int, int], height: int, width: int
) -> tuple[float, float, float, float]:
    """(scale_x, scale_y, offset_x, offset_y) mapping normalised source xyxy to the cropped frame.

    A source coordinate u in [0, 1] maps to u * scale + offset in the output frame; used to move
    normalised boxes through `resize_crop`.
    """
    new_h, new_w, top, left, _ = crop_geometry(original_size, height, width)
    return new_w / width, new_h / height, -left / width, -top / height
