"""STIV part 2: frame replacement (training and every sampling step), independent text / image
dropout, JIT-CFG, the Table 5 image cross-attention switches, TI2V / V2V / TUP runs and bad input."""

from __future__ import annotations

import pytest
import torch

from vidgen.config import load_config
from vidgen.data.sample import collate
from vidgen.diffusion import make_guidance
from vidgen.errors import ConfigError
from vidgen.methods.stiv.conditioning import (
    condition_mask,
    draw_dropout,
    parse_condition_frames,
    replace_frames,
)
from vidgen.methods.stiv.guidance import JITCFG
from vidgen.methods.stiv.module import STIVModule
from vidgen.train import build_datamodule


def smoke_cfg(smoke, *extra, exp="stiv_ti2v_xl", run_dir=None):
    return load_config(smoke("data=shapes", "logger=none", *extra, exp=exp, run_dir=run_dir))


def test_condition_frames_name_ti2v_v2v_and_tup():
    assert condition_mask(parse_condition_frames([0]), 4).tolist() == [True, False, False, False]
    assert condition_mask(parse_condition_frames([3, 0, 1, 2]), 6).tolist() == [True] * 4 + [False] * 2
    tup = condition_mask(parse_condition_frames("stride:2"), 7)
    assert tup.tolist() == [True, False, True, False, True, False, True]
    assert condition_mask(parse_condition_frames([]), 4).sum() == 0
    with pytest.raises(ConfigError, match=r"names 4 condition frame\(s\) up to index 3, but the clip has 2"):
        condition_mask([0, 1, 2, 3], 2)
    with pytest.raises(ConfigError, match="all 4 latent frames would be condition frames"):
        condition_mask([0, 1, 2, 3], 4)
    with pytest.raises(ConfigError, match="'every:2' is not valid"):
        parse_condition_frames("every:2")


@pytest.mark.parametrize(
    "frames, message",
    [
        (4, "all 4 latent frames would be condition frames"),
        (
            2,
            r"names 4 condition frame\(s\) up to index 3, but the clip has 2 latent frame\(s\); use more frames",
        ),
    ],
)
def test_more_condition_frames_than_frames_is_refused_at_start(smoke, frames, message):
    with pytest.raises(ConfigError, match=message):
        STIVModule(smoke_cfg(smoke, f"data.frames={frames}", exp="stiv_v2v_xxl"))


def test_replace_frames_is_bit_exact_and_only_where_the_condition_is_present():
    x, clean = torch.randn(3, 4, 5, 2, 2), torch.randn(3, 4, 5, 2, 2)
    sel = torch.tensor([True, False, True, False, False])
    out = replace_frames(x, clean, sel, torch.tensor([True, False, True]))
    assert torch.equal(out[0, :, sel], clean[0, :, sel]) and torch.equal(out[0, :, ~sel], x[0, :, ~sel])
    assert torch.equal(out[1], x[1])


@pytest.fixture(scope="module")
def ti2v(tmp_path_factory):
    """A tiny TI2V module (its weights perturbed so the output depends on the input) and a batch."""
    run = tmp_path_factory.mktemp("ti2v")
    overrides = ["exp=stiv_ti2v_xl", "preset=smoke", f"run.dir={run / 'run'}", "data=shapes", "logger=none"]
    cfg = load_config(overrides)
    module = STIVModule(cfg)
    with torch.no_grad():
        for p in module.model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    dm = build_datamodule(cfg, module.spec)
    return module, collate([dm.dataset[i] for i in range(4)]), cfg


def _record_inputs(module):
    seen = []
    real = module.model.forward

    def spy(latents, *args, **kwargs):
        seen.append(latents.clone())
        return real(latents, *args, **kwargs)

    return seen, spy


@pytest.mark.parametrize(
    "spec, replaced",
    [([0], {0}), ([0, 1, 2], {0, 1, 2}), ("stride:2", {0, 2})],  # TI2V, V2V (3 of 4 frames), TUP ("stride:2")
)
def test_training_replaces_the_condition_frames_and_masks_exactly_their_loss(
    ti2v, monkeypatch, spec, replaced
):
    import dataclasses

    module, batch, _ = ti2v
    monkeypatch.setattr(module, "hp", dataclasses.replace(module.hp, condition_frames=spec))
    seen, spy = _record_inputs(module)
    monkeypatch.setattr(module.model, "forward", spy)
    base, _ = module.compute_loss(batch, torch.Generator().manual_seed(3))
    x1 = batch.latents
    for frame in range(4):  # the clean latents replaced the noised condition frames; the others are noised
        assert torch.equal(seen[0][:, :, frame], x1[:, :, frame]) is (frame in replaced), frame

    def shifted(frame):  # the prediction changed on one frame only
        def forward(latents, *args, **kwargs):
            out = spy(latents, *args, **kwargs).clone()
            out[:, :, frame] += 100.0
            return out

        return forward

    for frame in range(4):
        monkeypatch.setattr(module.model, "forward", shifted(frame))
        loss, _ = module.compute_loss(batch, torch.Generator().manual_seed(3))
        assert torch.equal(loss, base) is (frame in replaced), frame


