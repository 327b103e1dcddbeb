"""Backbone registry: published parameter counts, tiny forward/backward, loading, errors, FLOPs."""

from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from vidgen.backbones import (
    Backbone,
    BackboneSpec,
    backbone_table,
    build_backbone,
    count_parameters,
    get_backbone,
    list_backbones,
    register_backbone,
)
from vidgen.backbones import registry as registry_mod
from vidgen.backbones.profiling import backbone_forward_flops, forward_flops
from vidgen.errors import ConfigError

NAMES = [s.name for s in list_backbones()]

PUBLISHED = {
    "cogvideox-2b": 1_693_783_872,
    "cogvideox-5b": 5_570_283_072,
    "wan2.1-1.3b": 1_418_996_800,
    "modelscope-t2v": 1_411_233_860,
    "sd1.5": 859_520_964,  # the SD 1.x U-Net (issue 14)
}
# Regression pins (counted from the published configs with diffusers 0.42 on the meta device).
PINNED = {
    "cogvideox-5b-i2v": 5_570_479_680,  # 5b + 16 extra patch-embed input channels (learned pos-emb is a buffer)
    "wan2.1-14b": 14_288_491_584,
}


def tiny_inputs(spec: BackboneSpec, batch: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    c, f, h, w = spec.latent_shape(spec.tiny_frames, spec.tiny_height, spec.tiny_width)
    inputs = dict(
        latents=torch.randn(batch, c, f, h, w, generator=g),
        timesteps=torch.randint(0, 1000, (batch,), generator=g),
        text_embeds=torch.randn(batch, spec.tiny_text_len, spec.tiny_text_dim, generator=g),
        text_mask=torch.ones(batch, spec.tiny_text_len, dtype=torch.bool),
    )
    if spec.image_condition:
        inputs["image_latents"] = torch.randn(batch, c, 1, h, w, generator=g)
    return inputs


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models are dominated by per-op overhead; on a shared 2-core box intra-op threads only
    # oversubscribe (seconds instead of milliseconds). Restored after the module.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def restore_registry():
    saved = dict(registry_mod._REGISTRY)
    yield
    registry_mod._REGISTRY.clear()
    registry_mod._REGISTRY.update(saved)


def test_registry_has_all_families():
    assert set(NAMES) >= {*PUBLISHED, *PINNED}
    assert {s.family for s in list_backbones()} >= {"cogvideox", "wan", "modelscope"}


@pytest.mark.parametrize("name", sorted({**PUBLISHED, **PINNED}))
def test_real_parameter_counts(name):
    expected = {**PUBLISHED, **PINNED}[name]
    assert count_parameters(name, "real") == expected
    assert count_parameters(get_backbone(name)) == expected


def test_latent_shape_rules():
    assert get_backbone("cogvideox-2b").latent_shape(49, 480, 720) == (16, 13, 60, 90)
    assert get_backbone("wan2.1-1.3b").latent_shape(81, 480, 832) == (16, 21, 60, 104)
    assert get_backbone("modelscope-t2v").latent_shape(16, 256, 256) == (4, 16, 32, 32)
    assert get_backbone("sd1.5").latent_shape(1, 512, 512) == (4, 1, 64, 64)
    spec = get_backbone("cogvideox-5b")
    assert spec.text_dim_for("real") == 4096 and spec.text_len_for("real") == 226
    assert spec.text_dim_for("tiny") == spec.tiny_text_dim
    cfg = spec.config_for("real")
    cfg["num_layers"] = 1
    assert spec.real_config["num_layers"] == 42  # config_for returns a copy


@pytest.mark.parametrize("name", NAMES)
def test_tiny_forward_backward(name):
    spec = get_backbone(name)
    torch.manual_seed(0)
    bb = build_backbone(name, size="tiny").train()
    assert isinstance(bb, Backbone) and bb.spec is spec and bb.size == "tiny"
    assert sum(p.numel() for p in bb.parameters()) == sum(p.numel() for p in bb.model.parameters())
    assert sum(p.numel() for p in bb.parameters()) == count_parameters(spec, "tiny")
    assert bb.out_channels == spec.latent_channels
    assert bb.in_channels == spec.latent_channels * (2 if spec.image_condition else 1)
    inputs = tiny_inputs(spec)
    out = bb(**inputs)
    # a target of 1, not 0: DiT-style models (STIV) zero-initialise the output layer, and out^2 has
    # zero gradient at out = 0
    (out - 1).pow(2).mean().backward()
    assert out.shape == inputs["latents"].shape
    assert torch.isfinite(out).all()
    grads = [p.grad for p in bb.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    # one more (warm) training step must take well under a second on the CPU
    start = time.perf_counter()
    bb(**inputs).pow(2).mean().backward()
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"tiny step took {elapsed:.2f}s"


def test_image_condition_is_used():
    spec = get_backbone("cogvideox-5b-i2v")
    torch.manual_seed(0)
    bb = build_backbone(spec)
    inputs = tiny_inputs(spec, batch=1)
    with torch.no_grad():
        a = bb(**inputs)
        b = bb(**{**inputs, "image_latents": inputs["image_latents"] + 1})
        with pytest.raises(ValueError, match="image_latents"):
            bb(**{**inputs, "image_latents": None})
    assert not torch.equal(a, b)


def test_sd15_folds_frames_into_batch():
    """sd1.5 is an image U-Net: each frame of [B, C, F, H, W] is denoised as its own image."""
    spec = get_backbone("sd1.5")
    torch.manual_seed(0)
    bb = build_backbone(spec)
    g = torch.Generator().manual_seed(1)
    latents = torch.randn(2, 4, 3, 8, 8, generator=g)
    text = torch.randn(2, spec.tiny_text_len, spec.tiny_text_dim, generator=g)
    t = torch.tensor([10, 900])
    with torch.no_grad():
        out = bb(latents, t, text)
        for i in range(2):
            for k in range(3):
                one = bb.model(latents[i : i + 1, :, k], t[i : i + 1], encoder_hidden_states=text[i : i + 1]).sample
                torch.testing.assert_close(out[i : i + 1, :, k], one, rtol=1e-5, atol=1e-5)
    assert out.shape == latents.shape


def test_wan_text_mask_zero_fills():
    spec = get_backbone("wan2.1-1.3b")
    torch.manual_seed(0)
    bb = build_backbone(spec)
    inputs = tiny_inputs(spec, batch=1)
    mask = inputs["text_mask"].clone()
    mask[:, 5:] = False
    text = inputs["text_embeds"]
    with torch.no_grad():
        masked = bb(**{**inputs, "text_mask": mask})
        garbage = text.clone()
        garbage[:, 5:] = 100.0
        masked_garbage = bb(**{**inputs, "text_embeds": garbage, "text_mask": mask})
        zero = text.clone()
        zero[:, 5:] = 0.0
        zero_filled = bb(**{**inputs, "text_embeds": zero, "text_mask": None})
    torch.testing.assert_close(masked, masked_garbage, rtol=0, atol=0)
    torch.testing.assert_close(masked, zero_filled, rtol=0, atol=0)


def test_cogvideox_rope_matches_pipeline():
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import CogVideoXPipeline

    spec = get_backbone("cogvideox-5b")
    bb = build_backbone(spec, size="tiny")
    # a latent grid different from the config's sample size exercises the crop region
    f, h, w = 3, 8, 12
    fake_pipe = SimpleNamespace(transformer=bb.model, vae_scale_factor_spatial=8)
    ref = CogVideoXPipeline._prepare_rotary_positional_embeddings(
        fake_pipe, h * 8, w * 8, f, torch.device("cpu")
    )
    ours = bb.rotary_embedding(f, h, w, torch.device("cpu"))
    for r, o in zip(ref, ours):
        torch.testing.assert_close(o, r, rtol=0, atol=0)


def test_dtype_keeps_fp32_modules():
    bb = build_backbone("wan2.1-1.3b", dtype=torch.bfloat16)
    assert bb.model.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert bb.model.scale_shift_table.dtype == torch.float32  # listed in _keep_in_fp32_modules
    assert build_backbone("modelscope-t2v", dtype=torch.bfloat16).model.conv_in.weight.dtype == torch.bfloat16


def test_gradient_checkpointing_flag():
    bb = build_backbone("wan2.1-1.3b", gradient_checkpointing=True).train()
    assert bb.model.gradient_checkpointing
    out = bb(**tiny_inputs(get_backbone("wan2.1-1.3b")))
    out.mean().backward()


def _save_pipeline_folder(bb: Backbone, root, subfolder: str):
    bb.model.save_pretrained(root / subfolder)
    (root / "model_index.json").write_text(
        json.dumps({"_class_name": "Pipeline", subfolder: ["diffusers", "x"]})
    )


@pytest.mark.parametrize("name", ["cogvideox-5b-i2v", "wan2.1-1.3b", "modelscope-t2v", "cogvideox-2b"])
def test_load_from_diffusers_folder(name, tmp_path):
    spec = get_backbone(name)
    torch.manual_seed(0)
    original = build_backbone(spec, size="tiny")
    _save_pipeline_folder(original, tmp_path, spec.weights_subfolder)
    inputs = tiny_inputs(spec)
    with torch.no_grad():
        expected = original(**inputs)
        for weights in (tmp_path, tmp_path / spec.weights_subfolder, str(tmp_path)):
            loaded = build_backbone(spec, size="tiny", weights=weights)  # the size the weights have
            assert type(loaded) is spec.adapter_cls
            public = [
                json.loads(json.dumps({k: v for k, v in m.config.items() if not k.startswith("_")}))
                for m in (loaded.model, original.model)
            ]
            assert public[0] == public[1]
            assert torch.equal(loaded(**inputs), expected)


class _NativeNet(nn.Module):
    """A plain (non-diffusers) model whose constructor takes config kwargs."""

    def __init__(self, channels: int = 4, text_dim: int = 8):
        super().__init__()
        self.in_channels = self.out_channels = channels
        self.proj = nn.Conv3d(channels, channels, 1)
        self.text = nn.Linear(text_dim, channels)

    def forward(self, x, t, text):
        return self.proj(x) + self.text(text.mean(1))[:, :, None, None, None] + t[:, None, None, None, None]


class _NativeBackbone(Backbone):
    def forward(self, latents, timesteps, text_embeds, text_mask=None, image_latents=None):
        return self.model(latents, timesteps.float() / 1000, text_embeds)


def _native_spec() -> BackboneSpec:
    return BackboneSpec(
        name="native-test",
        family="native",
        model_cls=_NativeNet,
        adapter_cls=_NativeBackbone,
        real_config=dict(channels=4, text_dim=64),
        tiny_config=dict(channels=4, text_dim=8),
        latent_channels=4,
        patch_size=(1, 1, 1),
        vae_scale=(4, 8, 8),
        text_encoder="none",
        text_encoder_cls="T5EncoderModel",
        text_dim=64,
        text_len=8,
        vae_cls="AutoencoderKLWan",
        objective="flow",
        scheduler_cls="FlowMatchEulerDiscreteScheduler",
        scheduler_config={},
        tiny_text_dim=8,
        tiny_text_len=4,
    )


def test_native_model_registers_and_loads(tmp_path, restore_registry):
    from safetensors.torch import save_file

    spec = register_backbone(_native_spec())
    assert get_backbone("native-test") is spec
    assert count_parameters(spec, "real") == 4 * 4 + 4 + 64 * 4 + 4
    torch.manual_seed(0)
    original = build_backbone("native-test")
    sub = tmp_path / "transformer"
    sub.mkdir()
    (sub / "config.json").write_text(json.dumps({"_class_name": "_NativeNet", **spec.tiny_config}))
    save_file(original.model.state_dict(), str(sub / "model.safetensors"))
    inputs = tiny_inputs(spec)
    inputs.pop("text_mask")
    for weights in (tmp_path, sub):
        loaded = build_backbone("native-test", size="tiny", weights=weights)
        assert torch.equal(loaded(**inputs), original(**inputs))
    assert forward_flops(original, inputs) > 0


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        get_backbone("cogvideox-99b")
    msg = str(err.value)
    assert "cogvideox-99b" in msg
    assert all(name in msg for name in NAMES)
    with pytest.raises(ConfigError, match="cogvideox-99b"):
        build_backbone("cogvideox-99b")


def test_real_without_weights_says_how_to_fix():
    with pytest.raises(ConfigError) as err:
        build_backbone("wan2.1-14b", size="real")
    msg = str(err.value)
    assert "backbone.weights=" in msg and "backbone.init=random" in msg and "backbone.size=tiny" in msg


def test_bad_size_and_init():
    with pytest.raises(ConfigError, match="backbone.size"):
        build_backbone("wan2.1-1.3b", size="huge")
    with pytest.raises(ConfigError, match="backbone.init"):
        build_backbone("wan2.1-1.3b", init="zeros")


def test_missing_or_bad_weights_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as err:
        build_backbone("cogvideox-2b", size="real", weights=missing)
    assert str(missing) in str(err.value) and "transformer/" in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError) as err:
        build_backbone("modelscope-t2v", weights=empty)
    assert str(empty) in str(err.value) and "unet/" in str(err.value) and "model_index.json" in str(err.value)


def test_forward_flops_linear_by_hand():
    lin = nn.Linear(8, 4)
    assert forward_flops(lin, {"input": torch.randn(3, 8)}) == 2 * 8 * 4 * 3
    with torch.device("meta"):
        meta_lin = nn.Linear(16, 5)
    assert forward_flops(meta_lin, {"input": torch.empty(2, 7, 16, device="meta")}) == 2 * 16 * 5 * 2 * 7


def test_forward_flops_counts_attention():
    # q@k^T and softmax@v: 2 FLOPs per multiply-add each
    q = torch.randn(1, 2, 16, 8)

    class Attn(nn.Module):
        def forward(self, q):
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    expected = 2 * (2 * 1 * 2 * 16 * 16 * 8)
    assert forward_flops(Attn(), {"q": q}) == expected
    assert forward_flops(Attn(), {"q": q.to("meta")}) == expected


@pytest.mark.parametrize("name", NAMES)
def test_backbone_flops_tiny(name):
    flops = backbone_forward_flops(name, "tiny")
    assert flops > 0 and math.isfinite(flops)


def test_real_flops_plausible():
    # Wan 1.3B at 81x480x832: 21x30x52 = 32760 tokens; ~2*params*tokens for the linears plus
    # 4*L^2*dim per layer of self-attention.
    spec = get_backbone("wan2.1-1.3b")
    tokens = 21 * 30 * 52
    linear = 2 * count_parameters(spec) * tokens
    attention = 4 * tokens**2 * 1536 * 30
    flops = backbone_forward_flops(spec, "real", 81, 480, 832)
    assert 0.8 * (linear + attention) < flops < 1.2 * (linear + attention)


def test_backbone_table_fast_and_complete():
    start = time.perf_counter()
    rows = backbone_table()
    assert time.perf_counter() - start < 15
    assert [r["name"] for r in rows] == NAMES
    keys = {
        "name",
        "family",
        "params",
        "latent_channels",
        "objective",
        "patch_size",
        "text_encoder",
        "vae",
        "default_resolution",
        "params_by_variant",
    }
    for row in rows:
        assert set(row) == keys
        json.dumps(row)
    by_name = {r["name"]: r for r in rows}
    for name, count in {**PUBLISHED, **PINNED}.items():
        assert by_name[name]["params"] == count
    assert by_name["wan2.1-1.3b"]["default_resolution"] == [81, 480, 832]
