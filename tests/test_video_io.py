"""Video IO (PyAV), clip sampling, resize + centre crop, and local encoder loading."""

from __future__ import annotations

import pytest
import torch

from vidgen.data.video_io import (
    crop_box_transform,
    fit_stride,
    read_video,
    resize_crop,
    resize_crop_masks,
    sample_clip,
    to_model_pixels,
    write_video,
)
from vidgen.errors import DataError


def smooth_clip(frames: int = 9, height: int = 48, width: int = 64) -> torch.Tensor:
    """A smooth moving gradient (compresses well, so the round-trip error is small)."""
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    out = []
    for f in range(frames):
        r = 0.5 + 0.4 * torch.sin(2 * torch.pi * (x + 0.05 * f))
        g = 0.5 + 0.4 * torch.cos(2 * torch.pi * y)
        b = (0.3 + 0.4 * x * y).expand(height, width)
        out.append(torch.stack([r.expand(height, width), g.expand(height, width), b], -1))
    return (torch.stack(out) * 255).round().to(torch.uint8)


def test_round_trip_uint8(tmp_path):
    clip = smooth_clip()
    path = write_video(tmp_path / "a.mp4", clip, fps=12)
    frames, fps = read_video(path)
    assert frames.dtype == torch.uint8
    assert tuple(frames.shape) == (9, 48, 64, 3)
    assert fps == pytest.approx(12.0)
    err = (frames.float() - clip.float()).abs()
    assert err.mean() < 4.0, err.mean()  # yuv420p + limited range: ~3 at crf 18
    assert err.max() < 40


def test_round_trip_float_odd_size_and_partial_reads(tmp_path):
    clip = smooth_clip(frames=10, height=33, width=45)
    video = to_model_pixels(clip)  # [3, F, H, W] in [-1, 1]
    assert video.shape == (3, 10, 33, 45) and video.min() >= -1 and video.max() <= 1
    path = write_video(tmp_path / "odd.mp4", video, fps=8)
    frames, fps = read_video(path)
    assert tuple(frames.shape) == (10, 34, 46, 3)  # padded to even
    assert fps == pytest.approx(8.0)
    assert (frames[:, :33, :45].float() - clip.float()).abs().mean() < 5.0
    part, _ = read_video(path, num_frames=3, stride=3, start=1)  # frames 1, 4, 7
    assert part.shape[0] == 3
    assert (part.float() - frames[1:8:3].float()).abs().max() == 0


def test_unreadable_and_missing_videos(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match="bad.mp4"):
        read_video(bad)
    with pytest.raises(DataError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")


def test_sample_clip_and_fit_stride():
    frames = torch.arange(20)
    assert sample_clip(frames, 5, 3).tolist() == [0, 3, 6, 9, 12]
    assert sample_clip(frames, 4, 2, start=1).tolist() == [1, 3, 5, 7]
    with pytest.raises(ValueError):
        sample_clip(frames, 8, 3)
    assert fit_stride(20, 8, 3) == 2
    assert fit_stride(20, 5, 3) == 3
    assert fit_stride(4, 5, 1) == 0


def test_resize_crop_geometry():
    # landscape 40x80 -> 32x32: scale 0.8 -> 32x64, centre crop left 16 (20 source pixels)
    frames = torch.zeros(2, 40, 80, 3, dtype=torch.uint8)
    frames[:, :, 40:] = 200  # right half bright
    out, original, crop = resize_crop(frames, 32, 32)
    assert out.shape == (2, 32, 32, 3) and out.dtype == torch.uint8
    assert original == (40, 80) and crop == (0, 20)
    assert out[0, :, :14].float().mean() < 5 and out[0, :, 18:].float().mean() > 195
    # portrait -> landscape: width decides
    out, original, crop = resize_crop(torch.zeros(1, 100, 50, 3), 16, 32)
    assert out.shape == (1, 16, 32, 3) and out.dtype == torch.float32
    assert original == (100, 50) and crop == (38, 0)  # resized 64x32, top 24 = 37.5 source rows
    # no-op when already the target size
    same = torch.randint(0, 255, (3, 24, 40, 3), dtype=torch.uint8)
    out, _, crop = resize_crop(same, 24, 40)
    assert torch.equal(out, same) and crop == (0, 0)


def test_boxes_and_masks_follow_the_crop():
    mask = torch.zeros(1, 40, 80, dtype=torch.bool)
    mask[0, 10:30, 40:60] = True  # source box x 0.5..0.75, y 0.25..0.75
    out = resize_crop_masks(mask, 32, 32)
    assert out.shape == (1, 32, 32)
    sx, sy, ox, oy = crop_box_transform((40, 80), 32, 32)
    x1, x2 = 0.5 * sx + ox, 0.75 * sx + ox
    y1, y2 = 0.25 * sy + oy, 0.75 * sy + oy
    ys, xs = torch.nonzero(out[0], as_tuple=True)
    assert xs.min().item() / 32 == pytest.approx(x1, abs=1 / 32)
    assert (xs.max().item() + 1) / 32 == pytest.approx(x2, abs=1 / 32)
    assert ys.min().item() / 32 == pytest.approx(y1, abs=1 / 32)
    assert (ys.max().item() + 1) / 32 == pytest.approx(y2, abs=1 / 32)
