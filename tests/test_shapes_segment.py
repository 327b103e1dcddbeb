"""The shapes-world segmenter returns rendered masks exactly and tolerates generation noise."""

import pytest
import torch

from vidgen.data.shapes import ShapesWorld, masks_to_boxes
from vidgen.data.shapes_segment import box_iou, colour_of, detect_prompt, segment_colour


def _unique_colour_instances(clip):
    colours = [s.colour for s in clip.specs]
    return [i for i, c in enumerate(colours) if colours.count(c) == 1]


def test_segment_is_exact_on_rendered_clips():
    world = ShapesWorld(frames=4, height=32, width=32, max_instances=3, seed=3, face_prob=0.0, min_faces=0)
    checked = 0
    for index in range(12):
        clip = world.render_clip(index)
        for i in _unique_colour_instances(clip):
            mask, boxes, visible = detect_prompt(clip.video, clip.prompts[i])
            assert torch.equal(mask, clip.masks[i]), (index, i)
            assert torch.equal(visible, clip.visible[i])
            assert torch.allclose(boxes, clip.boxes[i])
            checked += 1
    assert checked >= 12


def test_segment_tolerates_noise():
    world = ShapesWorld(frames=4, height=32, width=32, max_instances=2, seed=5, face_prob=0.0, min_faces=0)
    clip = world.render_clip(0)
    i = _unique_colour_instances(clip)[0]
    noisy = clip.video + 0.08 * torch.randn(clip.video.shape, generator=torch.Generator().manual_seed(0))
    mask = segment_colour(noisy, clip.specs[i].colour)
    inter = (mask & clip.masks[i]).sum()
    union = (mask | clip.masks[i]).sum()
    assert inter / union > 0.95


def test_box_iou_by_hand():
    a = torch.tensor([0.0, 0.0, 0.5, 0.5])
    b = torch.tensor([0.25, 0.25, 0.75, 0.75])
    assert box_iou(a, b).item() == pytest.approx(0.0625 / (0.25 + 0.25 - 0.0625))
    assert box_iou(torch.zeros(4), torch.zeros(4)).item() == 0.0
    boxes, _ = masks_to_boxes(torch.ones(1, 4, 4, dtype=torch.bool))
    assert box_iou(boxes[0], torch.tensor([0.0, 0.0, 1.0, 1.0])).item() == 1.0


def test_errors_name_the_colour():
    with pytest.raises(ValueError, match="no shapes-world colour"):
        colour_of("a purple blob")
    with pytest.raises(ValueError, match="unknown shapes-world colour 'purple'"):
        segment_colour(torch.zeros(3, 1, 4, 4), "purple")
