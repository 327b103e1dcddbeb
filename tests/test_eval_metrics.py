"""Shared evaluation metrics on local weights: Fréchet distance (FID / FVD), CLIPScore, temporal consistency.

Feature networks are tiny TorchScript stand-ins with the call signatures of the common exports; the
CLIP is a tiny random-init model saved to a folder. Every expected value is computed by hand.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fixtures_models import make_tiny_tokenizer
from vidgen.errors import ConfigError
from vidgen.eval.frechet import FVD, features_distance, frechet_distance, load_fid, update_fid


def test_frechet_distance_matches_a_hand_computed_case():
    # mu1 = 0, S1 = I; mu2 = (1, 2), S2 = 4 I: |mu|^2 = 5, Tr(I + 4I - 2 sqrt(4I)) = 2 + 8 - 8 = 2 -> 7
    eye = torch.eye(2)
    assert frechet_distance(torch.zeros(2), eye, torch.tensor([1.0, 2.0]), 4 * eye) == pytest.approx(7.0)
    # non-diagonal, commuting: S1 = R diag(1, 9) R^T, S2 = R diag(4, 1) R^T -> Tr = 10 + 5 - 2 (2 + 3) = 5
    r = torch.tensor([[0.6, -0.8], [0.8, 0.6]])
    s1, s2 = r @ torch.diag(torch.tensor([1.0, 9.0])) @ r.T, r @ torch.diag(torch.tensor([4.0, 1.0])) @ r.T
    assert frechet_distance(torch.ones(2), s1, torch.ones(2), s2) == pytest.approx(5.0, abs=1e-6)


class _I3DStandIn(torch.nn.Module):
    """The StyleGAN-V I3D export's signature; features = per-channel means [B, 3]."""

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = True, return_features: bool = True
    ):
        return x.mean(dim=(2, 3, 4))


class _InceptionStandIn(torch.nn.Module):
    """The StyleGAN2-ADA Inception export's signature; uint8 images -> per-channel means [B, 3]."""

    def forward(self, x: torch.Tensor, return_features: bool = True):
        return x.float().mean(dim=(2, 3)) / 255.0


def _script(module, path):
    torch.jit.script(module).save(str(path))
    return str(path)


def test_fvd_loads_a_torchscript_i3d_and_a_shift_of_c_costs_3c2(tmp_path):
    fvd = FVD(_script(_I3DStandIn(), tmp_path / "i3d.pt"))
    videos = torch.rand(6, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.5 - 0.75
    fvd.update(videos, real=True)
    fvd.update(videos + 0.2, real=False)  # same covariance, mean moved by 0.2 in each of 3 channels
    assert fvd.compute() == pytest.approx(3 * 0.2**2, abs=1e-6)


def test_fid_crop_regions_scores_only_the_regions(tmp_path):
    fid = load_fid(_script(_InceptionStandIn(), tmp_path / "inception.pt"))
    g = torch.Generator().manual_seed(0)
    real = torch.rand(4, 3, 3, 16, 16, generator=g) * 2 - 1  # 4 videos [3, F, H, W]
    fake = real.clone()
    fake[..., 8:, :] = -1.0  # bottom half differs; the top half (the "face") is identical

    def top_half(frames):  # [F, 3, H, W] -> the region FID should see
        return frames[..., :8, :]

    for r, f in zip(real, fake):
        update_fid(fid, r, real=True, crop_regions=top_half)
        update_fid(fid, f, real=False, crop_regions=top_half)
    assert float(fid.compute()) == pytest.approx(0.0, abs=1e-4)
    whole = load_fid(_script(_InceptionStandIn(), tmp_path / "inception2.pt"))
    for r, f in zip(real, fake):
        update_fid(whole, r, real=True)
        update_fid(whole, f, real=False)

    def feats(videos):  # the stand-in's features of every frame, by hand
        return torch.cat([((v.clamp(-1, 1) + 1) * 127.5).round().mean(dim=(2, 3)).T / 255 for v in videos])

    assert float(whole.compute()) == pytest.approx(features_distance(feats(real), feats(fake)), rel=1e-3)


def test_box_regions_crops_each_frames_regions_and_skips_missing_ones():
    from vidgen.eval.frechet import box_regions

    frames = torch.zeros(2, 3, 20, 40, dtype=torch.uint8)
    frames[:, :, :10, 20:] = 200  # the top-right quarter is the "face"
    nan = float("nan")
    boxes = torch.tensor([[[0.5, 0.0, 1.0, 0.5], [nan] * 4], [[nan] * 4, [nan] * 4]])  # [F=2, K=2, 4]
    crops = box_regions(boxes, size=8)(frames)
    assert crops.shape == (1, 3, 8, 8) and crops.dtype == torch.uint8 and bool((crops == 200).all())


def test_missing_weights_name_the_metric_the_key_and_the_file(tmp_path):
    with pytest.raises(
        ConfigError, match=r"FVD needs local weights: eval.fvd.i3d=.* does not exist.*i3d_torchscript.pt"
    ):
        FVD(str(tmp_path / "nope.pt"))
    with pytest.raises(
        ConfigError, match=r"FID needs local weights: eval.fid.inception is not set.*inception-2015-12-05.pt"
    ):
        load_fid(None)
    (tmp_path / "bad.pt").write_bytes(b"not an archive")
    with pytest.raises(ConfigError, match="FVD: eval.fvd.i3d=.*is not a TorchScript archive"):
        FVD(str(tmp_path / "bad.pt"))
    from vidgen.eval.clip_metrics import load_clip

    with pytest.raises(ConfigError, match=r"CLIPScore needs local weights: eval.clip=.*CLIP folder"):
        load_clip(str(tmp_path / "clip"), "eval.clip")


def _tiny_clip_folder(folder):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = make_tiny_tokenizer("CLIPTextModel", max_length=16)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=1, eos_token_id=0),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=8,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessor(crop_size=32, size=32).save_pretrained(folder)
    return str(folder)


def test_clip_score_and_temporal_consistency_on_a_local_tiny_clip(tmp_path):
    from vidgen.eval.clip_metrics import clip_score_metric, load_clip, temporal_consistency, update_clip_score
    from vidgen.eval.frechet import to_uint8_frames

    model, proc = load_clip(_tiny_clip_folder(tmp_path / "clip"), "eval.clip")
    video = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(1)) * 2 - 1
    metric = clip_score_metric(model, proc)
    update_clip_score(metric, video, "a red circle")
    with torch.no_grad():  # by hand: max(100 cos, 0) per frame, averaged
        img = F.normalize(
            model.get_image_features(pixel_values=proc(images=list(to_uint8_frames(video)))["pixel_values"]),
            dim=-1,
        )
        tok = proc(text=["a red circle"])
        txt = F.normalize(model.get_text_features(tok["input_ids"], tok["attention_mask"]), dim=-1)
    want = (100 * img @ txt[0]).clamp(min=0).mean()
    assert float(metric.compute()) == pytest.approx(float(want), rel=1e-4)
    assert temporal_consistency(model, proc, video[:, [0, 0, 0]]) == pytest.approx(
        1.0, abs=1e-5
    )  # a still video
    want_t = float((img[:-1] * img[1:]).sum(-1).mean())
    assert temporal_consistency(model, proc, video) == pytest.approx(want_t, abs=1e-5) and want_t < 0.9999