def test_image_dropout_trains_t2v_on_the_dropped_samples(ti2v, monkeypatch):
    """Image dropped (rate 1): frame 0 stays noised and its loss counts."""
    module, batch, _ = ti2v
    seen, spy = _record_inputs(module)
    monkeypatch.setattr(module.model, "forward", spy)
    hp = module.hp
    import dataclasses

    monkeypatch.setattr(module, "hp", dataclasses.replace(hp, image_dropout=1.0, condition_frames=[0]))
    base, _ = module.compute_loss(batch, torch.Generator().manual_seed(3))
    assert not torch.equal(seen[0][:, :, 0], batch.latents[:, :, 0])

    def shifted(latents, *args, **kwargs):  # the prediction changed on frame 0 only
        out = spy(latents, *args, **kwargs).clone()
        out[:, :, 0] += 100.0
        return out

    monkeypatch.setattr(module.model, "forward", shifted)
    assert not torch.equal(module.compute_loss(batch, torch.Generator().manual_seed(3))[0], base)


def test_training_draws_the_configured_10_and_8_percent_dropout(smoke, monkeypatch):
    """compute_loss draws text / image dropout with train.cfg_dropout and method.image_dropout, from
    the step's generator (the rates themselves: the test below)."""
    import vidgen.methods.stiv.module as stiv_module

    cfg = smoke_cfg(smoke, exp="stiv_ti2v_xl_jit")
    assert (cfg.train.cfg_dropout, cfg.method.image_dropout) == (0.1, 0.08)  # Sec. E
    module = STIVModule(cfg)
    batch = collate([build_datamodule(cfg, module.spec).dataset[i] for i in range(2)])
    calls = []
    real = stiv_module.draw_dropout

    def spy(b, p_text, p_image, gen):
        calls.append((b, p_text, p_image, gen))
        return real(b, p_text, p_image, gen)

    monkeypatch.setattr(stiv_module, "draw_dropout", spy)
    gen = torch.Generator().manual_seed(7)
    module.compute_loss(batch, gen)
    assert calls == [(2, 0.1, 0.08, gen)]


def test_dropout_rates_are_10_and_8_percent_independent_and_drawn_from_the_step_generator(ti2v):
    module, _, _ = ti2v
    steps, batch = 5000, 8
    text, image = [], []
    for step in range(steps):  # the generator a training step gets (seed, micro-step, rank)
        gen = torch.Generator().manual_seed((int(module.cfg.seed) * 1_000_003 + step) * 1_009)
        dt, di = draw_dropout(batch, 0.1, 0.08, gen)
        text.append(dt)
        image.append(di)
    text, image = torch.stack(text).float(), torch.stack(image).float()
    n = steps * batch
    assert abs(text.mean().item() - 0.10) < 3 * (0.1 * 0.9 / n) ** 0.5 + 1e-3
    assert abs(image.mean().item() - 0.08) < 3 * (0.08 * 0.92 / n) ** 0.5 + 1e-3
    both = (text * image).mean().item()
    assert abs(both - 0.008) < 3 * (0.008 / n) ** 0.5 + 5e-4  # P(T and I) = P(T) P(I)
    again = draw_dropout(
        batch, 0.1, 0.08, torch.Generator().manual_seed((int(module.cfg.seed) * 1_000_003) * 1_009)
    )
    assert torch.equal(again[0].float(), text[0]) and torch.equal(
        again[1].float(), image[0]
    )  # resume: same draws


