"""FaceSim, face-region crops and the shapes world's exact identity accuracy."""

import pytest
import torch

from vidgen.data.shapes import NUM_IDENTITIES, ShapesWorld
from vidgen.data.shapes_identity import identity_textures_at
from vidgen.errors import ConfigError
from vidgen.eval.face_metrics import crop_face_regions, face_sim, face_similarity, shapes_identity_accuracy
from vidgen.faces.recognition import TinyRecognition


def _clip_with_faces(n: int):
    world = ShapesWorld(frames=3, height=48, width=64, max_instances=3, seed=1, face_prob=1.0, min_faces=n)
    for index in range(20):
        clip = world.render_clip(index)
        if len(clip.face_instances) >= n and all(m.any() for m in clip.face_masks):
            return clip
    raise AssertionError("no clip with visible faces")


def _repaint(clip, k: int, identity: int):
    """The clip with face k's visible pixels rendered with another identity's texture."""
    video = clip.video.clone()
    spec = clip.specs[clip.face_instances[k]]
    _, f, h, w = video.shape
    tex = identity_textures_at(spec, f, h, w)[identity]  # [3, F, H, W]
    mask = clip.face_masks[k]
    video[:, mask] = tex[:, mask]
    return video


def test_rendered_ground_truth_scores_exactly_one():
    clip = _clip_with_faces(2)
    acc = shapes_identity_accuracy(clip.video, clip)
    assert acc.shape == (len(clip.face_instances),)
    assert torch.equal(acc, torch.ones_like(acc))


def test_swapped_identities_score_exactly_zero():
    clip = _clip_with_faces(2)
    ids = clip.face_ids.tolist()
    video = clip.video
    for k in range(len(ids)):
        other = (ids[k] + 1 + k) % NUM_IDENTITIES
        clip_k = _repaint(clip, k, other)
        video = torch.where(clip.face_masks[k][None], clip_k, video)
    acc = shapes_identity_accuracy(video, clip)
    assert torch.equal(acc, torch.zeros_like(acc))


def test_half_repainted_face_scores_between():
    clip = _clip_with_faces(1)
    spec_mask = clip.face_masks[0].clone()
    spec_mask[1:] = False  # repaint only frame 0
    repainted = _repaint(clip, 0, (int(clip.face_ids[0]) + 3) % NUM_IDENTITIES)
    video = torch.where(spec_mask[None], repainted, clip.video)
    acc = float(shapes_identity_accuracy(video, clip)[0])
    assert 0.0 < acc < 1.0


def test_resolution_mismatch_is_a_clean_error():
    clip = _clip_with_faces(1)
    with pytest.raises(ConfigError, match="does not match the world clip"):
        shapes_identity_accuracy(clip.video[:, :, :-1], clip)


def test_crop_face_regions_cuts_the_box():
    video = torch.zeros(3, 2, 8, 8)
    video[:, 0, 2:6, 4:8] = 1.0
    boxes = torch.tensor([[[0.5, 0.25, 1.0, 0.75], [0.0, 0.0, 0.0, 0.0]]])
    crops = crop_face_regions(video, boxes, 4)
    assert crops.shape == (1, 2, 3, 4, 4)
    assert torch.equal(crops[0, 0], torch.ones(3, 4, 4))
    assert torch.equal(crops[0, 1], torch.zeros(3, 4, 4))  # empty box: zero crop


def test_face_sim_is_one_for_the_reference_and_averages_visible_frames():
    torch.manual_seed(0)
    rec = TinyRecognition().eval()
    clip = _clip_with_faces(1)
    refs = crop_face_regions(clip.video, clip.face_boxes, 32)[:, 0]  # frame 0 crop as the reference
    vis = clip.visible[clip.face_instances]
    sim = face_sim(rec, clip.video[:, :1], clip.face_boxes[:, :1], vis[:, :1], refs, size=32)
    assert torch.allclose(sim, torch.ones_like(sim), atol=1e-6)
    a, b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    cos = face_similarity(rec, a, b)
    assert cos.shape == (2,) and (cos.abs() <= 1 + 1e-6).all() and not torch.allclose(cos, torch.ones(2))
