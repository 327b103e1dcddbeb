"""vidgen.instances.gated_attention: GLIGEN's gated self-attention block and grounding tokens."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention import GatedSelfAttentionDense

from vidgen.instances.gated_attention import (
    GatedSelfAttention,
    GroundingTokenNet,
    gated_block_parameters,
    grounding_slots,
    pool_phrases,
)


def _n(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_block_parameter_formula_matches_code_and_paper_numbers():
    # official-code-facts A.2: c = 768 -> d=320: 1,888,962; 640: 7,054,722; 1280: 27,216,642
    assert gated_block_parameters(320, 768) == 1_888_962
    assert gated_block_parameters(640, 768) == 7_054_722
    assert gated_block_parameters(1280, 768) == 27_216_642
    for d, c, heads in ((24, 32, 2), (64, 16, 4), (320, 768, 8)):
        with torch.device("meta"):
            block = GatedSelfAttention(d, c, heads, d // heads)
            ref = GatedSelfAttentionDense(d, c, heads, d // heads)
        assert _n(block) == _n(ref) == gated_block_parameters(d, c)
    with pytest.raises(ValueError, match="heads x head_dim"):
        GatedSelfAttention(24, 32, 2, 8)


def test_zero_gates_are_identity_bit_for_bit_and_open_gates_change_x():
    torch.manual_seed(0)
    block = GatedSelfAttention(16, 8, 2, 8)
    x, objs = torch.randn(3, 2 * 5, 16), torch.randn(3 * 2, 4, 8)
    assert torch.equal(block(x, objs, frames=2), x)
    with torch.no_grad():
        block.alpha_attn.fill_(0.5)
    assert not torch.allclose(block(x, objs, frames=2), x)


def test_video_layout_attends_per_frame():
    """A [B, F*S, d] video block = diffusers' block on each frame with that frame's tokens."""
    torch.manual_seed(0)
    block = GatedSelfAttention(16, 8, 2, 8)
    with torch.no_grad():
        block.alpha_attn.fill_(0.7)
        block.alpha_dense.fill_(-0.3)
    b, f, s = 2, 3, 5
    x, objs = torch.randn(b, f * s, 16), torch.randn(b * f, 4, 8)
    out = block(x, objs, frames=f)
    for i in range(b):
        for k in range(f):
            one = GatedSelfAttentionDense.forward(
                block, x[i : i + 1, k * s : (k + 1) * s], objs[i * f + k : i * f + k + 1]
            )
            torch.testing.assert_close(out[i : i + 1, k * s : (k + 1) * s], one, rtol=1e-5, atol=1e-6)
    # shared grounding ([B, N, c]) is repeated over the frames
    shared = torch.randn(b, 4, 8)
    torch.testing.assert_close(block(x, shared, frames=f), block(x, shared.repeat_interleave(f, 0), frames=f))


def test_token_net_sizes_and_null_slots():
    with torch.device("meta"):
        net = GroundingTokenNet(768, 768)
    # (768 + 64) -> 512 -> 512 -> 768 + null phrase (768) + null box (64): official-code-facts A.2
    assert _n(net) == 1_083_968
    assert [m.in_features for m in net.linears if hasattr(m, "in_features")] == [832, 512, 512]
    torch.manual_seed(0)
    net = GroundingTokenNet(8, 16)
    with torch.no_grad():
        net.null_positive_feature.normal_()
        net.null_position_feature.normal_()
    boxes, phrases = torch.rand(2, 3, 5, 4), torch.randn(2, 3, 5, 8)
    masks = torch.ones(2, 3, 5)
    masks[:, :, 3:] = 0
    out = net(boxes, masks, phrases)
    assert out.shape == (2, 3, 5, 16)
    # an empty slot's token is the null token, whatever box / phrase it holds
    out2 = net(torch.rand_like(boxes), masks, torch.randn_like(phrases))
    torch.testing.assert_close(out[..., 3:, :], out2[..., 3:, :])
    assert torch.allclose(out[..., 3:, :], out[0, 0, 3], atol=1e-6)
    assert not torch.allclose(out[..., :3, :], out2[..., :3, :])


def test_pool_eos_is_clip_pooler_output():
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    cfg = CLIPTextConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=12,
        bos_token_id=1,
        eos_token_id=3,
        pad_token_id=0,
    )  # eos 2 = HF's legacy argmax path
    clip = CLIPTextModel(cfg).eval()
    ids = torch.tensor([[1, 7, 9, 3, 0, 0], [1, 5, 3, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]])
    with torch.no_grad():
        out = clip(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(pool_phrases(out.last_hidden_state, mask), out.pooler_output, rtol=0, atol=0)
    mean = pool_phrases(out.last_hidden_state, mask, "mean")
    torch.testing.assert_close(mean[1], out.last_hidden_state[1, :3].mean(0))
    assert torch.equal(pool_phrases(torch.ones(1, 4, 3), torch.zeros(1, 4)), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="pool="):
        pool_phrases(out.last_hidden_state, mask, "max")


def test_grounding_slots_per_latent_frame():
    b, n, f = 2, 3, 9
    boxes = torch.rand(b, n, f, 4)
    visible = torch.ones(b, n, f, dtype=torch.bool)
    visible[0, 1, 4] = False  # instance 1 leaves pixel frame 4 = latent frame 1 at T_ds = 4
    valid = torch.tensor([[True, True, True], [True, True, False]])
    phrases = torch.randn(b, n, 8)
    out = grounding_slots(boxes, visible, valid, phrases, latent_frames=3, t_ds=4)
    assert out["boxes"].shape == (2, 3, 30, 4) and out["phrases"].shape == (2, 3, 30, 8)
    assert out["masks"].sum().item() == 3 * 3 + 2 * 3 - 1
    assert out["masks"][0, 1, 1] == 0 and out["masks"][1, :, 2].eq(0).all()
    torch.testing.assert_close(out["boxes"][0, 2, 0], boxes[0, 0, 8])
    torch.testing.assert_close(out["phrases"][1, 0, 1], phrases[1, 1])
    with pytest.raises(ValueError, match="grounding frames"):
        grounding_slots(boxes, visible, valid, phrases, latent_frames=2, t_ds=4)
    with pytest.raises(ValueError, match="30 grounding slots"):
        grounding_slots(
            torch.rand(1, 31, 1, 4), torch.ones(1, 31, 1), torch.ones(1, 31), torch.randn(1, 31, 8), 1, 1
        )