def test_jit_cfg_null_branches_and_scale_one():
    def denoise(x, t, text_embeds, image_cond):  # out = 10 * text + image, per row
        return (10 * text_embeds + image_cond).reshape(-1, 1, 1, 1, 1).expand_as(x).clone()

    x, t = torch.zeros(2, 1, 1, 1, 1), torch.tensor(5.0)
    cond = {"text_embeds": torch.ones(2), "image_cond": torch.ones(2)}
    uncond = {"text_embeds": torch.zeros(2), "image_cond": torch.zeros(2)}
    s = 7.5
    for drop, null in (("joint", 0.0), ("text", 1.0), ("image", 10.0)):
        out = JITCFG(s, drop=drop, renorm=False)(denoise, x, t, cond, uncond)
        torch.testing.assert_close(out, torch.full_like(x, null + s * (11.0 - null)))
    assert isinstance(make_guidance("jit_cfg", scale=7.5), JITCFG)

    w_text, w_image = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)

    def model(x, t, text_embeds, image_cond):
        return (
            x * 3
            + text_embeds.reshape(-1, 1, 1, 1, 1) * w_text
            + image_cond.reshape(-1, 1, 1, 1, 1) * w_image
        )

    x = torch.randn(2, 4, 3, 2, 2)
    one = JITCFG(1.0, drop="joint", renorm=True)(model, x, t, cond, uncond)
    assert torch.equal(one, model(x, t, **cond))  # s = 1: the conditional prediction, bit for bit


@pytest.mark.parametrize(
    "drop, spec",
    [("text", [0]), ("joint", [0]), ("joint", [0, 1, 2]), ("text", "stride:2")],  # TI2V, TI2V-JIT, V2V, TUP
)
def test_sampling_keeps_the_condition_frames_bit_exact_at_every_step(ti2v, monkeypatch, drop, spec):
    import dataclasses

    module, batch, cfg = ti2v
    monkeypatch.setattr(
        module, "hp", dataclasses.replace(module.hp, guidance_drop=drop, condition_frames=spec)
    )
    seen, spy = _record_inputs(module)
    monkeypatch.setattr(module.model, "forward", spy)
    sel = condition_mask(parse_condition_frames(spec), 4)
    image = batch.latents[:1, :, sel]
    embeds, mask = batch.text_embeds[:1], batch.text_mask[:1]
    shape = tuple(batch.latents.shape[1:])
    out = module.generate(
        embeds,
        mask,
        module.null_text_embeds[None],
        module.null_text_mask[None],
        shape,
        3,
        image_latents=image,
    )
    assert len(seen) == 3  # one doubled-batch call per step: [null; cond]
    for x in seen:
        assert torch.equal(x[1][:, sel], image[0])  # the conditional branch: the clean latents, every step
        # the null branch keeps the frames (plain text CFG) or drops them (JIT-CFG: the noised frames)
        assert torch.equal(x[0][:, sel], image[0]) is (drop == "text")
    assert torch.equal(out[0][:, sel], image[0])
    assert not torch.equal(out[0][:, ~sel], batch.latents[0][:, ~sel])


def test_bad_sampling_input_is_one_clean_error(ti2v):
    module, batch, _ = ti2v
    args = (
        batch.text_embeds[:1],
        batch.text_mask[:1],
        module.null_text_embeds[None],
        module.null_text_mask[None],
    )
    shape = tuple(batch.latents.shape[1:])
    small = batch.latents[:1, :, :1, :4, :4]
    with pytest.raises(ConfigError, match=r"must have the video's size \(data.height x data.width\)"):
        module.generate(*args, shape, 2, image_latents=small)
    with pytest.raises(ConfigError, match=r"takes 1 condition frame\(s\) of a 4-frame clip, got 2"):
        module.generate(*args, shape, 2, image_latents=batch.latents[:1, :, :2])


def test_condition_files_with_too_few_frames_are_one_clean_error(tmp_path):
    from vidgen.data.condition_input import load_condition_pixels
    from vidgen.data.video_io import write_video

    write_video(tmp_path / "two.mp4", torch.rand(3, 2, 64, 64) * 2 - 1, fps=8)
    with pytest.raises(ConfigError, match=r"two.mp4 has 2 frame\(s\); this model is conditioned on 4"):
        load_condition_pixels(None, str(tmp_path / "two.mp4"), 4, 64, 64)
    png = _png(tmp_path / "img.png", (64, 64))
    with pytest.raises(ConfigError, match="conditioned on 4 frames; pass them as video=PATH"):
        load_condition_pixels(str(png), None, 4, 64, 64)


