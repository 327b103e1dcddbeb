"""Local encoder loading and `vidgen precompute` end to end with tiny random-init models."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from fixtures_models import make_tiny_text_encoder, make_tiny_vae
from vidgen.data import rle
from vidgen.data.encoders import load_text_encoder, load_vae
from vidgen.data.precompute import main, precompute
from vidgen.data.shards import ShardDataset, ShardWriter
from vidgen.data.video_io import write_video
from vidgen.errors import ConfigError, DataError

FRAMES, H, W, TEXT_LEN = 9, 32, 32, 12  # CogVideoX: 8k + 1 frames (odd latent count)
FLAGS = [
    "--frames", str(FRAMES), "--height", str(H), "--width", str(W), "--text-len", str(TEXT_LEN),
    "--text-encoder-kind", "T5EncoderModel", "--vae-kind", "AutoencoderKLCogVideoX", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    root = tmp / "pipeline"  # one diffusers-style folder holding vae/, text_encoder/, tokenizer/
    make_tiny_vae(tmp, "AutoencoderKLCogVideoX", root=root)
    make_tiny_text_encoder(tmp, "T5EncoderModel", root=root)
    return root


# ---------------------------------------------------------------------------------------------
# encoders


@pytest.mark.parametrize("kind", ["T5EncoderModel", "UMT5EncoderModel", "CLIPTextModel"])
@pytest.mark.parametrize("layout", ["pipeline", "flat"])
def test_text_encoder_shapes(tmp_path, kind, layout):
    path = make_tiny_text_encoder(tmp_path, kind, dim=24, layout=layout)
    enc = load_text_encoder(path, kind, max_length=10, batch_size=2)
    embeds, mask = enc.encode(["a red square moves left", "the dog", "a ball"])
    assert embeds.shape == (3, 10, 24) and embeds.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.shape == (3, 10)
    specials = 2 if kind == "CLIPTextModel" else 1  # <bos> ... <eos> vs ... </s>
    assert mask.sum(1).tolist() == [5 + specials, 2 + specials, 2 + specials]
    padded = embeds[1, ~mask[1]]
    if kind == "UMT5EncoderModel":  # Wan zeroes the positions beyond the prompt
        assert padded.abs().max() == 0
    else:  # CogVideoX / ModelScope keep the encoder output at padding positions
        assert padded.abs().max() > 0
    # batching does not change the result
    single, _ = enc.encode(["the dog"])
    assert torch.allclose(single[0], embeds[1], atol=1e-5)


def test_text_encoder_bf16_and_errors(tmp_path):
    path = make_tiny_text_encoder(tmp_path, "T5EncoderModel")
    embeds, _ = load_text_encoder(path, "T5EncoderModel", 8, dtype=torch.bfloat16).encode("a cat")
    assert embeds.dtype == torch.bfloat16 and embeds.shape == (1, 8, 32)
    with pytest.raises(DataError, match="nowhere.*text_encoder/"):
        load_text_encoder(tmp_path / "nowhere", "T5EncoderModel", 8)
    for f in (path / "tokenizer").iterdir():
        f.unlink()
    (path / "tokenizer").rmdir()
    with pytest.raises(DataError, match="no tokenizer found"):
        load_text_encoder(path, "T5EncoderModel", 8)
    with pytest.raises(ConfigError, match="T5EncoderModel"):
        load_text_encoder(path, "BertModel", 8)


@pytest.mark.parametrize("kind", ["AutoencoderKLCogVideoX", "AutoencoderKLWan", "AutoencoderKL"])
def test_vae_shapes_and_scaling(tmp_path, kind):
    pipeline = make_tiny_vae(tmp_path, kind)
    torch.manual_seed(0)
    video = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    codec = load_vae(pipeline, kind)
    flat = load_vae(pipeline / "vae", kind)  # the vae folder itself is accepted too
    latents = codec.encode(video)
    frames = 9 if kind == "AutoencoderKL" else 3  # video VAEs compress time 4x (1 + 4k frames)
    assert latents.shape == (1, 4, frames, 4, 4) and latents.dtype == torch.float32
    assert torch.equal(latents, flat.encode(video))  # mode() -> deterministic
    raw = codec.vae.encode(video if kind != "AutoencoderKL" else video[0].transpose(0, 1)).latent_dist.mode()
    if kind == "AutoencoderKL":
        raw = raw.transpose(0, 1)[None]
    if kind == "AutoencoderKLWan":
        mean = torch.tensor([0.1, -0.2, 0.3, 0.0]).view(1, 4, 1, 1, 1)
        std = torch.tensor([1.5, 2.0, 0.5, 1.0]).view(1, 4, 1, 1, 1)
        expected = (raw - mean) / std
    else:
        expected = raw * codec.vae.config.scaling_factor
    assert torch.allclose(latents, expected, atol=1e-5)
    decoded = codec.decode(latents)
    assert decoded.shape == video.shape and decoded.abs().max() <= 1
    direct = codec.vae.decode(raw if kind != "AutoencoderKL" else raw[0].transpose(0, 1)).sample
    if kind == "AutoencoderKL":
        direct = direct.transpose(0, 1)[None]
    assert torch.allclose(decoded, direct.clamp(-1, 1), atol=1e-4)
    with pytest.raises(DataError, match="vae/"):
        load_vae(tmp_path / "missing", kind)


# ---------------------------------------------------------------------------------------------
# precompute


def _clip(seed: int, frames: int = 17, height: int = 36, width: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 1, 1, generator=g)
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    out = [(base * 0.5 + 0.25 * torch.sin(6 * (x + y) + f * 0.3 + seed)).clamp(0, 1) for f in range(frames)]
    return (torch.stack(out).permute(0, 2, 3, 1) * 255).round().to(torch.uint8)


def _dataset(tmp_path, n: int = 3, bad: int | None = None):
    videos = tmp_path / "videos"
    videos.mkdir()
    lines = []
    for i in range(n):
        name = f"clip{i}.mp4"
        if i == bad:
            (videos / name).write_bytes(b"\x00garbage" * 50)
        else:
            write_video(videos / name, _clip(i), fps=10)
        lines.append({"video": name, "caption": f"a red square moves {['left', 'right', 'up'][i % 3]}"})
    ann = tmp_path / "ann.jsonl"
    ann.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return videos, ann, lines


def _run(models, videos, ann, out, *extra):
    return main(["--vae", str(models), "--text-encoder", str(models), "--videos", str(videos),
                 "--annotations", str(ann), "--out", str(out), *FLAGS, *extra])  # fmt: skip


def test_precompute_end_to_end_and_resume(tmp_path, models, capsys):
    videos, ann, _ = _dataset(tmp_path)
    # instances + regions on the first video (17 source frames at 36x48)
    lines = [json.loads(x) for x in ann.read_text().splitlines()]
    mask = torch.zeros(36, 48, dtype=torch.bool)
    mask[:, 24:] = True  # right half of the source frame
    lines[0]["instances"] = [{"prompt": "a red square", "boxes": [[0.25, 0.25, 0.75, 0.75]] * 16 + [None]}]
    lines[0]["regions"] = [{"caption": "the sky", "mask_rle": [rle.encode(mask)] * 17}]
    ann.write_text("".join(json.dumps(x) + "\n" for x in lines))

    out = tmp_path / "shards"
    assert _run(models, videos, ann, out, "--samples-per-shard", "2", "--stride", "2") == 0
    ds = ShardDataset(out)
    assert len(ds) == 3 and sorted(ds.keys) == ["clip0", "clip1", "clip2"]
    assert len(ds.index["shards"]) == 2
    s = ds[ds.keys.index("clip1")]
    assert s.latents.shape == (4, 3, 4, 4) and s.latents.dtype == torch.float32
    assert s.text_embeds.shape == (TEXT_LEN, 32) and s.text_mask.dtype == torch.bool
    assert s.caption == "a red square moves right" and s.frame_size == (FRAMES, H, W)
    assert s.micro.original_size == (36, 48) and s.micro.crop == (0, 6) and s.micro.stride == 2
    assert s.micro.fps == pytest.approx(10.0)

    # the stored tensors are what the encoders give for the same clip / caption
    from vidgen.data.video_io import read_video, resize_crop, sample_clip, to_model_pixels

    frames, _ = read_video(videos / "clip1.mp4")
    pixels, _, _ = resize_crop(sample_clip(frames, FRAMES, 2), H, W)
    codec = load_vae(models, "AutoencoderKLCogVideoX")
    assert torch.allclose(s.latents, codec.encode(to_model_pixels(pixels)[None])[0], atol=1e-4)
    text = load_text_encoder(models, "T5EncoderModel", TEXT_LEN)
    embeds, mask_ = text.encode(["a red square moves right"])
    assert torch.allclose(s.text_embeds, embeds[0], atol=1e-5) and torch.equal(s.text_mask, mask_[0])

    # annotations were moved onto the clip: source frames 0, 2, ..., 16 and the 48->42.67 wide crop
    s0 = ds[ds.keys.index("clip0")]
    assert s0.instances.prompts == ["a red square"]
    assert s0.instances.visible[0].tolist() == [True] * 8 + [False]
    x1 = (0.25 * 48 * (32 / 36) - 5) / 32  # resized width 43 (ceil 42.67), left crop 5
    assert s0.instances.boxes[0, 0, 0].item() == pytest.approx(x1, abs=0.02)
    assert s0.instances.prompt_embeds.shape == (1, TEXT_LEN, 32)
    # each instance prompt is encoded in isolation (InstanceV Sec. 4.1), exactly as the encoder gives it
    inst_embeds, inst_mask = text.encode(["a red square"])
    assert torch.equal(s0.instances.prompt_embeds, inst_embeds) and torch.equal(
        s0.instances.prompt_mask, inst_mask
    )
    assert s0.regions.captions == ["the sky"] and s0.regions.masks.shape == (1, FRAMES, H, W)
    region = s0.regions.masks[0]  # source x >= 0.5 -> resized x >= 21.5 -> crop x >= 16.5
    assert not region[..., :16].any() and region[..., 17:].all()
    assert s0.regions.caption_embeds.shape == (1, TEXT_LEN, 32)
    null = load_file(str(out / "null_text.safetensors"))
    assert null["embeds"].shape == (TEXT_LEN, 32) and null["mask"].sum() == 1  # just </s>

    # second run: everything is skipped, nothing is rewritten
    capsys.readouterr()
    assert _run(models, videos, ann, out) == 0
    assert "skipped 3" in capsys.readouterr().out
    assert len(ShardDataset(out)) == 3


def test_interrupted_run_keeps_completed_and_resumes(tmp_path, models, capsys):
    videos, ann, _ = _dataset(tmp_path, bad=2)
    out = tmp_path / "shards"
    assert _run(models, videos, ann, out, "--samples-per-shard", "8") == 2
    err = capsys.readouterr().err
    assert "clip2.mp4" in err and "Traceback" not in err
    assert ShardWriter.completed_keys(out) == {"clip0", "clip1"}
    write_video(videos / "clip2.mp4", _clip(2), fps=10)  # fix the video, run again
    result = precompute(models, models, videos, ann, out, frames=FRAMES, height=H, width=W, text_len=TEXT_LEN,
                        text_encoder_kind="T5EncoderModel", vae_kind="AutoencoderKLCogVideoX", progress=False)  # fmt: skip
    assert (result.written, result.skipped) == (1, 2)
    assert sorted(ShardDataset(out).keys) == ["clip0", "clip1", "clip2"]


def test_annotation_errors(tmp_path, models, capsys):
    videos, ann, lines = _dataset(tmp_path, n=1)
    out = tmp_path / "out"
    ann.write_text(json.dumps(lines[0]) + "\n" + json.dumps({"video": "nope.mp4", "caption": "x"}) + "\n")
    assert _run(models, videos, ann, out) == 2
    err = capsys.readouterr().err
    assert "ann.jsonl:2" in err and "nope.mp4" in err and "does not exist" in err

    ann.write_text(json.dumps(lines[0]) + "\n\n" + '{"video": "clip0.mp4", "caption": }\n')
    assert _run(models, videos, ann, out) == 2
    err = capsys.readouterr().err
    assert "ann.jsonl:3" in err and "malformed JSON" in err

    ann.write_text(json.dumps({"video": "clip0.mp4"}) + "\n")
    with pytest.raises(DataError, match=r"ann.jsonl:1: field 'caption'"):
        precompute(models, models, videos, ann, out, frames=FRAMES, height=H, width=W, text_len=TEXT_LEN,
                   text_encoder_kind="T5EncoderModel", vae_kind="AutoencoderKLCogVideoX", progress=False)  # fmt: skip
    assert not (out / "index.json").exists()  # nothing was written for bad annotations

    ann.write_text(json.dumps(lines[0]) + "\n")
    with pytest.raises(DataError, match="fewer than --frames 33"):
        precompute(models, models, videos, ann, out, frames=33, height=H, width=W, text_len=TEXT_LEN,
                   text_encoder_kind="T5EncoderModel", vae_kind="AutoencoderKLCogVideoX", progress=False)  # fmt: skip


def test_defaults_come_from_the_backbone(tmp_path):
    pytest.importorskip("vidgen.backbones")
    from vidgen.backbones import get_backbone
    from vidgen.data.precompute import _resolve_settings

    spec = get_backbone("cogvideox-2b")
    s = _resolve_settings("cogvideox-2b", None, None, 64, None, None, None)
    assert s == {
        "frames": spec.default_frames, "height": spec.default_height, "width": 64,
        "text_len": spec.text_len, "text_encoder_kind": spec.text_encoder_cls, "vae_kind": spec.vae_cls,
    }  # fmt: skip
    with pytest.raises(ConfigError, match="--backbone"):
        _resolve_settings(None, 5, 32, 32, None, None, None)
