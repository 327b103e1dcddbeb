"""The STIV DiT: Table 1 parameter arithmetic, one test per Table 2 / 3 switch, MaskDiT token
bookkeeping, causal temporal attention, and the zero-initialised temporal layers."""

from __future__ import annotations

import pytest
import torch

from vidgen.backbones import build_backbone, count_parameters, get_backbone
from vidgen.backbones.stiv_dit import STIVDiT
from vidgen.backbones.stiv_layers import SingletonCondition, apply_rope, rope_1d
from vidgen.methods.stiv.masking import draw_keep
from vidgen.methods.stiv.progressive import load_into

TINY = get_backbone("stiv-xl").config_for("tiny")


def tiny(**overrides) -> STIVDiT:
    torch.manual_seed(0)
    return STIVDiT(**{**TINY, **overrides})


def randomize(model: STIVDiT, seed: int = 1) -> STIVDiT:
    """Non-zero weights everywhere (the init zeroes gates, temporal outputs and the final layer)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model


def inputs(frames: int = 4, batch: int = 2, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, 16, dtype=torch.bool)
    mask[1, 6:] = False
    micro = {
        "original_size": torch.tensor([[64.0, 64.0]] * batch),
        "crop": torch.zeros(batch, 2),
        "stride": torch.full((batch,), 3.0),
    }
    return dict(
        hidden_states=torch.randn(batch, 4, frames, 8, 8, generator=gen),
        timestep=torch.tensor([100.0, 700.0])[:batch],
        encoder_hidden_states=torch.randn(batch, 16, 32, generator=gen),
        encoder_attention_mask=mask,
        micro=micro,
    )


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- Table 1
@pytest.mark.parametrize(
    "name, t2i, t2v, blocks_t2i_b, blocks_t2v_b",
    [
        ("stiv-xl", 659_647_504, 819_078_944, 0.595, 0.743),
        pytest.param("stiv-xxl", 1_548_590_096, 1_926_377_504, 1.434, 1.793, marks=pytest.mark.slow),
        pytest.param("stiv-m", 7_391_410_192, 9_204_043_808, 6.946, 8.682, marks=pytest.mark.slow),
    ],
)
def test_parameter_counts_of_the_three_sizes(name, t2i, t2v, blocks_t2i_b, blocks_t2v_b):
    spec = get_backbone(name)
    assert count_parameters(spec, "real", "t2i") == t2i
    assert count_parameters(spec, "real", "t2v") == t2v
    assert count_parameters(spec, "real") == t2v  # the registry entry is the video model
    cfg = spec.config_for("real")
    d, layers = cfg["hidden_size"], cfg["num_layers"]
    dh = d // cfg["num_heads"]
    assert dh == 64  # Table 1: heads of 64
    # Per block: spatial SA + cross-attention + MLP-4x = 16 d^2 + 13 d + 4 dh (QK-norm); + temporal SA.
    per_t2i, per_t2v = 16 * d * d + 13 * d + 4 * dh, 20 * d * d + 17 * d + 6 * dh
    with torch.device("meta"):
        model_t2i, model_t2v = STIVDiT(**spec.config_for("real", "t2i")), STIVDiT(**cfg)
    assert n_params(model_t2i.blocks) == layers * per_t2i
    assert n_params(model_t2v.blocks) == layers * per_t2v
    # The arithmetic from the stated dims (16 d^2 L / 20 d^2 L); biases and norms add < 0.1 %
    assert round(16 * d * d * layers / 1e9, 3) == blocks_t2i_b
    assert round(20 * d * d * layers / 1e9, 3) == blocks_t2v_b
    assert abs(layers * per_t2v / (20 * d * d * layers) - 1) < 1e-3


# ----------------------------------------------------------------------------- Table 2 switches
def test_qk_norm_adds_exactly_the_norm_parameters():
    on, off = tiny(qk_norm=True), tiny(qk_norm=False)
    attentions = (TINY["num_layers"] + TINY["decoder_blocks"]) * 3  # spatial, temporal, cross per block
    head_dim = TINY["hidden_size"] // TINY["num_heads"]
    assert n_params(on) - n_params(off) == attentions * 2 * head_dim
    extra = set(on.state_dict()) - set(off.state_dict())
    assert extra and all(k.endswith(("norm_q.weight", "norm_k.weight")) for k in extra)


def test_sandwich_norm_adds_no_parameters_and_changes_the_block():
    on, off = randomize(tiny(sandwich_norm=True)), tiny(sandwich_norm=False)
    off.load_state_dict(on.state_dict())  # same keys: the norms are stateless
    with torch.no_grad():
        assert not torch.allclose(on(**inputs()), off(**inputs()))
        # post-norm: the spatial attention's residual branch has zero mean and unit variance per token
        x = torch.randn(2, 2, 16, 32)
        seen = {}
        on.blocks[0].attn_s.register_forward_hook(lambda m, a, out: seen.setdefault("raw", out))
        on.blocks[0].post(x)
        on(**inputs())
        normed = on.blocks[0].post(seen["raw"])
        torch.testing.assert_close(normed.mean(-1), torch.zeros(normed.shape[:-1]), atol=1e-5, rtol=0)


def test_cond_norm_normalises_each_singleton_embedding():
    t, pooled = torch.tensor([10.0, 900.0]), torch.randn(2, 32)
    micro = {
        "original_size": torch.tensor([[64.0, 64.0]] * 2),
        "crop": torch.zeros(2, 2),
        "stride": torch.ones(2),
    }
    for cond_norm in (True, False):
        torch.manual_seed(0)
        single = SingletonCondition(32, 32, pooled_text=True, micro_conditions=True, cond_norm=cond_norm)
        before = single(t, pooled, micro)
        with torch.no_grad():  # scale the timestep embedding by 10
            single.time_embed.linear_2.weight.mul_(10)
            single.time_embed.linear_2.bias.mul_(10)
        after = single(t, pooled, micro)
        change = (before - after).abs().max().item()
        assert change < 1e-3 if cond_norm else change > 1.0


def test_shared_adaln_removes_the_per_layer_modulation():
    shared, per_layer = tiny(shared_adaln=True), tiny(shared_adaln=False)
    d, blocks = TINY["hidden_size"], TINY["num_layers"] + TINY["decoder_blocks"]
    assert shared.adaln is not None and all(b.adaln is None for b in shared.blocks)
    assert per_layer.adaln is None and all(b.adaln is not None for b in per_layer.blocks)
    assert n_params(per_layer) - n_params(shared) == (blocks - 1) * (6 * d * d + 6 * d)


def test_micro_conditions_add_three_mlps_and_reach_the_output():
    on, off = randomize(tiny(micro_conditions=True)), tiny(micro_conditions=False)
    d, f = TINY["hidden_size"], SingletonCondition.FREQ
    mlp = lambda n_in: n_in * d + d + d * d + d  # noqa: E731
    assert n_params(on) - n_params(off) == mlp(2 * f) + mlp(2 * f) + mlp(f)
    x = inputs()
    moved = {**x, "micro": {**x["micro"], "crop": torch.tensor([[8.0, 16.0], [0.0, 4.0]])}}
    with torch.no_grad():
        assert not torch.allclose(on(**x), on(**moved))
        off_model = randomize(off)
        torch.testing.assert_close(off_model(**x), off_model(**moved), rtol=0, atol=0)


def test_rope_is_relative_and_sincos_has_the_same_parameters():
    assert n_params(tiny(pos_embed="rope")) == n_params(tiny(pos_embed="sincos"))
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m: int, n: int) -> torch.Tensor:
        cos, sin = rope_1d(16, torch.tensor([m, n]), 10000.0, 1.0)
        return (apply_rope(q, cos[:1], sin[:1]) * apply_rope(k, cos[1:], sin[1:])).sum()

    torch.testing.assert_close(score(3, 1), score(10, 8))  # depends on m - n only
    assert not torch.allclose(score(3, 1), score(3, 2))
    # interpolation (scale 2) at position 2m equals extension at m
    c2, s2 = rope_1d(16, torch.tensor([6]), 10000.0, 2.0)
    c1, s1 = rope_1d(16, torch.tensor([3]), 10000.0, 1.0)
    torch.testing.assert_close((c2, s2), (c1, s1))


# ----------------------------------------------------------------------------- Table 3 switches
@pytest.mark.parametrize("pt, frames", [(1, 4), (2, 4), (4, 4)])
def test_temporal_patch_sets_the_temporal_token_count(pt, frames):
    model = tiny(temporal_patch_size=pt)
    seen = {}
    model.blocks[0].register_forward_pre_hook(lambda m, args: seen.update(x=args[0].shape))
    with torch.no_grad():
        out = model(**inputs(frames))
    assert seen["x"] == (2, frames // pt, 16, TINY["hidden_size"])  # [B, T, S, D], S = (8/2)^2
    assert out.shape == (2, 4, frames, 8, 8)


def test_maskdit_keeps_exactly_half_of_the_spatial_tokens_and_unmasks_before_the_decoder():
    gen = torch.Generator().manual_seed(0)
    keep = draw_keep(2, 16, 0.5, gen)
    assert keep.shape == (2, 8) and all(len(set(row.tolist())) == 8 for row in keep)
    assert (keep.diff(dim=-1) > 0).all()  # sorted
    keep_t = draw_keep(2, 2, 0.5, gen)
    model = randomize(tiny())
    seen = {}
    model.blocks[0].register_forward_pre_hook(lambda m, a: seen.update(main=a[0].shape))
    model.decoder[0].register_forward_pre_hook(lambda m, a: seen.update(decoder=a[0].shape))
    with torch.no_grad():
        out = model(**inputs(), keep_spatial=keep, keep_temporal=keep_t)
    assert seen["main"] == (2, 1, 8, 32) and seen["decoder"] == (2, 2, 16, 32)
    assert out.shape == (2, 4, 4, 8, 8)


def test_unmask_puts_kept_tokens_back_in_place():
    model = tiny()
    with torch.no_grad():
        model.mask_token.fill_(-1.0)
    x = torch.arange(2 * 1 * 2 * 1, dtype=torch.float).reshape(2, 1, 2, 1).expand(-1, -1, -1, 32)
    full = model._unmask(
        x, t=2, s=4, keep_spatial=torch.tensor([[0, 3], [1, 2]]), keep_temporal=torch.tensor([[1], [0]])
    )
    assert full.shape == (2, 2, 4, 32)
    assert full[0, 1, 0, 0] == 0 and full[0, 1, 3, 0] == 1 and full[1, 0, 1, 0] == 2 and full[1, 0, 2, 0] == 3
    assert (full[0, 0] == -1).all() and (full[1, 1] == -1).all() and full[0, 1, 1, 0] == -1


@pytest.mark.parametrize("causal", [True, False])
def test_causal_temporal_attention_makes_frame_t_independent_of_later_frames(causal):
    model = randomize(tiny(causal_temporal=causal, temporal_patch_size=1))
    x = inputs(frames=4)
    later = {**x, "hidden_states": x["hidden_states"].clone()}
    later["hidden_states"][:, :, 2:] += 1.0  # change frames 2, 3 only
    with torch.no_grad():
        a, b = model(**x), model(**later)
    early_same = torch.equal(a[:, :, :2], b[:, :, :2])
    assert early_same == causal
    assert not torch.allclose(a[:, :, 2:], b[:, :, 2:])


# ----------------------------------------------------------------------------- T2I -> T2V
def test_zero_initialised_temporal_attention_is_the_identity_bit_for_bit():
    video = randomize(tiny(temporal_attention=True, temporal_patch_size=1))
    for blk in [*video.blocks, *video.decoder]:
        torch.nn.init.zeros_(blk.attn_t.to_out.weight)
        torch.nn.init.zeros_(blk.attn_t.to_out.bias)
    image = tiny(temporal_attention=False, temporal_patch_size=1)
    image.load_state_dict({k: v for k, v in video.state_dict().items() if ".attn_t." not in k})
    with torch.no_grad():
        assert torch.equal(video(**inputs()), image(**inputs()))


def test_t2v_initialised_from_t2i_reproduces_it_on_a_repeated_frame():
    t2i = randomize(tiny(temporal_attention=False, temporal_patch_size=1))
    t2v = tiny(temporal_attention=True, temporal_patch_size=2)
    report = load_into(t2v, t2i.state_dict())
    assert report["new"] and all(".attn_t." in k for k in report["new"])
    x = inputs(frames=1)
    video = {**x, "hidden_states": x["hidden_states"].repeat(1, 1, 2, 1, 1)}  # [B, C, 2, H, W], equal frames
    with torch.no_grad():
        ref, out = t2i(**x), t2v(**video)
    torch.testing.assert_close(out[:, :, 0:1], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, :, 1:2], ref, atol=1e-5, rtol=1e-5)


def test_mapping_refuses_a_model_that_differs_in_more_than_time():
    from vidgen.errors import ConfigError

    with pytest.raises(ConfigError, match="caption_proj.0.weight.*text_dim|caption_proj.0.weight"):
        load_into(tiny(text_dim=48), tiny().state_dict())


def test_registry_adapter_defaults_the_micro_conditions():
    backbone = build_backbone("stiv-xl", size="tiny", init="random")
    randomize(backbone.model)
    x = inputs()
    with torch.no_grad():
        out = backbone(
            x["hidden_states"], x["timestep"], x["encoder_hidden_states"], x["encoder_attention_mask"]
        )
        ref = backbone.model(**{**x, "micro": backbone.default_micro(x["hidden_states"])})
    assert torch.equal(out, ref)
    assert backbone.default_micro(x["hidden_states"])["original_size"][0].tolist() == [64.0, 64.0]


def test_learned_positions_add_their_tables_and_start_as_sincos():
    sincos, learned = tiny(pos_embed="sincos"), tiny(pos_embed="learned", pos_grid=[2, 4, 4])
    assert n_params(learned) - n_params(sincos) == (2 + 16) * TINY["hidden_size"]
    randomize(sincos)
    learned.load_state_dict(sincos.state_dict(), strict=False)  # all but the two tables
    with torch.no_grad():
        torch.testing.assert_close(learned(**inputs()), sincos(**inputs()))  # init = the sincos values
        learned.pos_spatial.add_(1.0)
        assert not torch.allclose(learned(**inputs()), sincos(**inputs()))
    with pytest.raises(ValueError, match="learned positions cover 2 x 4 x 4 tokens"):
        learned(**inputs(frames=8))
