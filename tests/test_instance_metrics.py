"""InstanceBench metrics: layout IoU by label, area weighting, instance CLIP-Score on a tiny local CLIP."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from fixtures_models import make_tiny_tokenizer
from vidgen.data.shapes_datamodule import ShapesDataModule
from vidgen.eval.instance_metrics import (
    box_areas,
    crop_boxes,
    instance_clip_scores,
    instance_layout_iou,
    shapes_layout_metrics,
    weighted_means,
)


def test_layout_iou_counts_missed_instances_as_zero_and_skips_absent_frames():
    gt = torch.tensor([[[0.0, 0.0, 0.5, 0.5]] * 3, [[0.5, 0.5, 1.0, 1.0]] * 3])  # [2, 3, 4]
    gt_vis = torch.tensor([[True, True, False], [True, True, True]])
    pred = gt.clone()
    pred[0, 1] = torch.tensor([0.0, 0.0, 0.25, 0.5])  # half the box in frame 1
    pred_vis = torch.tensor([[True, True, True], [False, False, False]])  # instance 1 never detected
    iou = instance_layout_iou(pred, pred_vis, gt, gt_vis)
    assert torch.allclose(iou, torch.tensor([0.75, 0.0]))
    areas = box_areas(gt, gt_vis)
    assert torch.allclose(areas, torch.tensor([0.25, 0.25]))
    mean, aw = weighted_means(iou, torch.tensor([0.75, 0.25]))
    assert abs(mean - 0.375) < 1e-6 and abs(aw - 0.5625) < 1e-6


def _exact_subset(sample, clip):
    """Only the instances the colour detector finds exactly: no faces (skin only), no repeated colour."""
    colours = [sp.colour for sp in clip.specs]
    keep = [k for k, sp in enumerate(clip.specs) if sp.identity < 0 and colours.count(sp.colour) == 1]
    inst = sample.instances
    sub = dataclasses.replace(
        inst, boxes=inst.boxes[keep], visible=inst.visible[keep], prompts=[inst.prompts[k] for k in keep]
    )
    return dataclasses.replace(sample, instances=sub), len(keep)


def test_exact_detector_scores_the_ground_truth_video_perfectly():
    dm = ShapesDataModule(
        num_clips=8, frames=9, height=64, width=64, latent_channels=16, text_dim=32, text_len=16
    )
    ds = dm.build_dataset()
    clips = [ds.clip(i) for i in range(8)]
    pairs = [_exact_subset(ds[i], clips[i]) for i in range(8)]
    assert sum(n for _, n in pairs) >= 4
    out = shapes_layout_metrics([c.video for c in clips], [p for p, _ in pairs])
    assert out["layout_iou"] > 0.999 and out["layout_iou_aw"] > 0.999
    blank = shapes_layout_metrics([torch.zeros_like(c.video) for c in clips], [p for p, _ in pairs])
    assert blank == {"layout_iou": 0.0, "layout_iou_aw": 0.0}


def _tiny_clip(tmp_path):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = make_tiny_tokenizer("CLIPTextModel", max_length=16)
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=1,
            eos_token_id=0,
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=8,
    )
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(tmp_path / "clip")
    model = CLIPModel.from_pretrained(tmp_path / "clip").eval()  # weights from a local folder
    proc = SimpleNamespace(image_processor=CLIPImageProcessor(crop_size=32, size=32), tokenizer=tok)
    return model, proc


@pytest.mark.slow  # ~11 s on the shared CPU (a tiny CLIP saved and loaded from a folder)
def test_instance_clip_score_crops_the_boxes_and_zeroes_missed_instances(tmp_path):
    model, proc = _tiny_clip(tmp_path)
    video = torch.rand(3, 2, 64, 64) * 2 - 1
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5]] * 2, [[0.5, 0.25, 1.0, 0.75]] * 2])
    visible = torch.tensor([[True, False], [True, True]])
    prompts = ["a red square", "a blue circle"]
    s = instance_clip_scores(model, proc, video, boxes, visible, prompts)
    # instance 0 by hand: frame 0 only, its box cropped to 32 x 32, CLIP-normalised
    ip = proc.image_processor
    mean, std = torch.tensor(ip.image_mean).view(1, 3, 1, 1), torch.tensor(ip.image_std).view(1, 3, 1, 1)
    crop = F.interpolate(((video[:, 0] + 1) / 2)[None, :, :32, :32], size=(32, 32), mode="bilinear")
    with torch.no_grad():
        v = model.get_image_features(pixel_values=(crop - mean) / std)
        v = F.normalize(v if isinstance(v, torch.Tensor) else v.pooler_output, dim=-1)
        t = model.get_text_features(**proc.tokenizer(prompts[:1], return_tensors="pt"))
        t = F.normalize(t if isinstance(t, torch.Tensor) else t.pooler_output, dim=-1)
    assert torch.allclose(s[0], (v @ t.T).squeeze(), atol=1e-5)
    missed = instance_clip_scores(
        model, proc, video, boxes, visible, prompts, detected=torch.tensor([True, False])
    )
    assert missed[1] == 0 and torch.allclose(missed[0], s[0])
    assert crop_boxes(video[:, 0][None], boxes[1, :1], 32).shape == (1, 3, 32, 32)


@pytest.mark.slow  # a tiny CLIP from a folder + one generation
def test_evaluate_reports_instance_clip_scores_with_local_clip_folders(tmp_path, smoke):
    from transformers import CLIPImageProcessor

    from vidgen.config import load_config
    from vidgen.methods.instancev.module import InstanceVModule
    from vidgen.train import build_datamodule

    model, proc = _tiny_clip(tmp_path)
    folder = tmp_path / "clip"
    proc.tokenizer.save_pretrained(folder)
    CLIPImageProcessor(crop_size=32, size=32).save_pretrained(folder)
    cfg = load_config(
        smoke(
            "logger=none",
            "method.eval_samples=1",
            "method.eval_steps=2",
            f"method.clip_models.clip_b={folder}",
            exp="instancev_wan",
        )
    )
    module = InstanceVModule(cfg)
    dm = build_datamodule(cfg, module.spec)
    dm.transform = InstanceVModule.sample_transform(cfg, dm)
    module.set_null_text(*dm.null_text())
    out = module.eval().evaluate(dm)
    assert {"layout_iou", "layout_iou_aw", "instancebench/clip_b", "instancebench/clip_b_aw"} <= set(out)
    assert -1.0 <= out["instancebench/clip_b_aw"] <= 1.0
