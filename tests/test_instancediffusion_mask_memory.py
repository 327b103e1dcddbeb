"""InstanceDiffusion's instance masks at the seg tokenizer's size, packed 8 pixels a byte, and MaskAttn's
one mask for all heads (issue 14): the same outputs bit for bit as full-size bool masks and diffusers'
per-head mask copy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

from vidgen.config import load_config
from vidgen.data.sample import collate
from vidgen.instances.grounding import grounding_frames
from vidgen.methods.instancediffusion import fusion
from vidgen.methods.instancediffusion.mask_bits import pack_bits, resize_masks, unpack_bits
from vidgen.methods.instancediffusion.maskattn import (
    containment,
    mask_attention_mask,
    masked_attention,
    token_instance,
)
from vidgen.methods.instancediffusion.module import InstanceDiffusionModule, slot_valid
from vidgen.methods.instancediffusion.tokenizers import SHARED, format_switches
from vidgen.methods.instancediffusion.transform import KEYS
from vidgen.train import build_datamodule


def test_pack_bits_round_trip_and_size():
    m = torch.rand(3, 5, 13, 21) < 0.4  # 21 pixels a row: the last byte is padded
    packed = pack_bits(m)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 5, 13, 3)
    assert torch.equal(unpack_bits(packed, 21), m)
    with pytest.raises(ValueError, match="3 bytes per row; 30 pixels need 4"):
        unpack_bits(packed, 30)
    empty = pack_bits(resize_masks(torch.zeros(0, 30, 40, dtype=torch.bool), 16))  # a frame without instances
    assert empty.shape == (0, 16, 2) and empty.dtype == torch.uint8


def _reference_mask(cover, owners, containers):
    """MaskAttn as first written: one-hot instance ids and a float pair matrix."""
    b, f, n, s = cover.shape
    inst = token_instance(cover)
    onehot = F.one_hot(inst + 1, n + 1).float()
    pair = torch.eye(n + 1).expand(b, f, n + 1, n + 1).clone()
    if containers:
        pair[..., 1:, 1:] += containment(cover).float()
    vv = (onehot @ pair @ onehot.transpose(-1, -2)) > 0
    vg = (inst[..., None] == owners) | (owners == SHARED)
    top = torch.cat([vv, vg], dim=-1)
    mask = torch.cat([top, torch.ones(b, f, owners.shape[0], s + owners.shape[0], dtype=torch.bool)], dim=-2)
    return mask | torch.eye(s + owners.shape[0], dtype=torch.bool)


@pytest.mark.parametrize("containers", [False, True])
def test_mask_attention_mask_equals_the_one_hot_formula(containers):
    g = torch.Generator().manual_seed(0)
    cover = torch.zeros(2, 3, 4, 36, dtype=torch.bool)
    for idx in range(4):  # nested and overlapping runs of tokens; slot 3 stays padding in sample 1
        lo = int(torch.randint(0, 20, (1,), generator=g))
        cover[:, :, idx, lo : lo + 6 + 3 * idx] = True
    cover[1, :, 3] = False
    cover[0, 1, 1] = cover[0, 1, 0]  # two slots with the same region
    owners = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, SHARED, SHARED])
    assert torch.equal(
        mask_attention_mask(cover, owners, containers), _reference_mask(cover, owners, containers)
    )


def test_masked_attention_equals_diffusers_per_head_mask():
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=4, dim_head=4)
    x = torch.randn(3, 10, 16)
    mask = torch.rand(3, 10, 10) < 0.5
    mask |= torch.eye(10, dtype=torch.bool)
    assert torch.equal(masked_attention(attn, x, mask), attn(x, attention_mask=mask))


@pytest.fixture
def wan(smoke):
    # seg masks resized 64 -> 48 (not the identity): the transform's resize must be the tokenizer's
    cfg = load_config(smoke("logger=none", "method.tiny.seg_resolution=48", exp="instancediffusion_wan"))
    torch.manual_seed(0)
    module = InstanceDiffusionModule(cfg)
    dm = build_datamodule(cfg, module.spec)
    dm.transform = InstanceDiffusionModule.sample_transform(cfg, dm)
    module.set_null_text(*dm.null_text())
    return module, [dm.dataset[i] for i in range(2)]


def _full_size_masks(samples, module, n):
    """g_masks as they were: [B, F', N, H, W] bool pixel masks of the present instances."""
    out = []
    for s in samples:
        inst = s.instances
        frames = grounding_frames(inst.boxes.shape[1], module.spec.vae_scale[0])
        m = torch.zeros(len(frames), n, *inst.masks.shape[-2:], dtype=torch.bool)
        m[:, : inst.masks.shape[0]] = (inst.masks[:, frames] & inst.visible[:, frames, None, None]).transpose(
            0, 1
        )
        out.append(m)
    return torch.stack(out)


def test_wan_outputs_are_bit_exact_with_full_size_masks_and_per_head_mask(wan, monkeypatch):
    module, samples = wan
    batch = collate(samples)
    n = module.hp.max_instances
    packed = batch.extras[KEYS["masks"]]
    f = batch.latents.shape[2]
    assert packed.dtype == torch.uint8 and packed.shape == (2, f, n, 48, 6)
    full = _full_size_masks(samples, module, n)
    assert torch.equal(unpack_bits(packed, 48), resize_masks(full, 48))
    assert full.any() and packed.numel() * 8 < full.numel()

    model = module.model.eval()
    model.set_gates(1.0)
    valid = slot_valid(batch.extras[KEYS["valid"]])
    g = module.grounding(batch, format_switches(valid, ("box", "point", "scribble", "polygon", "seg")))
    args = (batch.latents, torch.full((2,), 500), batch.text_embeds)
    with torch.no_grad():
        now = model(*args, text_mask=batch.text_mask, **g)
        # before: full-size bool masks resized inside the tokenizer; diffusers' processor with the mask per head
        monkeypatch.setattr(fusion, "masked_attention", lambda attn, h, mask: attn(h, attention_mask=mask))
        before = model(*args, text_mask=batch.text_mask, **{**g, "g_masks": full})
    assert torch.equal(now, before)
