"""Faces found in a shapes-world generation and greedily matched to the references (no positions)."""

import pytest
import torch

from vidgen.data.shapes import BACKGROUNDS, COLOURS, IDENTITIES, ShapesWorld
from vidgen.data.shapes_face_detect import component_labels, matched_identity
from vidgen.errors import ConfigError
from vidgen.eval.face_metrics import shapes_identity_accuracy, shapes_matched_identity


def _paint(boxes: list[tuple[int, tuple[int, int, int, int]]], background: str = "black") -> torch.Tensor:
    """A 1-frame 16 x 32 video: background plus rectangles (identity, (y0, y1, x0, x1)) of that skin."""
    video = (torch.tensor(BACKGROUNDS[background]) * 2 - 1).view(3, 1, 1, 1).repeat(1, 1, 16, 32)
    for identity, (y0, y1, x0, x1) in boxes:
        video[:, 0, y0:y1, x0:x1] = (torch.tensor(COLOURS[IDENTITIES[identity].skin]) * 2 - 1).view(3, 1, 1)
    return video


def _frac(right, total) -> float:
    return float(right.sum() / total.sum())


def test_component_labels_are_8_connected_per_frame():
    mask = torch.zeros(2, 5, 5, dtype=torch.bool)
    mask[0, 0, 0] = mask[0, 1, 1] = True  # diagonal neighbours: one component
    mask[0, 4, 4] = True  # apart: another
    mask[1, 0, 0] = True  # same place, next frame: its own component
    lab = component_labels(mask)
    assert lab[0, 0, 0] == lab[0, 1, 1] != lab[0, 4, 4]
    assert lab[1, 0, 0] not in (lab[0, 0, 0], lab[0, 4, 4])
    assert (lab[~mask] == 0).all() and (lab[mask] > 0).all()


def test_greedy_matching_counts_each_reference_once():
    video = _paint([(0, (2, 6, 2, 7)), (0, (2, 8, 20, 25))])  # two faces of ID 0: 20 and 30 pixels
    right, total = matched_identity(video, "black", torch.tensor([0, 1]), min_pixels=1)
    assert sorted(total.tolist()) == [20, 30]
    assert sorted(right.tolist()) == [0, 30]  # the larger face wins ID 0; ID 1 is nowhere
    assert _frac(*matched_identity(video, "black", torch.tensor([0, 0]), min_pixels=1)) == 1.0
    assert _frac(*matched_identity(video, "black", torch.tensor([3, 5]), min_pixels=1)) == 0.0


def test_a_face_half_in_another_ids_skin_is_two_regions():
    video = _paint([(2, (2, 8, 2, 6)), (4, (2, 8, 6, 10))])  # one blob: left half ID 2, right half ID 4
    right, total = matched_identity(video, "black", torch.tensor([2, 1]), min_pixels=1)
    assert sorted(total.tolist()) == [24, 24] and _frac(right, total) == 0.5


def test_min_pixels_drops_specks():
    video = _paint([(1, (0, 1, 0, 3)), (1, (4, 12, 10, 20))])  # a 3-pixel speck and an 80-pixel face
    right, total = matched_identity(video, "black", torch.tensor([1]), min_pixels=16)
    assert total.tolist() == [80] and right.tolist() == [80]


def _faces_clip():
    world = ShapesWorld(frames=3, height=48, width=64, max_instances=3, seed=1, face_prob=1.0, min_faces=2)
    return next(c for c in map(world.render_clip, range(20)) if len(c.face_ids) >= 2 and c.face_masks.any())


def test_right_faces_elsewhere_still_score_unlike_the_ground_truth_masks():
    clip = _faces_clip()
    mirrored = clip.video.flip(-1)  # the same faces, at other places (what a generation does)
    truth = _frac(*shapes_matched_identity(clip.video, clip))
    assert _frac(*shapes_matched_identity(mirrored, clip)) == truth > 0.9
    # the ground-truth-mask metric gives the mirrored clip (nearly) nothing: the bug this fixes
    assert float(shapes_identity_accuracy(mirrored, clip).nanmean()) < 0.3
    other = clip.face_ids.clone()
    other[:] = torch.tensor([i for i in range(8) if i not in clip.face_ids.tolist()][: len(other)])
    clip.face_ids = other
    assert _frac(*shapes_matched_identity(clip.video, clip)) == 0.0  # references nowhere in the clip


def test_size_mismatch_is_a_clean_error():
    clip = _faces_clip()
    with pytest.raises(ConfigError, match="does not match the world clip"):
        shapes_matched_identity(clip.video[:, :, :-1], clip)
