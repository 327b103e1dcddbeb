"""Ingredients inference (Sec. 4.1, Fig. 5): the DPM sampler and the routing-map grid."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from vidgen.backbones import get_backbone
from vidgen.config import load_config
from vidgen.errors import ConfigError
from vidgen.methods.ingredients import module as ingredients_module
from vidgen.methods.ingredients.config import IngredientsConfig
from vidgen.methods.ingredients.routing_maps import GAP, PALETTE, TILE_SCALE, routing_grid, save_png
from vidgen.methods.ingredients.sampler import make_sampler


@pytest.mark.parametrize("stage", [1, 2])
def test_ingredients_experiments_sample_with_dpm_solver_50_steps_guidance_6(stage, tmp_path):
    cfg = load_config([f"exp=ingredients_stage{stage}", f"run.dir={tmp_path}", "logger=none"])
    assert (cfg.sample.steps, cfg.sample.guidance, cfg.sample.guidance_scale) == (50, "cfg", 6.0)
    spec = get_backbone(cfg.backbone.name)
    scheduler = make_sampler(IngredientsConfig.from_cfg(cfg).sampler, spec)
    assert type(scheduler) is diffusers.DPMSolverMultistepScheduler
    c = scheduler.config  # the backbone's schedule: v-prediction, zero terminal SNR, trailing spacing
    assert (c.prediction_type, c.rescale_betas_zero_snr, c.timestep_spacing) == (
        "v_prediction",
        True,
        "trailing",
    )
    assert (c.beta_start, c.beta_end, c.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    scheduler.set_timesteps(50)
    assert len(scheduler.timesteps) == 50 and int(scheduler.timesteps[0]) == 999


def test_sampler_alternatives_and_a_shift_dpm_solver_cannot_express():
    spec = get_backbone("cogvideox-5b-i2v")
    assert type(make_sampler("ddim", spec)) is diffusers.CogVideoXDDIMScheduler
    assert type(make_sampler("cogvideox_dpm", spec)) is diffusers.CogVideoXDPMScheduler
    with pytest.raises(ConfigError, match="snr_shift_scale, but cogvideox-2b's scheduler uses 3.0"):
        make_sampler("dpm", get_backbone("cogvideox-2b"))
    with pytest.raises(
        ConfigError, match="method.sampler=euler: input should be 'dpm', 'cogvideox_dpm' or 'ddim'"
    ):
        load_config(["exp=ingredients_stage1", "method.sampler=euler"])


def _read_png(path):
    return torch.from_numpy(np.array(Image.open(path)))


def _png(path, image):
    Image.fromarray(((image + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()).save(path)
    return str(path)


def _tile(grid, row, col, h, w):
    y, x = row * (h * TILE_SCALE + GAP), col * (w * TILE_SCALE + GAP)
    return grid[y : y + h * TILE_SCALE : TILE_SCALE, x : x + w * TILE_SCALE : TILE_SCALE]


def test_routing_grid_tiles_are_every_4th_frame_by_every_8th_layer_coloured_by_argmax(tmp_path):
    frames, h, w, n = 9, 2, 3, 3
    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(frames * h * w, n, generator=gen) for _ in range(17)]  # 17 routed blocks
    logits[8][:, 2] = 100.0  # ID 2 is padding: never shown even where its logit is the largest
    valid = torch.tensor([True, True, False])
    grid = routing_grid(logits, valid, (frames, h, w))
    rows, cols = 3, 3  # blocks 0, 8, 16 x frames 0, 4, 8
    assert grid.shape == (rows * (h * TILE_SCALE + GAP) - GAP, cols * (w * TILE_SCALE + GAP) - GAP, 3)
    assert grid.dtype == torch.uint8 and (grid[h * TILE_SCALE, :] == 255).all()  # white gap below row 0
    colors = torch.tensor(PALETTE, dtype=torch.uint8)
    for r, block in enumerate((0, 8, 16)):
        for c, f in enumerate((0, 4, 8)):
            want = logits[block][:, :2].argmax(-1).view(frames, h, w)[f]
            assert torch.equal(_tile(grid, r, c, h, w), colors[want])
    small = [phi[: 3 * h * w] for phi in logits[:2]]  # a tiny model: 2 blocks, 3 latent frames -> 1 tile
    assert routing_grid(small, valid, (3, h, w)).shape == (h * TILE_SCALE, w * TILE_SCALE, 3)
    path = save_png(tmp_path / "maps.png", grid)
    assert torch.equal(_read_png(path), grid)
    assert [p.name for p in tmp_path.iterdir()] == ["maps.png"]  # no temp file left


def test_smoke_sample_uses_dpm_and_writes_the_routing_maps_beside_the_mp4(tmp_path, monkeypatch):
    from vidgen.data.shapes import face_crop
    from vidgen.sampling import main as sample_main

    run = tmp_path / "run"
    base = ["exp=ingredients_stage2", "preset=smoke", f"run.dir={run}", "logger=none"]
    torch.manual_seed(0)
    module = ingredients_module.IngredientsModule(load_config(base))
    ckpt = tmp_path / "w.ckpt"
    torch.save({"state_dict": module.state_dict()}, ckpt)
    used = []
    import vidgen.methods.base as base_module  # the shared sampler loop (DiffusionModule.sample_branches)

    real = base_module.sample_latents

    def spy(denoise, scheduler, *args, **kwargs):
        used.append(type(scheduler))
        return real(denoise, scheduler, *args, **kwargs)

    monkeypatch.setattr(base_module, "sample_latents", spy)
    ids = f"ids=[{_png(tmp_path / 'a.png', face_crop(0))},{_png(tmp_path / 'b.png', face_crop(1))}]"
    out = tmp_path / "clip.mp4"
    argv = [*base, f"ckpt={ckpt}", "prompt=two faces", f"out={out}", ids, "steps=2", "routing_maps=true"]
    assert sample_main(argv) == 0
    assert used == [diffusers.DPMSolverMultistepScheduler]
    maps = tmp_path / "clip.routing.png"
    image = _read_png(maps)
    cfg = module.model.model.config  # tiny: fewer than 8 routed blocks and 4 latent frames -> one tile
    assert cfg.num_layers < 9 and image.shape == (
        cfg.sample_height // 2 * TILE_SCALE,
        cfg.sample_width // 2 * TILE_SCALE,
        3,
    )
    colors = {tuple(c) for c in image.reshape(-1, 3).tolist()}
    assert colors and colors <= {PALETTE[0], PALETTE[1]}  # two IDs, nothing else
    before = maps.read_bytes()
    assert sample_main(argv) != 0 and maps.read_bytes() == before  # the mp4 exists: refused
    out.unlink()  # only the maps exist: refused before sampling too, nothing written
    assert sample_main(argv) != 0 and maps.read_bytes() == before and not out.exists()
    assert sample_main([*base, f"ckpt={ckpt}", f"out={tmp_path / 'x.mp4'}", "routing_maps=true"]) != 0
    assert not (tmp_path / "x.mp4").exists()


def test_the_saved_routing_is_the_final_steps_conditional_branch(tmp_path):
    from vidgen.data.shapes import face_crop
    from vidgen.faces import FacesConfig, FacialExtractor
    from vidgen.faces.sampling import ReferenceFaces
    from vidgen.train import build_datamodule

    cfg = load_config(["exp=ingredients_stage2", "preset=smoke", f"run.dir={tmp_path}", "logger=none"])
    torch.manual_seed(0)
    module = ingredients_module.IngredientsModule(cfg).eval()
    dm = build_datamodule(cfg, module.spec)
    text, mask = dm.text_encoder().encode(["two faces"])
    null, null_mask = dm.null_text()
    crops = torch.stack([face_crop(0), face_crop(1)])
    refs = ReferenceFaces(
        crops=crops, embeddings=FacialExtractor.from_config(FacesConfig(size="tiny"))(crops)
    )
    seen = []
    module.model.register_forward_hook(lambda m, a, o: seen.append([p.clone() for p in m.routing_logits]))
    shape = (16, 3, 8, 8)
    module.generate_faces(refs, text, mask, null[None], null_mask[None], shape, steps=3, codec=dm.codec())
    assert len(seen) == 3 and all(p.shape[0] == 2 for p in seen[-1])  # CFG: [uncond; cond] per step
    logits, valid, grid = module.last_routing
    assert grid == (3, 4, 4) and valid.tolist() == [True, True, False, False]  # max_ids 4, two given
    assert len(logits) == len(seen[-1]) and not torch.equal(seen[-1][0][0], seen[-1][0][1])
    assert all(torch.equal(mine, last[1]) for mine, last in zip(logits, seen[-1]))  # the conditional row
    out = tmp_path / "maps.png"
    module.save_routing_maps(out)
    assert _read_png(out).shape == (4 * TILE_SCALE, 4 * TILE_SCALE, 3)
