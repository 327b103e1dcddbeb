"""STIV-JIT-TUP (Table 6, App. K): a STIV-JIT clip, then the temporal upsampler with its frames as the
condition frames at stride 2; through `vidgen sample upsampler=` and `vidgen eval` (Table 6's row)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from vidgen.config import load_config
from vidgen.errors import ConfigError
from vidgen.methods.stiv.cascade import load_upsampler
from vidgen.methods.stiv.module import STIVModule

JIT = ("stiv_ti2v_m", "variant=stiv/table6_stiv_jit")  # Table 6's STIV-JIT row (tiny M)


def make_run(folder, exp, *extra, seed=0):
    """A run folder (config.yaml + checkpoints/last.ckpt) of a tiny STIV model with perturbed random
    weights (so the output depends on the input), written without training."""
    cfg = load_config(
        [f"exp={exp}", "preset=smoke", "data=shapes", "logger=none", f"run.dir={folder}", *extra]
    )
    module = STIVModule(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    (folder / "checkpoints").mkdir(parents=True)
    ident = {"method": "stiv", "backbone": cfg.backbone.name, "backbone_size": "tiny", "exp": exp}
    torch.save({"state_dict": module.state_dict(), "vidgen": ident}, folder / "checkpoints" / "last.ckpt")
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return module.eval()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cascade")
    main = make_run(root / "jit", *JIT)
    make_run(root / "tup", "stiv_tup_xl", "data.frames=8", seed=1)  # 4 frames -> 8 (temporal patch 2)
    return root, main


def _texts(main):
    embeds = torch.randn(1, 16, 32, generator=torch.Generator().manual_seed(5))
    return embeds, torch.ones(1, 16, dtype=torch.bool), main.null_text_embeds[None], main.null_text_mask[None]


@pytest.mark.parametrize("task", ["t2v", "ti2v"])
def test_cascade_doubles_the_frames_and_keeps_stiv_jit_frames_bit_exact(runs, task):
    root, main = runs
    texts = _texts(main)
    shape = main.latent_shape(4, 64, 64)  # (C, N = 4, H', W')
    tup = load_upsampler(root / "tup", main, shape, 32)
    image = torch.randn(1, 4, 1, 8, 8, generator=torch.Generator().manual_seed(2)) if task == "ti2v" else None
    x = main.generate(*texts, latent_shape=shape, steps=3, guidance="jit_cfg", seed=0, image_latents=image)
    up = tup(x, *texts, seed=0)
    assert up.shape == (1, 4, 8, 8, 8)  # 2N: the paper's temporal patch 2 needs an even clip
    assert torch.equal(up[:, :, 0::2], x)  # STIV-JIT's frames at the even positions, bit for bit
    assert not torch.equal(up[:, :, 1::2], up[:, :, 0::2])  # the odd frames are generated
    if image is not None:
        assert torch.equal(up[:, :, :1], image)  # TI2V: the condition image is frame 0 of the cascade


def test_an_odd_clip_upsampler_gives_2n_minus_1_frames(runs, tmp_path):
    root, main = runs
    make_run(tmp_path / "tup7", "stiv_tup_xl", "data.frames=7", "+method.arch.temporal_patch_size=1")
    texts = _texts(main)
    x = main.generate(*texts, latent_shape=main.latent_shape(4, 64, 64), steps=2, guidance="jit_cfg")
    up = load_upsampler(tmp_path / "tup7", main, tuple(x.shape[1:]), 32)(x, *texts, seed=0)
    assert up.shape[2] == 7 and torch.equal(up[:, :, 0::2], x)


@pytest.mark.parametrize(
    "exp, extra, message",
    [
        (
            "stiv_tup_xl",
            ["data.frames=4"],
            r"4-frame clip takes 2 condition frame\(s\).* this run generates 4; "
            r"use an upsampler trained with data.frames=8",
        ),
        (
            "stiv_tup_xl",
            ["data.frames=8", "data.height=32"],
            r"latents are \(4, 4, 8\) \(C, H', W'\) but this run's "
            r"are \(4, 8, 8\); train the upsampler at this run's data.height x data.width",
        ),
        (
            "stiv_ti2v_xl",
            [],
            r"is not a temporal upsampler \(method.condition_frames=\[0\], needs 'stride:2'\)",
        ),
    ],
)
def test_mismatched_runs_are_one_clean_error(runs, tmp_path, exp, extra, message):
    root, main = runs
    make_run(tmp_path / "up", exp, *extra)
    with pytest.raises(ConfigError, match=message):
        load_upsampler(tmp_path / "up", main, main.latent_shape(4, 64, 64), 32)
    with pytest.raises(ConfigError, match="no such run folder or checkpoint"):
        load_upsampler(tmp_path / "nope", main, main.latent_shape(4, 64, 64), 32)


def test_sample_cli_writes_the_upsampled_clip_and_refuses_a_mismatch(runs, tmp_path, capsys):
    from vidgen.data.video_io import read_video
    from vidgen.sampling import main as sample_main

    root, _ = runs
    args = [
        f"exp={JIT[0]}",
        JIT[1],
        "preset=smoke",
        "data=shapes",
        "logger=none",
        f"run.dir={root / 'jit'}",
        "prompt=a red circle",
    ]
    out = tmp_path / "o.mp4"
    assert sample_main([*args, f"upsampler={root / 'tup' / 'checkpoints' / 'last.ckpt'}", f"out={out}"]) == 0
    frames, fps = read_video(out)
    assert frames.shape[0] == 8 and fps == 16  # twice the frames at twice the frame rate
    make_run(tmp_path / "short", "stiv_tup_xl", "data.frames=4")
    assert sample_main([*args, f"upsampler={tmp_path / 'short'}", f"out={tmp_path / 'b.mp4'}"]) == 2
    err = capsys.readouterr().err
    assert (
        "takes 2 condition frame(s)" in err and "Traceback" not in err and not (tmp_path / "b.mp4").exists()
    )


def test_table6_row_is_an_evaluate_only_cascade_scored_by_vidgen_eval(runs, tmp_path, monkeypatch, capsys):
    from vidgen.data.video_io import read_video
    from vidgen.eval.cli import main as eval_main
    from vidgen.runs import read_summary
    from vidgen.train import train

    root, _ = runs
    monkeypatch.setenv("STIV_JIT_CKPT", str(root / "jit" / "checkpoints" / "last.ckpt"))
    monkeypatch.setenv("STIV_TUP_RUN", str(root / "tup"))
    run = tmp_path / "tup_row"
    variant = "variant=stiv/table6_stiv_jit_tup"
    train(
        load_config(
            [f"exp={JIT[0]}", variant, "preset=smoke", "logger=none", "train.max_steps=0", f"run.dir={run}"]
        )
    )
    assert read_summary(run)["mode"] == "evaluate-only" and not (run / "checkpoints").exists()
    assert eval_main([str(run), "eval.limit=1", "sample.steps=2", "eval.metrics="]) == 0, (
        capsys.readouterr().err
    )
    frames, fps = read_video(run / "eval" / "shapes" / "0000.mp4")
    assert frames.shape[0] == 8 and fps == 16  # the cascade's 2N frames, at twice the frame rate
    # the STIV-JIT run's own eval folder never receives cascade videos
    assert eval_main([str(root / "jit"), "eval.limit=1", f"sample.upsampler={root / 'tup'}"]) == 2
    assert "Evaluate the cascade as its own run" in capsys.readouterr().err
    assert not (root / "jit" / "eval").exists()
    # nor are the cascade's videos scored as plain STIV-JIT ones
    assert eval_main([str(run), "eval.limit=1", "sample.upsampler=null", "eval.metrics="]) == 2
    assert f"records sample.upsampler={root / 'tup'}" in capsys.readouterr().err
