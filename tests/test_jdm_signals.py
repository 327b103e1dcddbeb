"""`vidgen jdm signals`: whole-scene HED / depth of real clips from local model folders (JDM Table 5),
tested with tiny random-init models and videos this test writes."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from fixtures_models import make_tiny_text_encoder, make_tiny_vae
from vidgen.data import rle
from vidgen.data.precompute import main as precompute_main
from vidgen.data.shards import ShardDataset, read_index
from vidgen.data.video_io import write_video
from vidgen.methods.jdm.cli import main
from vidgen.methods.jdm.scene_signals import HED, DepthModel, clip_frames, hed_map, load_hed, save_hed

F, H, W = 9, 32, 32


def tiny_depth(folder):
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    cfg = DPTConfig(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=32,
                    patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 16, 16],
                    fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5])  # fmt: skip
    torch.manual_seed(0)
    DPTForDepthEstimation(cfg).save_pretrained(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(folder)
    return folder


def test_hed_network_has_the_reference_parameter_names_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = HED((4, 4, 8, 8, 8))
    names = set(model.state_dict())
    # sniklaus/pytorch-hed's names: its converted BSDS500 weights load as they are
    assert {"netVggOne.0.weight", "netVggTwo.1.weight", "netVggFiv.5.bias", "netScoreThr.weight",
            "netCombine.0.weight"} <= names and len(names) == 2 * (13 + 5 + 1)  # fmt: skip
    loaded = load_hed(save_hed(model, tmp_path / "hed"))
    x = torch.rand(2, 3, 20, 28)
    out = loaded(x)
    assert out.shape == (2, 1, 20, 28) and torch.equal(out, model.eval()(x))
    assert ((out > 0) & (out < 1)).all()
    (tmp_path / "hed" / "config.json").write_text(json.dumps({"model_type": "other"}))
    with pytest.raises(Exception, match="vidgen-hed"):
        load_hed(tmp_path / "hed")


def test_depth_model_from_a_local_transformers_folder(tmp_path):
    depth = DepthModel(tiny_depth(tmp_path / "depth"))
    frames = torch.zeros(3, 24, 40, 3, dtype=torch.uint8)
    frames[:, 4:12, 10:30] = 200
    out = depth(frames)
    assert out.shape == (3, 24, 40) and out.min() == 0 and out.max() == 1  # per-clip min-max, 1 = nearest
    with pytest.raises(Exception, match="depth-estimation folder"):
        DepthModel(tmp_path / "nothing")


@pytest.mark.slow
def test_signals_command_writes_hed_and_depth_the_jdm_transform_reads(tmp_path, capsys):
    """End to end with `vidgen precompute` on tiny models (~15-20 s on a shared CPU)."""
    models = tmp_path / "pipeline"
    make_tiny_vae(tmp_path, "AutoencoderKLCogVideoX", root=models)
    make_tiny_text_encoder(tmp_path, "T5EncoderModel", root=models)
    videos = tmp_path / "videos"
    videos.mkdir()
    lines = []
    for i in range(2):
        frames = torch.zeros(F, H, W, 3, dtype=torch.uint8)
        frames[:, 8:20, 6 + i : 18 + i] = torch.tensor([230, 30, 30], dtype=torch.uint8)  # a red square
        write_video(videos / f"c{i}.mp4", frames, fps=8)
        box = np.zeros((H, W), bool)
        box[8:20, 6 + i : 18 + i] = True
        region = {"caption": "a red square", "mask_rle": [rle.encode(box)] * F}
        lines.append({"video": f"c{i}.mp4", "caption": "a red square", "regions": [region, region]})
    ann = tmp_path / "ann.jsonl"
    ann.write_text("".join(json.dumps(x) + "\n" for x in lines))
    data = tmp_path / "data"
    assert precompute_main(["--vae", str(models), "--text-encoder", str(models), "--videos", str(videos),
                            "--annotations", str(ann), "--out", str(data), "--frames", str(F), "--height", str(H),
                            "--width", str(W), "--text-len", "12", "--text-encoder-kind", "T5EncoderModel",
                            "--vae-kind", "AutoencoderKLCogVideoX", "--no-progress"]) == 0  # fmt: skip
    torch.manual_seed(1)
    hed = save_hed(HED((4, 4, 8, 8, 8)), tmp_path / "hed")
    depth = tiny_depth(tmp_path / "depth")
    args = ["signals", "--data", str(data), "--videos", str(videos), "--annotations", str(ann),
            "--hed", str(hed), "--depth", str(depth)]  # fmt: skip
    assert main(args) == 0
    assert "2 clips written" in capsys.readouterr().out
    assert {"regions.hed", "regions.depth"} <= set(read_index(data)["fields"])
    sample = ShardDataset(data)[1]
    assert sample.regions.hed.shape == sample.regions.depth.shape == (F, H, W)
    # the stored maps are the models' outputs on the clip precompute encoded
    from vidgen.data.precompute import read_annotations

    record = read_annotations(ann, videos)[1]
    frames = clip_frames(record, [F, H, W], 1)
    torch.testing.assert_close(sample.regions.hed, hed_map(load_hed(hed), frames))
    torch.testing.assert_close(sample.regions.depth, DepthModel(depth)(frames))
    assert sample.regions.depth.min() == 0 and sample.regions.depth.max() == 1
    # resumable, and existing maps are replaced only on request
    assert main(args) == 0 and "0 clips written, 2 already done" in capsys.readouterr().out
    assert main([*args, "--overwrite"]) == 0 and "2 clips written" in capsys.readouterr().out
    # what JDM-HED trains on: the whole-scene map cropped by the regional mask
    from vidgen.methods.jdm.signals import regional_signal

    union = sample.regions.masks.any(0)
    cropped = regional_signal(sample.regions, union, "hed", sample.key)
    assert torch.equal(cropped[~union], torch.zeros_like(cropped[~union]))
    assert torch.equal(cropped[union], sample.regions.hed[union])
    assert main(["signals", "--data", str(data), "--videos", str(videos), "--annotations", str(ann)]) == 2
    assert "--hed DIR and / or --depth DIR" in capsys.readouterr().err
