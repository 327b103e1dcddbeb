"""MaskAttn (Eq. 2 masks), ScaleU / FreeU (Table 6a) and the multi-instance sampler (Fig. 5)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, UNet2DConditionModel, UNet3DConditionModel
from diffusers.utils.torch_utils import fourier_filter

from vidgen.diffusion import make_guidance, sample_latents
from vidgen.methods.instancediffusion.maskattn import mask_attention_mask, token_instance
from vidgen.methods.instancediffusion.sampler import MultiInstanceGuidance, sample_multi_instance
from vidgen.methods.instancediffusion.scaleu import ScaleUSet, enable_freeu, low_frequency_scale
from vidgen.methods.instancediffusion.tokenizers import SHARED

# ----------------------------------------------------------------------------- MaskAttn


def _nested():
    """6 tokens: instance 0 covers 0-3, instance 1 (inside it) 1-2, slot 2 is padding; 4-5 background."""
    cover = torch.zeros(1, 1, 3, 6, dtype=torch.bool)
    cover[0, 0, 0, :4] = True
    cover[0, 0, 1, 1:3] = True
    owners = torch.tensor([0, 1, 2, SHARED])  # box tokens of slots 0-2, then one seg token
    return cover, owners


def test_token_instance_is_the_smallest_covering_instance():
    cover, _ = _nested()
    assert token_instance(cover)[0, 0].tolist() == [0, 1, 1, 0, -1, -1]


def test_mask_attn_rows_as_printed_and_with_containers():
    cover, owners = _nested()
    paper = mask_attention_mask(cover, owners, containers=False)[0, 0].int()
    assert paper.shape == (10, 10)
    #                 visual 0..5          grounding 0 1 2 seg
    assert paper[0].tolist() == [1, 0, 0, 1, 0, 0, 1, 0, 0, 1]
    assert paper[1].tolist() == [0, 1, 1, 0, 0, 0, 0, 1, 0, 1]
    assert paper[4].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 1]  # background: background + seg only
    assert paper[6:].all()  # grounding rows open
    nested = mask_attention_mask(cover, owners, containers=True)[0, 0].int()
    assert nested[1].tolist() == [1, 1, 1, 1, 0, 0, 0, 1, 0, 1]  # + the instance around it
    assert nested[0].tolist() == paper[0].tolist()  # the outer instance does not see the inner one


def test_mask_attn_isolates_instances_in_attention():
    cover, owners = _nested()
    mask = mask_attention_mask(cover, owners, containers=False)[:, 0, None]  # [B, 1, S+T, S+T]
    x = torch.randn(1, 1, 10, 8)
    out = F.scaled_dot_product_attention(x, x, x, attn_mask=mask)
    x2 = x.clone()
    x2[..., 1:3, :] += 5.0  # perturb instance 1's visual tokens
    x2[..., 7, :] += 5.0  # and its grounding token
    out2 = F.scaled_dot_product_attention(x2, x2, x2, attn_mask=mask)
    assert torch.equal(out[..., [0, 3, 4, 5], :], out2[..., [0, 3, 4, 5], :])
    assert not torch.allclose(out[..., 1, :], out2[..., 1, :])


# ----------------------------------------------------------------------------- ScaleU / FreeU


def _unet2d():
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=16,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=12,
        attention_head_dim=2,
        norm_num_groups=4,
    )


def _unet3d():
    torch.manual_seed(0)
    return UNet3DConditionModel(
        sample_size=8,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=12,
        attention_head_dim=4,
        norm_num_groups=4,
    )


def test_low_frequency_scale_matches_diffusers_fourier_filter_for_a_scalar():
    x = torch.randn(2, 6, 8, 8)
    assert torch.allclose(
        low_frequency_scale(x, torch.tensor([0.7]), 1), fourier_filter(x, 1, 0.7), atol=1e-5
    )
    per_channel = low_frequency_scale(x, torch.linspace(0.5, 1.5, 6), 1)
    assert torch.allclose(per_channel[:, 2], fourier_filter(x, 1, 0.9)[:, 2], atol=1e-5)


@pytest.mark.parametrize("kind", ["sd", "modelscope"])
def test_scaleu_is_the_identity_at_init_bit_for_bit_and_then_acts(kind):
    if kind == "sd":
        unet, x = _unet2d(), torch.randn(1, 4, 16, 16)
    else:
        unet, x = _unet3d(), torch.randn(1, 4, 2, 8, 8)
    inputs = {"sample": x, "timestep": torch.tensor([10]), "encoder_hidden_states": torch.randn(1, 3, 12)}
    with torch.no_grad():
        ref = unet(**inputs).sample
        scaleu = ScaleUSet(unet)
        assert len(scaleu.blocks) == sum(len(b.resnets) for b in unet.up_blocks) == 4
        assert [b.s_b.numel() for b in scaleu.blocks] == [16, 16, 16, 8]  # C_b: mid -> up0 -> up1
        assert torch.equal(unet(**inputs).sample, ref)
        scaleu.blocks[0].s_s.fill_(0.5)
        assert not torch.allclose(unet(**inputs).sample, ref)
        scaleu.remove()
        assert torch.equal(unet(**inputs).sample, ref)


def test_scaleu_scalar_skip_and_gradients():
    unet = _unet2d()
    channel, scalar = ScaleUSet(unet), None
    assert [b.s_s.numel() for b in channel.blocks] == [16, 8, 8, 8]
    channel.remove()
    scalar = ScaleUSet(unet, skip="scalar")
    assert [b.s_s.numel() for b in scalar.blocks] == [1] * 4
    out = unet(torch.randn(1, 4, 16, 16), torch.tensor([10]), torch.randn(1, 3, 12)).sample
    out.square().mean().backward()
    assert all(b.s_b.grad.abs().sum() > 0 and b.s_s.grad.abs().sum() > 0 for b in scalar.blocks)


def test_freeu_changes_the_output():
    unet = _unet2d()
    inputs = (torch.randn(1, 4, 16, 16), torch.tensor([10]), torch.randn(1, 3, 12))
    with torch.no_grad():
        ref = unet(*inputs).sample
        enable_freeu(unet, {"b1": 1.2, "b2": 1.4, "s1": 0.9, "s2": 0.2})
        assert not torch.allclose(unet(*inputs).sample, ref)


# ----------------------------------------------------------------------------- MIS


def _denoise(seen):
    def denoise(x, t, prompt):
        seen.append(prompt[:, 0].tolist())
        return 0.1 * x + prompt[:, :, None, None]

    return denoise


def _scheduler():
    return DDIMScheduler(num_train_timesteps=1000)


def test_mis_with_fraction_zero_is_the_plain_sampler():
    cond, uncond = {"prompt": torch.full((2, 4), 1.0)}, {"prompt": torch.zeros(2, 4)}
    inst = [{"prompt": torch.full((2, 4), 2.0)}]
    ref = sample_latents(
        _denoise([]),
        _scheduler(),
        (2, 4, 3, 3),
        cond,
        uncond,
        make_guidance("cfg", scale=3.0),
        num_steps=5,
        generator=torch.Generator().manual_seed(0),
    )
    out = sample_multi_instance(
        _denoise([]),
        _scheduler(),
        (2, 4, 3, 3),
        cond,
        inst,
        torch.ones(2, 1, dtype=torch.bool),
        uncond,
        MultiInstanceGuidance(3.0, 0.0),
        num_steps=5,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(out, ref)


def test_mis_runs_each_instance_alone_then_averages():
    seen = []
    cond = {"prompt": torch.full((2, 4), 1.0)}
    inst = [{"prompt": torch.full((2, 4), 2.0)}, {"prompt": torch.full((2, 4), 3.0)}]
    valid = torch.tensor([[True, True], [True, False]])
    g = make_guidance("mis", scale=1.0, fraction=0.4)
    out = sample_multi_instance(
        _denoise(seen),
        _scheduler(),
        (2, 4, 3, 3),
        cond,
        inst,
        valid,
        None,
        g,
        num_steps=5,
        generator=torch.Generator().manual_seed(0),
    )
    # int(5 * 0.4) = 2 steps of 3 separate inputs, then 3 global steps
    assert [s[0] for s in seen] == [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 1.0, 1.0]
    # the same run by hand: each input alone for 2 steps from the same noise, row-wise mean, then global
    x0 = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    xs = []
    for prompt in (1.0, 2.0, 3.0):
        s = _scheduler()
        s.set_timesteps(5)
        x = x0.clone()
        for t in s.timesteps[:2]:
            x = s.step(0.1 * x + prompt, t, x).prev_sample
        xs.append(x)
    merged = torch.stack([(xs[0][0] + xs[1][0] + xs[2][0]) / 3, (xs[0][1] + xs[1][1]) / 2])
    s = _scheduler()
    s.set_timesteps(5)
    for t in s.timesteps[2:]:
        merged = s.step(0.1 * merged + 1.0, t, merged).prev_sample
    assert torch.allclose(out, merged, atol=1e-5)