def test_image_cross_attention_switches_ca_and_lp():
    from vidgen.backbones.stiv_dit import TINY, STIVDiT

    torch.manual_seed(0)
    ca = STIVDiT(**dict(TINY, image_cross_attention=True))
    lp = STIVDiT(**dict(TINY, image_cross_attention=True, image_projection="large"))
    n = sum(p.numel() for p in ca.image_proj.parameters())
    assert n == 32 * 32 + 32 and sum(p.numel() for p in lp.image_proj.parameters()) == 2 * 32 * 128 + 128 + 32
    with torch.no_grad():
        for p in ca.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, t = torch.randn(2, 4, 4, 8, 8), torch.tensor([300.0, 300.0])
    text = torch.randn(2, 5, 32)
    micro = {
        "original_size": torch.full((2, 2), 64.0),
        "crop": torch.zeros(2, 2),
        "stride": torch.full((2,), 3.0),
    }
    img_a, img_b = torch.randn(2, 4, 1, 8, 8), torch.randn(2, 4, 1, 8, 8)
    a = ca(x, t, text, micro=micro, image_latents=img_a, image_mask=torch.tensor([True, False]))
    b = ca(x, t, text, micro=micro, image_latents=img_b, image_mask=torch.tensor([True, False]))
    assert not torch.allclose(a[0], b[0])  # the image reaches the output through cross-attention
    torch.testing.assert_close(a[1], b[1])  # dropped image: its tokens are masked out
    with pytest.raises(ValueError, match="image_cross_attention=True needs image_latents"):
        ca(x, t, text, micro=micro)


def _png(path, size):
    from PIL import Image

    Image.fromarray((torch.rand(size[1], size[0], 3) * 255).byte().numpy()).save(path)
    return path


def _sample_cli(capsys, *args):
    from vidgen.sampling import main

    code = main(list(args))
    return code, capsys.readouterr().err


def test_ti2v_trains_samples_from_an_image_and_refuses_bad_input(smoke, tmp_path, capsys):
    from vidgen.runs import read_summary
    from vidgen.train import train

    run = tmp_path / "ti2v"
    train(smoke_cfg(smoke, "train.max_steps=2", run_dir=run))
    assert read_summary(run)["global_step"] == 2
    common = [
        "exp=stiv_ti2v_xl",
        "preset=smoke",
        "data=shapes",
        "logger=none",
        f"run.dir={run}",
        "prompt=a red circle",
    ]
    out = tmp_path / "clip.mp4"
    code, err = _sample_cli(capsys, *common, f"image={_png(tmp_path / 'img.png', (64, 64))}", f"out={out}")
    assert code == 0 and out.is_file(), err
    code, err = _sample_cli(
        capsys, *common, f"image={_png(tmp_path / 'big.png', (96, 64))}", f"out={out}2.mp4"
    )
    assert code != 0 and "big.png is 96x64 (W x H) but the video is 64x64" in err and "Traceback" not in err
    code, err = _sample_cli(capsys, *common, f"out={out}3.mp4")
    assert code != 0 and "trained without image dropout" in err and "pass image=PATH" in err


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "exp, extra, frames",
    [
        ("stiv_v2v_xxl", ["data.frames=8"], 4),  # V2V: the first four frames of a video
        ("stiv_tup_xl", [], 2),  # TUP: frames 0 and 2 of a 4-frame clip
        pytest.param("stiv_ti2v_xl_jit", [], 0, marks=SLOW),  # STIV-JIT samples T2V without an image
        pytest.param("stiv_ti2v_m", [], 1, marks=SLOW),
        pytest.param("stiv_ti2v_m_jit", [], 1, marks=SLOW),
        pytest.param("stiv_ti2v_xl", ["variant=stiv/table5_fr_ca_lp"], 1, marks=SLOW),
        pytest.param("stiv_ti2v_xl", ["variant=stiv/table5_ca"], 1, marks=SLOW),
    ],
)
def test_every_part2_experiment_trains_and_samples_at_smoke_size(exp, extra, frames, smoke, tmp_path, capsys):
    from vidgen.data.video_io import write_video
    from vidgen.train import train

    run = tmp_path / "run"
    train(smoke_cfg(smoke, "train.max_steps=2", "backbone.init=random", *extra, exp=exp, run_dir=run))
    cond = []
    if frames == 1:
        cond = [f"image={_png(tmp_path / 'img.png', (64, 64))}"]
    elif frames:
        write_video(tmp_path / "cond.mp4", torch.rand(3, frames, 64, 64) * 2 - 1, fps=8)
        cond = [f"video={tmp_path / 'cond.mp4'}"]
    args = [
        f"exp={exp}",
        "preset=smoke",
        "data=shapes",
        "logger=none",
        "backbone.init=random",
        f"run.dir={run}",
    ]
    code, err = _sample_cli(capsys, *args, *extra, "prompt=a red circle", f"out={tmp_path / 'o.mp4'}", *cond)
    assert code == 0 and (tmp_path / "o.mp4").is_file(), err
