"""The shapes world's text-faithfulness and motion reading (vidgen.data.shapes_faithfulness)."""

from __future__ import annotations

import math

import pytest
import torch

from vidgen.data.shapes import BACKGROUNDS, COLOURS, ShapesWorld
from vidgen.data.shapes_faithfulness import MIN_AREA, displacement, faithfulness


def rgb(name: str) -> torch.Tensor:
    return torch.tensor({**COLOURS, **BACKGROUNDS}[name]).view(3, 1, 1, 1) * 2 - 1


@pytest.fixture(scope="module")
def clip():
    world = ShapesWorld(4, 64, 64, max_instances=1, seed=0, face_prob=0.0, min_faces=0)
    return world.render_clip(1)


def square_clip(clip, step: int = 3):
    """`clip`'s caption over a synthetic video: a 10 x 10 square of its colour moving `step` px right."""
    video = rgb(clip.background).expand(3, 4, 64, 64).clone()
    for f in range(4):
        video[:, f, 20:30, 10 + step * f : 20 + step * f] = rgb(clip.specs[0].colour)[:, 0]
    return video


def test_rendered_clip_is_faithful(clip):
    r = faithfulness(clip.video, clip)
    assert (r.colours_found, r.no_stray, r.background_ok, r.faithful) == (True, True, True, True)
    assert r.centres[0].shape == (4, 2) and not r.centres[0].isnan().any()


def test_each_part_can_fail(clip):
    video = square_clip(clip)
    assert faithfulness(video, clip).faithful
    stray = next(c for c in COLOURS if c != clip.specs[0].colour)
    extra = video.clone()
    extra[:, :, 50:54, 50:54] = rgb(stray)  # 16 px of an uncaptioned colour in every frame
    r = faithfulness(extra, clip)
    assert r.colours_found and r.background_ok and not r.no_stray and not r.faithful
    extra[:, :, 50, 50] = rgb(clip.background)[:, :, 0, 0]  # 15 px: under MIN_AREA, not counted
    assert faithfulness(extra, clip).faithful
    other_bg = next(b for b in BACKGROUNDS if b != clip.background)
    wrong_bg = torch.where((video == rgb(clip.background)).all(0, keepdim=True), rgb(other_bg), video)
    r = faithfulness(wrong_bg, clip)
    assert r.colours_found and r.no_stray and not r.background_ok and not r.faithful
    r = faithfulness(rgb(clip.background).expand(3, 4, 64, 64), clip)
    assert not r.colours_found and r.centres[0].isnan().all() and not r.faithful


def test_half_the_frames_decide(clip):
    video = square_clip(clip)
    video[:, 2:] = rgb(clip.background)  # the shape in frames 0-1 only: still half
    assert faithfulness(video, clip).colours_found
    video[:, 1] = rgb(clip.background)[:, 0]
    assert not faithfulness(video, clip).colours_found


def test_displacement_of_a_translated_square(clip):
    assert MIN_AREA <= 100
    centres = faithfulness(square_clip(clip, step=3), clip).centres
    assert torch.allclose(centres[0][:, 0], torch.tensor([15.0, 18.0, 21.0, 24.0]))
    assert displacement(centres) == pytest.approx(3.0)
    gap = centres[0].clone()
    gap[1] = float("nan")  # pairs with an absent frame are skipped: only (2, 3) remains
    assert displacement([gap]) == pytest.approx(3.0)
    assert math.isnan(displacement([torch.full((4, 2), float("nan"))]))


def test_bad_video_shape(clip):
    with pytest.raises(ValueError, match=r"expected a video \[3, F, H, W\]"):
        faithfulness(clip.video[0], clip)
