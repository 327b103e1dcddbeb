"""Mask quality metrics (JDM Table 3) against hand-computed values, and the reference-mask loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vidgen.eval.mask_metrics import (
    binarize,
    compare_with_reference,
    load_reference_masks,
    mask_metrics,
    resize_masks,
    video_mask_metrics,
)


def _pair():
    # one video, one frame of 2 x 4 pixels: TP = 2, FP = 1, FN = 1, TN = 4
    target = torch.tensor([[[1, 1, 0, 0], [1, 0, 0, 0]]], dtype=torch.bool)
    pred = torch.tensor([[[1, 0, 1, 0], [1, 0, 0, 0]]], dtype=torch.bool)
    return pred, target


def test_metrics_match_hand_computed_values():
    pred, target = _pair()
    m = video_mask_metrics(pred, target)
    assert m["mask_iou"] == pytest.approx(2 / 4)  # TP / (TP + FP + FN)
    assert m["mask_f1"] == pytest.approx(4 / 6)  # 2TP / (2TP + FP + FN)
    assert m["mask_pixel_acc"] == pytest.approx(6 / 8)  # (TP + TN) / all


def test_metrics_are_averaged_over_videos():
    pred, target = _pair()
    other_pred = torch.zeros_like(pred)
    other_target = torch.zeros_like(target)
    other_target[0, 0, 0] = True  # 1 FN, 7 TN: IoU 0, F1 0, acc 7/8
    m = mask_metrics(torch.stack([pred, other_pred]), torch.stack([target, other_target]))
    assert m == pytest.approx({"mask_iou": 0.25, "mask_f1": 1 / 3, "mask_pixel_acc": (6 / 8 + 7 / 8) / 2})
    assert set(m) == {"mask_iou", "mask_f1", "mask_pixel_acc"}


def test_edge_cases():
    empty = torch.zeros(2, 4, 4, dtype=torch.bool)
    full = torch.ones(2, 4, 4, dtype=torch.bool)
    assert video_mask_metrics(empty, empty) == {"mask_iou": 1.0, "mask_f1": 1.0, "mask_pixel_acc": 1.0}
    assert video_mask_metrics(full, full)["mask_iou"] == 1.0
    zero = video_mask_metrics(empty, full)
    assert zero["mask_iou"] == 0.0 and zero["mask_f1"] == 0.0 and zero["mask_pixel_acc"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        mask_metrics(empty[None], full[None, :1])


def test_binarize_and_resize():
    decoded = torch.full((1, 3, 2, 4, 4), -1.0)
    decoded[0, :, :, :2, :2] = 0.8
    decoded[0, 0, :, 3, 3] = 1.0  # one bright channel: RGB mean -1/3 < 0, background
    mask = binarize(decoded)
    assert mask.shape == (1, 2, 4, 4) and mask.sum() == 2 * 4
    assert mask[0, :, :2, :2].all()
    big = resize_masks(mask, (8, 8))
    assert big.shape == (1, 2, 8, 8) and big.sum() == 4 * mask.sum()


def test_reference_folder_layout(tmp_path):
    ref = torch.zeros(3, 8, 8, dtype=torch.bool)
    ref[:, 2:6, 2:6] = True
    np.savez(tmp_path / "vid_a.npz", masks=ref.numpy())
    (tmp_path / "vid_b").mkdir()
    for f in range(2):
        Image.fromarray((ref[f].numpy() * 255).astype(np.uint8)).save(tmp_path / "vid_b" / f"{f:05d}.png")
    loaded = load_reference_masks(tmp_path)
    assert set(loaded) == {"vid_a", "vid_b"}
    assert torch.equal(loaded["vid_a"], ref) and torch.equal(loaded["vid_b"], ref[:2])
    # generated masks at half resolution, one frame more than the PNG reference
    gen = resize_masks(ref, (4, 4))
    m = compare_with_reference({"vid_a": gen, "vid_b": gen, "unmatched": gen}, loaded)
    assert m == {"mask_iou": 1.0, "mask_f1": 1.0, "mask_pixel_acc": 1.0}
    with pytest.raises(ValueError, match="no generated video"):
        compare_with_reference({"x": gen}, loaded)
