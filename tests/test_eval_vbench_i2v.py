"""suite=vbench-i2v: VBench-I2V's image suite -> image-conditioned videos named as VBench-I2V expects."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from vidgen.errors import ConfigError
from vidgen.eval import runner, suites
from vidgen.eval.adapters import vbench_i2v
from vidgen.eval.cli import main

ENTRIES = [
    {"prompt_en": "a red ball rolls", "dimension": ["i2v_subject"], "image_name": "a red ball.jpg"},
    {
        "prompt_en": "a blue cup, camera pans left",
        "dimension": ["camera_motion"],
        "image_name": "a blue cup.jpg",
    },
    {"prompt_en": "a red ball rolls", "dimension": ["dynamic_degree"], "image_name": "a red ball.jpg"},
]
COLOURS = {"a red ball.jpg": (220, 20, 20), "a blue cup.jpg": (20, 20, 220)}


def _image_suite(root):
    """VBench-I2V's layout: vbench2_beta_i2v/data/crop/<ratio>/<image> + vbench2_beta_i2v/vbench2_i2v_full_info.json."""
    base = root / "vbench2_beta_i2v"
    for ratio, size in (("1-1", (48, 48)), ("16-9", (64, 36))):
        (base / "data" / "crop" / ratio).mkdir(parents=True)
        for name, colour in COLOURS.items():
            Image.new("RGB", size, colour).save(base / "data" / "crop" / ratio / name)
    (base / "vbench2_i2v_full_info.json").write_text(json.dumps(ENTRIES))
    return base / "data" / "crop"


def test_ratio_follows_the_video_size_and_the_image_is_centre_cropped_then_resized(tmp_path):
    assert vbench_i2v.closest_ratio(832, 480) == "7-4"  # Wan 480p
    assert vbench_i2v.closest_ratio(1280, 720) == "16-9"
    assert vbench_i2v.closest_ratio(720, 480) == "8-5"
    assert vbench_i2v.closest_ratio(32, 32) == "1-1" and vbench_i2v.closest_ratio(480, 832) == "1-1"
    img = Image.new("RGB", (40, 20), (255, 0, 0))  # red | green centre 20 x 20 | blue
    img.paste((0, 255, 0), (10, 0, 30, 20))
    img.paste((0, 0, 255), (30, 0, 40, 20))
    img.save(tmp_path / "wide.png")
    pixels = vbench_i2v.image_pixels(tmp_path / "wide.png", 8, 8)
    assert pixels.shape == (1, 3, 1, 8, 8)
    assert torch.equal(pixels[0, :, 0], torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1).expand(3, 8, 8))


class _FakeGenerator:
    calls: list[tuple[str, str]] = []
    fps = 8.0

    def __init__(self, cfg, ckpt):
        pass

    def image_latents(self, path):
        return None

    def __call__(self, prompt, seed, index=0, image=None):
        self.calls.append((prompt, image))
        return torch.zeros(3, 2, 16, 16)


