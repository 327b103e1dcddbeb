"""data.background_ramp: a background that says where a pixel is (off by default: the flat world)."""

from __future__ import annotations

import pytest
import torch

from vidgen.backbones import get_backbone
from vidgen.config import load_config
from vidgen.data.shapes import BACKGROUNDS, ShapesWorld
from vidgen.data.shapes_segment import detect_prompt
from vidgen.errors import ConfigError
from vidgen.train import build_datamodule


def test_ramp_adds_red_across_and_blue_down_and_nothing_else():
    flat = ShapesWorld(3, 32, 32, seed=0).render_clip(2)
    ramp = ShapesWorld(3, 32, 32, seed=0, background_ramp=0.2).render_clip(2)
    bg = ~flat.masks.any(0)  # background pixels, [F, H, W]
    assert torch.equal(flat.masks, ramp.masks) and flat.caption == ramp.caption
    assert torch.equal(flat.video[:, ~bg], ramp.video[:, ~bg])  # shapes untouched
    base = torch.tensor(BACKGROUNDS[flat.background]) * 2 - 1
    assert torch.equal(flat.video[:, bg], base[:, None].expand(3, int(bg.sum())))  # default: flat, as before
    delta = ramp.video - flat.video
    x = (torch.arange(32) + 0.5) / 32 - 0.5
    assert torch.allclose(delta[0][bg], (0.4 * x).expand(3, 32, 32)[bg])  # red: columns, 2 x 0.2 in [-1, 1]
    assert torch.allclose(delta[2][bg], (0.4 * x).view(32, 1).expand(3, 32, 32)[bg])  # blue: rows
    assert torch.equal(delta[1], torch.zeros_like(delta[1]))


def test_ramp_keeps_the_exact_detector_exact():
    world = ShapesWorld(1, 64, 64, seed=0, background_ramp=0.5, face_prob=0.0, min_faces=0)
    for i in range(8):
        clip = world.render_clip(i)
        for spec in clip.specs:
            mask, _, _ = detect_prompt(clip.video, spec.prompt)
            assert not (mask & ~clip.masks.any(0)).any()  # no background pixel taken for a shape


def test_background_ramp_is_a_data_key_with_a_clean_error():
    sd = get_backbone("sd1.5")
    dm = build_datamodule(load_config(["exp=ft_sd15", "preset=smoke", "data.background_ramp=0.2"]), sd)
    assert dm.world.background_ramp == 0.2
    assert build_datamodule(load_config(["exp=ft_sd15", "preset=smoke"]), sd).world.background_ramp == 0.0
    with pytest.raises(ConfigError, match="background_ramp"):
        load_config(["exp=ft_sd15", "preset=smoke", "data.background_ramp=0.9"])
