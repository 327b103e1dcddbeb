"""data.small_overlap: a small instance on top of a large one in every shapes clip (InstanceV Sec. 4.3)."""

from __future__ import annotations

import pytest
import torch

from vidgen.data.shapes import ShapesWorld
from vidgen.data.shapes_datamodule import ShapesDataModule
from vidgen.data.shapes_layouts import LARGE, SMALL
from vidgen.data.shapes_segment import box_iou, detect_prompt
from vidgen.errors import ConfigError


def _area(b: torch.Tensor) -> torch.Tensor:
    return (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)


def test_every_clip_has_a_visible_small_instance_inside_a_large_ones_box():
    world = ShapesWorld(9, 64, 64, max_instances=4, seed=0, small_overlap=True)
    for index in range(12):
        clip = world.render_clip(index)
        big, small = clip.boxes[LARGE], clip.boxes[SMALL]  # [F, 4]
        assert len(clip.specs) >= 2 and clip.visible[[LARGE, SMALL]].all()
        assert (_area(small) < _area(big) / 4).all()  # small: under a quarter of the large box
        lo, hi = torch.maximum(big[:, :2], small[:, :2]), torch.minimum(big[:, 2:], small[:, 2:])
        inside = (hi - lo).clamp(min=0).prod(-1) / _area(small)
        assert (inside > 0.9).all()  # the small box lies (almost) inside the large one in every frame
        assert clip.specs[SMALL].depth == max(s.depth for s in clip.specs)  # nearest: never hidden
        colours = [s.colour for s in clip.specs]
        assert colours.count(colours[LARGE]) == 1 and colours.count(colours[SMALL]) == 1
        for k in (LARGE, SMALL):  # the exact detector finds each of the pair alone
            _, boxes, _ = detect_prompt(clip.video, clip.prompts[k])
            assert torch.allclose(box_iou(boxes, clip.boxes[k]), torch.ones(9)), (index, k)
    again = ShapesWorld(9, 64, 64, max_instances=4, seed=0, small_overlap=True).render_clip(3)
    assert torch.equal(again.video, world.render_clip(3).video)  # still a function of (seed, index)


def test_off_by_default_and_bad_max_instances_is_a_config_error():
    plain, overlap = ShapesWorld(9, 64, 64, seed=0), ShapesWorld(9, 64, 64, seed=0, small_overlap=True)
    assert not plain.small_overlap
    assert any(len(plain.render_clip(i).specs) == 1 for i in range(12))  # the default world is unchanged
    assert not torch.equal(plain.render_clip(0).video, overlap.render_clip(0).video)
    with pytest.raises(ConfigError, match=r"data.small_overlap=true .* data.max_instances <= 6 \(got 1\)"):
        ShapesDataModule(num_clips=2, max_instances=1, small_overlap=True)
