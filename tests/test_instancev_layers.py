"""InstanceV on a tiny Wan2.1: identity at init (bit for bit), instance inputs reach IMCA, STAPE, freezing."""

from __future__ import annotations

import copy

import pytest
import torch

from vidgen.backbones import build_backbone
from vidgen.instances import instance_token_masks
from vidgen.methods.instancev.denoiser import InstanceVWan
from vidgen.methods.instancev.layers import IMCA


@pytest.fixture
def pair():
    torch.manual_seed(0)
    plain = build_backbone("wan2.1-1.3b", size="tiny", init="random")
    return plain, InstanceVWan(copy.deepcopy(plain))


def _inputs(n=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 16, 3, 8, 8, generator=g)  # 9 pixel frames -> 3 latent frames, 4x4 tokens
    text = torch.randn(2, 16, 32, generator=g)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[:, 10:] = False
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0]])[:n]
    boxes = boxes[None, :, None].expand(2, n, 9, 4)
    valid = torch.ones(2, n, dtype=torch.bool)
    valid[1, -1] = False
    inst = {
        "instance_embeds": torch.randn(2, n, 16, 32, generator=g),
        "instance_masks": instance_token_masks(
            boxes, torch.ones(2, n, 9, dtype=torch.bool), valid, 3, 4, (4, 4)
        ),
    }
    return (x, torch.tensor([500, 20]), text, mask), inst


@torch.no_grad()
def test_zero_gates_reproduce_the_backbone_bit_for_bit_and_grounding_arrives(pair):
    plain, iv = pair
    args, inst = _inputs()
    reference = plain(*args)
    assert torch.equal(iv(*args, **inst), reference)  # m_v = 0: identical to WanTransformer3DModel.forward
    assert torch.equal(iv(*args), reference)  # no instances: IMCA skipped
    iv.set_gates(1.0)
    grounded = iv(*args, **inst)
    assert not torch.allclose(grounded, reference, atol=1e-3)  # the instance inputs reach IMCA
    other = dict(inst, instance_embeds=inst["instance_embeds"].flip(1))
    assert not torch.allclose(iv(*args, **other), grounded, atol=1e-4)  # prompts matter
    empty = dict(inst, instance_masks=torch.zeros_like(inst["instance_masks"]))
    assert torch.equal(iv(*args, **empty), reference)  # no covered token: IMCA adds exactly 0


@torch.no_grad()
def test_tokens_outside_every_box_are_untouched_by_imca(pair):
    _, iv = pair
    imca = iv.imca[0]
    imca.m_v.fill_(1.0)
    v = torch.randn(1, 2 * 4, 24)  # 2 frames of 4 tokens, D = 24
    inst = torch.randn(1, 6, 24)  # 2 instances x 3 tokens
    mask = torch.zeros(1, 2, 1, 4, 6, dtype=torch.bool)
    mask[0, 0, 0, 0, :3] = True  # frame 0, token 0 -> instance 0
    mask[0, 1, 0, 2, 3:] = True  # frame 1, token 2 -> instance 1
    out = imca(v, inst, mask, frames=2)
    changed = (out != v).any(-1)[0]
    assert changed.tolist() == [True, False, False, False, False, False, True, False]
    assert torch.isfinite(out).all()


def test_imca_is_a_copy_of_the_blocks_cross_attention_and_only_additions_train(pair):
    plain, iv = pair
    for block, imca in zip(iv.model.blocks, iv.imca):
        assert isinstance(imca, IMCA)
        for name, p in block.attn2.named_parameters():
            assert torch.equal(dict(imca.attn.named_parameters())[name], p)
        assert torch.equal(imca.norm.weight, block.norm2.weight)
        assert torch.equal(imca.m_v, torch.zeros_like(imca.m_v))
    trainable = {n.split(".")[0] for n, p in iv.named_parameters() if p.requires_grad}
    assert trainable == {"imca", "stape"}
    assert not any(p.requires_grad for p in iv.model.parameters())


def test_stape_changes_the_instance_tokens_and_can_be_disabled(pair):
    plain, iv = pair
    no_stape = InstanceVWan(copy.deepcopy(plain), stape=False)
    args, inst = _inputs()
    with torch.no_grad():
        iv.set_gates(1.0)
        no_stape.set_gates(1.0)
        a, b = iv(*args, **inst), no_stape(*args, **inst)
        assert not torch.allclose(a, b, atol=1e-5)
        assert no_stape.stape is None
        n_extra = sum(p.numel() for p in iv.stape.parameters())
        assert (
            sum(p.numel() for p in iv.parameters()) - sum(p.numel() for p in no_stape.parameters()) == n_extra
        )


def test_gradients_reach_the_gates_and_checkpointing_matches(pair):
    _, iv = pair
    args, inst = _inputs()
    iv.set_gates(0.0)
    iv(*args, **inst).square().mean().backward()
    assert all(m.m_v.grad is not None and m.m_v.grad.abs().sum() > 0 for m in iv.imca)
    with torch.no_grad():
        iv.set_gates(0.5)
        ref = iv(*args, **inst)
    iv.model.gradient_checkpointing = True
    assert torch.allclose(iv(*args, **inst), ref, atol=1e-6)


def test_the_plain_wan_adapter_refuses_attention_kwargs_instead_of_dropping_them(pair):
    plain, _ = pair
    args, inst = _inputs()
    with pytest.raises(ValueError, match="cannot pass attention_kwargs.*diffusers drops them"):
        plain(*args, attention_kwargs={"instance_masks": inst["instance_masks"]})