def test_videos_are_named_by_prompt_five_per_prompt_and_resume(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    monkeypatch.setattr(runner, "Generator", _FakeGenerator)
    _FakeGenerator.calls = []
    crop = _image_suite(tmp_path)
    cfg = OmegaConf.create({"data": {"name": "shards", "frames": 9, "height": 36, "width": 64},
                            "backbone": {"name": "wan2.1-1.3b", "size": "tiny", "weights": "w"},
                            "sample": {"seed": 0, "steps": 2, "guidance": "cfg", "guidance_scale": 6.0}})  # fmt: skip
    run = tmp_path / "run"
    opts = {"vbench_i2v.images": str(crop)}
    made, metrics = runner.run_eval(cfg, run, "vbench-i2v", opts, None)
    folder = run / "eval" / "vbench-i2v"
    names = sorted(p.name for p in folder.glob("*.mp4"))
    assert made == 10 and names == sorted(f"{p}-{i}.mp4" for p in ("a red ball rolls", "a blue cup, camera pans left")
                                          for i in range(5))  # fmt: skip
    ratio_dir = crop / "16-9"  # 64 x 36 videos
    assert set(_FakeGenerator.calls) == {("a red ball rolls", str(ratio_dir / "a red ball.jpg")),
                                         ("a blue cup, camera pans left", str(ratio_dir / "a blue cup.jpg"))}  # fmt: skip
    assert json.loads((folder / "vbench_i2v.json").read_text())["resolution"] == "16-9"
    assert json.loads((folder / "prompts.json").read_text())["a red ball rolls-4.mp4"] == "a red ball rolls"
    assert runner.run_eval(cfg, run, "vbench-i2v", opts, None)[0] == 0  # resumed: nothing twice
    only = suites.items(suites.get_suite("vbench-i2v"), {**opts, "dimensions": "camera_motion", "samples": "1"},
                        0, size=(48, 48))  # fmt: skip
    assert [(it.path, it.image) for it in only] == [("a blue cup, camera pans left-0.mp4",
                                                     str(crop / "1-1" / "a blue cup.jpg"))]  # fmt: skip
    (crop / "16-9" / "a blue cup.jpg").unlink()
    with pytest.raises(ConfigError, match="lacks 1 image"):
        runner.run_eval(cfg, tmp_path / "run2", "vbench-i2v", opts, None)


def test_a_missing_image_suite_is_one_error_naming_the_key(tmp_path, capsys):
    with pytest.raises(
        ConfigError, match=r"suite=vbench-i2v needs eval\.vbench_i2v\.images=DIR \(it is not set\)"
    ):
        suites.items(suites.get_suite("vbench-i2v"), {}, 0, size=(32, 32))
    crop = tmp_path / "crop"
    crop.mkdir()
    with pytest.raises(ConfigError, match="no 1-1/ subfolder"):
        suites.items(suites.get_suite("vbench-i2v"), {"vbench_i2v.images": str(crop)}, 0, size=(32, 32))
    (crop / "1-1").mkdir()
    with pytest.raises(ConfigError, match="no vbench2_i2v_full_info.json"):
        suites.items(suites.get_suite("vbench-i2v"), {"vbench_i2v.images": str(crop)}, 0, size=(32, 32))


def test_stiv_ti2v_smoke_run_generates_the_suite_conditioned_on_its_images(tmp_path, capsys):
    from vidgen.config import load_config
    from vidgen.eval.generate import read_model_video
    from vidgen.train import train

    crop = _image_suite(tmp_path)
    run = train(load_config(["exp=stiv_ti2v_xl", "preset=smoke", "data=shapes", "logger=none",
                             "train.max_steps=1", f"run.dir={tmp_path / 'run'}"]))  # fmt: skip
    args = [
        str(run),
        "suite=vbench-i2v",
        f"eval.vbench_i2v.images={crop}",
        "eval.samples=1",
        "sample.steps=2",
    ]
    assert main(args) == 0
    folder = run / "eval" / "vbench-i2v"
    assert sorted(p.name for p in folder.glob("*.mp4")) == [
        "a blue cup, camera pans left-0.mp4",
        "a red ball rolls-0.mp4",
    ]
    # the image really conditions the video: frame replacement keeps the first frame's colour
    red = read_model_video(folder / "a red ball rolls-0.mp4")[:, 0].mean((1, 2))  # [3]
    blue = read_model_video(folder / "a blue cup, camera pans left-0.mp4")[:, 0].mean((1, 2))
    assert red[0] > red[2] + 0.5 and blue[2] > blue[0] + 0.5
    assert main(args) == 0 and "generated 0 video(s)" in capsys.readouterr().out
    assert main([str(run), "suite=vbench-i2v"]) == 2
    assert "needs eval.vbench_i2v.images=DIR" in capsys.readouterr().err
    # a text-only model: one error, and its run folder is left as it was
    t2v = train(load_config(["exp=stiv_t2v_xl", "preset=smoke", "data=shapes", "logger=none",
                             "train.max_steps=1", f"run.dir={tmp_path / 't2v'}"]))  # fmt: skip
    assert main([str(t2v), "suite=vbench-i2v", f"eval.vbench_i2v.images={crop}"]) == 2
    assert "is text-only" in capsys.readouterr().err and not (t2v / "eval").exists()
