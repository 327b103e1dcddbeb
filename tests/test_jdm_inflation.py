"""JDM channel inflation: zero-init invariance on every family, layer shapes, config round-trip,
and the Table 6 parameter overheads through `vidgen profile`."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vidgen.backbones import build_backbone, get_backbone
from vidgen.config import load_config
from vidgen.errors import ConfigError
from vidgen.methods.base import DiffusionModule
from vidgen.methods.jdm.inflation import added_parameters, inflate, is_inflated
from vidgen.methods.jdm.module import JDMModule

FAMILIES = ["cogvideox-2b", "modelscope-t2v", "wan2.1-1.3b", "cogvideox-5b-i2v"]


def _tiny(name: str, seed: int = 0):
    torch.manual_seed(seed)
    spec = get_backbone(name)
    backbone = build_backbone(spec, size="tiny", init="random")
    with torch.no_grad():  # diffusers zero-inits some output layers; make every weight count
        for p in backbone.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return spec, backbone


def _inputs(spec, backbone, batch=2):
    return DiffusionModule.example_inputs(
        spec, "tiny", spec.tiny_frames, spec.tiny_height, spec.tiny_width, model=backbone, batch=batch
    )


@pytest.mark.parametrize("name", FAMILIES)
def test_zero_init_keeps_the_video_prediction_exactly(name):
    spec, backbone = _tiny(name)
    inputs = _inputs(spec, backbone)
    with torch.no_grad():
        reference = backbone(**inputs)
    assert reference.abs().max() > 1e-3
    n_before = sum(p.numel() for p in backbone.parameters())
    expected_added = added_parameters(spec, backbone)
    inflate(backbone)
    assert sum(p.numel() for p in backbone.parameters()) - n_before == expected_added
    c = spec.latent_channels
    x = inputs["latents"]
    signal = torch.randn_like(x) * 3  # whatever the signal channels hold
    with torch.no_grad():
        out = backbone(**{**inputs, "latents": torch.cat([x, signal], dim=1)})
    assert out.shape == (x.shape[0], 2 * c, *x.shape[2:])
    assert torch.equal(out[:, :c], reference)  # bit-exact, not just close
    assert torch.equal(out[:, c:], torch.zeros_like(out[:, c:]))


@pytest.mark.parametrize("name", FAMILIES)
def test_new_output_weights_write_only_the_signal_channels(name):
    """Catches a wrong (channel, patch) layout of the grown output projection (e.g. Wan's channels-last)."""
    spec, backbone = _tiny(name)
    inputs = _inputs(spec, backbone)
    inflate(backbone)
    c = spec.latent_channels
    x = inputs["latents"]
    inputs = {**inputs, "latents": torch.cat([x, torch.randn_like(x)], dim=1)}
    with torch.no_grad():
        before = backbone(**inputs)
        out_layer = backbone.model.get_submodule(spec.output_proj)
        new_rows = out_layer.weight.flatten(1).eq(0).all(dim=1)
        assert new_rows.sum() == new_rows.numel() // 2  # half of the output rows are new
        out_layer.weight[new_rows] = torch.randn_like(out_layer.weight[new_rows])
        after = backbone(**inputs)
    assert torch.equal(after[:, :c], before[:, :c])
    assert after[:, c:].abs().max() > 1e-3


def test_inflated_layer_shapes_cogvideox_and_modelscope():
    spec, cog = _tiny("cogvideox-2b")
    inflate(cog)
    d = cog.model.config.num_attention_heads * cog.model.config.attention_head_dim
    assert tuple(cog.model.patch_embed.proj.weight.shape) == (d, 32, 2, 2)
    assert tuple(cog.model.proj_out.weight.shape) == (2 * 2 * 32, d)
    assert (cog.model.config.in_channels, cog.model.config.out_channels) == (32, 32)
    assert cog.in_channels == 32 and cog.out_channels == 32

    spec, ms = _tiny("modelscope-t2v")
    inflate(ms)
    width = ms.model.config.block_out_channels[0]
    assert tuple(ms.model.conv_in.weight.shape) == (width, 8, 3, 3)
    assert tuple(ms.model.conv_out.weight.shape) == (8, width, 3, 3)
    assert tuple(ms.model.conv_out.bias.shape) == (8,)
    assert ms.model.conv_in.in_channels == 8 and ms.model.conv_out.out_channels == 8

    spec, i2v = _tiny("cogvideox-5b-i2v")  # [video 16 | mask 16 | image 16]
    original = i2v.model.patch_embed.proj.weight.detach().clone()
    inflate(i2v)
    grown = i2v.model.patch_embed.proj.weight
    assert tuple(grown.shape[:2]) == (original.shape[0], 48)
    assert torch.equal(grown[:, :16], original[:, :16]) and torch.equal(grown[:, 32:], original[:, 16:])
    assert not grown[:, 16:32].any()
    assert (i2v.in_channels, i2v.out_channels) == (48, 32)


@pytest.mark.parametrize("name", ["cogvideox-2b", "modelscope-t2v"])
def test_save_pretrained_round_trip_and_idempotence(name, tmp_path):
    spec, backbone = _tiny(name)
    inflate(backbone)
    assert is_inflated(backbone)
    shapes = {k: v.shape for k, v in backbone.state_dict().items()}
    assert inflate(backbone) is backbone  # idempotent
    assert {k: v.shape for k, v in backbone.state_dict().items()} == shapes
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(0.01)  # trained weights, new channels included
    backbone.model.save_pretrained(tmp_path / "jdm")
    cfg = load_config(["exp=jdm_cogvideox" if name.startswith("cog") else "exp=jdm_modelscope", "preset=smoke",
                       f"backbone.weights={tmp_path / 'jdm'}"])
    loaded = JDMModule.build_model(cfg, spec)  # loads the inflated folder, inflate() is a no-op
    assert (loaded.in_channels, loaded.out_channels) == (backbone.in_channels, backbone.out_channels)
    inputs = JDMModule.example_inputs(spec, "tiny", spec.tiny_frames, spec.tiny_height, spec.tiny_width, model=loaded)
    assert inputs["latents"].shape[1] == 2 * spec.latent_channels
    state, reloaded = backbone.state_dict(), loaded.state_dict()
    assert set(state) == set(reloaded) and all(torch.equal(state[k], reloaded[k]) for k in state)
    with torch.no_grad():  # same weights; float kernels may differ by rounding on freshly loaded memory
        torch.testing.assert_close(loaded(**inputs), backbone(**inputs), rtol=1e-5, atol=1e-5)


def test_backbone_without_projections_is_refused():
    spec, backbone = _tiny("cogvideox-2b")
    bare = dataclasses.replace(spec, input_proj=None)
    backbone.spec = bare
    with pytest.raises(ConfigError, match="input_proj"):
        inflate(backbone)


@pytest.mark.parametrize(
    "exp, params, rounded, pct",
    [
        ("jdm_cogvideox", (1_693_783_872, 1_694_029_696), ("1.6938", "1.6940"), "+0.015%"),
        ("jdm_modelscope", (1_411_233_860, 1_411_256_904), ("1.4112", "1.4113"), "+0.002%"),
    ],
)
def test_profile_reproduces_table6_parameter_overheads(exp, params, rounded, pct, monkeypatch):
    import vidgen.profile as profile_mod

    monkeypatch.setattr(profile_mod, "forward_flops", lambda model, inputs: 1.0)  # FLOPs: not what this checks
    result = profile_mod.profile(load_config([f"exp={exp}"]))
    before, after = result["backbone"]["params"], result["method"]["params"]
    assert (before, after) == params
    assert (f"{before / 1e9:.4f}", f"{after / 1e9:.4f}") == rounded  # the paper's 4 decimals of B
    assert f"{result['overhead']['params_pct']:+.3f}%" == pct
