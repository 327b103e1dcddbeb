"""Tests for vidgen.diffusion: objectives vs closed forms, samplers, min-SNR, CFG, sampling loop."""

from __future__ import annotations

import math

import diffusers
import pytest
import torch

from vidgen.backbones import get_backbone
from vidgen.diffusion import (
    CFG,
    NoGuidance,
    make_guidance,
    make_objective,
    make_scheduler,
    min_snr_weight,
    register_guidance,
    sample_latents,
    shift_sigma,
)
from vidgen.diffusion.guidance import _GUIDANCE
from vidgen.errors import ConfigError

# Scheduler configs exactly as the registry's backbones ship them.
COGVIDEOX_2B = get_backbone("cogvideox-2b").scheduler_config
MODELSCOPE = get_backbone("modelscope-t2v").scheduler_config
WAN = get_backbone("wan2.1-1.3b").scheduler_config
FLOW_EULER = dict(num_train_timesteps=1000, shift=3.0)

TS = [0, 1, 250, 500, 750, 998, 999]


def _data(seed=0, shape=(len(TS), 4, 3, 5, 6)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def _b(c, like):
    return c.reshape(-1, *([1] * (like.ndim - 1)))


# --- objectives vs closed forms ----------------------------------------------------------------
def test_v_objective_matches_closed_form():
    obj = make_objective("v", "CogVideoXDDIMScheduler", COGVIDEOX_2B)
    x0, eps = _data()
    t = torch.tensor(TS)
    abar = diffusers.CogVideoXDDIMScheduler.from_config(COGVIDEOX_2B).alphas_cumprod[t].double()
    # CogVideoX's schedule: SNR shift 3 and zero terminal SNR were applied by the scheduler
    assert abar[-1].item() == pytest.approx(0.0, abs=1e-12)
    plain = diffusers.DDIMScheduler.from_config(MODELSCOPE).alphas_cumprod[t].double()
    assert not torch.allclose(abar[1:-1], plain[1:-1])
    a = _b(abar, x0)
    x_t = obj.add_noise(x0, eps, t)
    torch.testing.assert_close(x_t.double(), a.sqrt() * x0 + (1 - a).sqrt() * eps, rtol=1e-5, atol=1e-5)
    v = obj.target(x0, eps, x_t, t)
    torch.testing.assert_close(v.double(), a.sqrt() * eps - (1 - a).sqrt() * x0, rtol=1e-5, atol=1e-5)
    # at the zero-SNR step x_t is pure noise and v = -x0
    torch.testing.assert_close(x_t[-1], eps[-1])
    torch.testing.assert_close(v[-1], -x0[-1])
    torch.testing.assert_close(obj.predict_x0(v, x_t, t), x0, rtol=1e-4, atol=1e-4)
    assert obj.prediction_type == "v_prediction"


def test_eps_objective_matches_closed_form():
    obj = make_objective("eps", "DDIMScheduler", MODELSCOPE)
    x0, eps = _data(1)
    t = torch.tensor(TS)
    # scaled_linear betas by hand: beta_0 = 0.00085 -> alpha_bar_0 = 0.99915
    assert obj.alphas_cumprod[0].item() == pytest.approx(0.99915, abs=1e-7)
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)[t]
    torch.testing.assert_close(obj.alphas_cumprod[t].double(), abar, rtol=1e-5, atol=1e-7)
    a = _b(abar, x0)
    x_t = obj.add_noise(x0, eps, t)
    torch.testing.assert_close(x_t.double(), a.sqrt() * x0 + (1 - a).sqrt() * eps, rtol=1e-5, atol=1e-5)
    assert torch.equal(obj.target(x0, eps, x_t, t), eps)
    torch.testing.assert_close(obj.predict_x0(eps, x_t, t), x0, rtol=1e-4, atol=1e-4)
    # same schedule through DDPMScheduler
    obj2 = make_objective("eps", "DDPMScheduler", MODELSCOPE)
    torch.testing.assert_close(obj2.add_noise(x0, eps, t), x_t)


def test_flow_shift_formula_by_hand():
    assert shift_sigma(0.5, 3.0) == pytest.approx(0.75)  # 1.5 / 2
    assert shift_sigma(0.25, 3.0) == pytest.approx(0.5)  # 0.75 / 1.5
    assert shift_sigma(0.1, 5.0) == pytest.approx(0.5 / 1.4)
    assert shift_sigma(0.0, 3.0) == 0.0 and shift_sigma(1.0, 3.0) == 1.0
    # agrees with diffusers' FlowMatchEulerDiscreteScheduler
    # (its training sigmas are the shifted grid 1000/1000 ... 1/1000)
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    unshifted = torch.arange(1000, 0, -1, dtype=torch.float64) / 1000
    torch.testing.assert_close(shift_sigma(unshifted, 3.0).float(), sched.sigmas, rtol=1e-5, atol=1e-6)


def test_flow_objective_matches_closed_form():
    obj = make_objective("flow", "UniPCMultistepScheduler", WAN)
    assert obj.shift == 3.0  # from flow_shift
    assert make_objective("flow", "FlowMatchEulerDiscreteScheduler", {"shift": 5.0}).shift == 5.0
    assert make_objective("flow", "UniPCMultistepScheduler", WAN, shift=7.0).shift == 7.0
    x0, eps = _data(2, (3, 4, 2, 3, 3))
    t = torch.tensor([750.0, 500.0, 100.0])  # model timesteps = sigma' * 1000
    sigma = _b(torch.tensor([0.75, 0.5, 0.1]), x0)
    x_t = obj.add_noise(x0, eps, t)
    torch.testing.assert_close(x_t, (1 - sigma) * x0 + sigma * eps)
    torch.testing.assert_close(x_t[0], 0.25 * x0[0] + 0.75 * eps[0])
    assert torch.equal(obj.target(x0, eps, x_t, t), eps - x0)
    torch.testing.assert_close(obj.predict_x0(eps - x0, x_t, t), x0, rtol=1e-5, atol=1e-5)
    # same convention as diffusers' scale_noise
    fm = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    fm.set_timesteps(10)
    tt = fm.timesteps[3:4]
    torch.testing.assert_close(obj.add_noise(x0[:1], eps[:1], tt), fm.scale_noise(x0[:1], tt, eps[:1]))
    # sampled timesteps: shift applied to the unit sample (uniform), sigma=0.5 -> t=750 at shift 3
    g1, g3 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    t1 = make_objective("flow", "UniPCMultistepScheduler", WAN, shift=1.0).sample_timesteps(1000, g1)
    t3 = obj.sample_timesteps(1000, g3)
    torch.testing.assert_close(t3, shift_sigma(t1 / 1000, 3.0) * 1000, rtol=1e-5, atol=1e-3)


def test_loss_is_weighted_mse():
    obj = make_objective("v", "CogVideoXDDIMScheduler", COGVIDEOX_2B, loss_weighting="min_snr")
    x0, eps = _data(3)
    t = torch.tensor(TS)
    x_t = obj.add_noise(x0, eps, t)
    pred = obj.target(x0, eps, x_t, t) + 0.5
    loss = obj.loss(pred, x0, eps, x_t, t)
    assert loss.shape == (len(TS),)
    torch.testing.assert_close(loss, obj.loss_weight(t) * 0.25)
    # reduce over a subset of dims keeps the others
    assert obj.loss(pred, x0, eps, x_t, t, reduce_dims=(1, 3, 4)).shape == (len(TS), 3)


# --- timestep sampling ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind,cls,cfg", [("v", "CogVideoXDDIMScheduler", COGVIDEOX_2B), ("eps", "DDIMScheduler", MODELSCOPE)]
)
@pytest.mark.parametrize("sampling", ["uniform", "logit_normal", "mode"])
def test_ddpm_timesteps_range_dtype_determinism(kind, cls, cfg, sampling):
    obj = make_objective(kind, cls, cfg, timestep_sampling=sampling)
    t = obj.sample_timesteps(20000, torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and t.shape == (20000,)
    assert int(t.min()) >= 0 and int(t.max()) <= 999
    assert torch.equal(t, obj.sample_timesteps(20000, torch.Generator().manual_seed(0)))
    assert not torch.equal(t, obj.sample_timesteps(20000, torch.Generator().manual_seed(1)))
    if sampling == "uniform":
        assert int(t.min()) == 0 and int(t.max()) == 999
        assert t.float().mean().item() == pytest.approx(499.5, abs=6.0)


@pytest.mark.parametrize("sampling", ["uniform", "logit_normal", "mode"])
def test_flow_timesteps_range_dtype_determinism(sampling):
    obj = make_objective("flow", "FlowMatchEulerDiscreteScheduler", FLOW_EULER, timestep_sampling=sampling)
    t = obj.sample_timesteps(20000, torch.Generator().manual_seed(0))
    assert t.dtype == torch.float32
    assert float(t.min()) >= 0.0 and float(t.max()) < 1000.0
    assert torch.equal(t, obj.sample_timesteps(20000, torch.Generator().manual_seed(0)))


def test_logit_normal_statistics():
    obj = make_objective(
        "flow", "FlowMatchEulerDiscreteScheduler", {"shift": 1.0},
        timestep_sampling="logit_normal", logit_mean=0.5, logit_std=0.8,
    )  # fmt: skip
    sigma = obj.sample_timesteps(40000, torch.Generator().manual_seed(0)) / 1000
    z = torch.logit(sigma.double())
    assert z.mean().item() == pytest.approx(0.5, abs=0.02)
    assert z.std().item() == pytest.approx(0.8, abs=0.02)
    # the median of sigmoid(N(m, s)) is sigmoid(m)
    assert sigma.median().item() == pytest.approx(1 / (1 + math.exp(-0.5)), abs=0.01)


def test_mode_sampling_density():
    s = 1.29
    obj = make_objective(
        "flow", "FlowMatchEulerDiscreteScheduler", {"shift": 1.0}, timestep_sampling="mode", mode_scale=s
    )
    u = obj.sample_timesteps(40000, torch.Generator().manual_seed(0)) / 1000

    def f(v):  # SD3 Eq. 20, decreasing in v
        return 1 - v - s * (math.cos(math.pi * v / 2) ** 2 - 1 + v)

    def inv(y):
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) > y else (lo, mid)
        return lo

    expected = inv(0.25) - inv(0.75)  # P(0.25 < u < 0.75)
    assert expected > 0.6  # heavier middle than uniform (0.5)
    assert ((u > 0.25) & (u < 0.75)).float().mean().item() == pytest.approx(expected, abs=0.01)
    with pytest.raises(ConfigError, match="mode_scale"):
        make_objective(
            "flow", "FlowMatchEulerDiscreteScheduler", {}, timestep_sampling="mode", mode_scale=3.0
        )


# --- loss weights ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind,cls,cfg", [("v", "CogVideoXDDIMScheduler", COGVIDEOX_2B), ("eps", "DDIMScheduler", MODELSCOPE)]
)
def test_min_snr_weights(kind, cls, cfg):
    gamma = 5.0
    obj = make_objective(kind, cls, cfg, loss_weighting="min_snr", min_snr_gamma=gamma)
    t = torch.tensor([0, 10, 200, 400, 600, 900])
    abar = getattr(diffusers, cls).from_config(cfg).alphas_cumprod[t].double()
    snr = abar / (1 - abar)
    assert snr[0] > gamma and snr[-1] < gamma  # both branches of the min are exercised
    expected = torch.minimum(snr, torch.tensor(gamma, dtype=torch.float64))
    expected = expected / snr if kind == "eps" else expected / (snr + 1)
    torch.testing.assert_close(obj.loss_weight(t).double(), expected, rtol=1e-4, atol=1e-7)
    if kind == "eps":
        assert obj.loss_weight(torch.tensor([900])).item() == 1.0
    # no weighting -> ones
    assert torch.equal(make_objective(kind, cls, cfg).loss_weight(t), torch.ones(6))


def test_min_snr_zero_terminal_snr():
    snr = torch.tensor([0.0, 1.0, 25.0])
    torch.testing.assert_close(min_snr_weight(snr, 5.0, "eps"), torch.tensor([1.0, 1.0, 0.2]))
    torch.testing.assert_close(min_snr_weight(snr, 5.0, "v"), torch.tensor([0.0, 0.5, 5.0 / 26.0]))
    obj = make_objective("v", "CogVideoXDDIMScheduler", COGVIDEOX_2B, loss_weighting="min_snr")
    assert obj.loss_weight(torch.tensor([999])).item() == 0.0


def test_objective_config_errors():
    with pytest.raises(ConfigError, match="v, eps, flow"):
        make_objective("x0", "DDIMScheduler", MODELSCOPE)
    with pytest.raises(ConfigError, match="min_snr_gamma"):
        make_objective("eps", "DDIMScheduler", MODELSCOPE, snr_gamma=5.0)
    with pytest.raises(ConfigError, match="valid names: none"):
        make_objective("flow", "FlowMatchEulerDiscreteScheduler", {}, loss_weighting="min_snr")
    with pytest.raises(ConfigError, match="uniform, logit_normal, mode"):
        make_objective("eps", "DDIMScheduler", MODELSCOPE, timestep_sampling="cosmap")
    with pytest.raises(ConfigError, match="not a diffusers scheduler"):
        make_objective("eps", "NoSuchScheduler", {})


# --- guidance --------------------------------------------------------------------------------------
class CountingDenoiser:
    """Elementwise, linear in its conditioning: out = 0.5 x + t/1000 + text (+ image)."""

    def __init__(self):
        self.batches = []

    def __call__(self, x, t, text_embeds, text_mask=None, image_latents=None):
        self.batches.append(x.shape[0])
        assert t.shape == (x.shape[0],) and text_embeds.shape[0] == x.shape[0]
        out = 0.5 * x + _b(t.float() / 1000, x) + _b(text_embeds.sum(dim=(1, 2)), x)
        if image_latents is not None:
            out = out + image_latents
        return out


def test_cfg_one_batched_forward_exact():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, 5, 5, generator=g)
    t = torch.tensor([700, 700])
    img = torch.randn(2, 4, 3, 5, 5, generator=g)
    cond = {"text_embeds": torch.randn(2, 7, 8, generator=g), "text_mask": torch.ones(2, 7, dtype=torch.bool),
            "image_latents": img}  # fmt: skip
    uncond = {"text_embeds": torch.zeros(1, 7, 8), "text_mask": torch.ones(1, 7, dtype=torch.bool),
              "image_latents": img}  # fmt: skip
    den = CountingDenoiser()
    out = CFG(scale=6.0)(den, x, t, cond, uncond)
    assert den.batches == [4]  # one forward, doubled batch
    ref = CountingDenoiser()
    c = ref(x, t, **cond)
    u = ref(x, t, text_embeds=uncond["text_embeds"].expand(2, 7, 8), image_latents=img)
    assert torch.equal(out, u + 6.0 * (c - u))
    # NoGuidance / scale 1: a single conditional forward of batch B
    den = CountingDenoiser()
    assert torch.equal(NoGuidance()(den, x, t, cond, uncond), c)
    assert torch.equal(CFG(1.0)(den, x, t, cond, uncond), c)
    assert den.batches == [2, 2]
    with pytest.raises(ValueError, match="same keys"):
        CFG(5.0)(den, x, t, cond, {"text_embeds": uncond["text_embeds"]})


def test_guidance_registry():
    assert isinstance(make_guidance("cfg", scale=4.5), CFG) and make_guidance("cfg", scale=4.5).scale == 4.5
    assert isinstance(make_guidance("none"), NoGuidance)

    class Doubled:
        def __init__(self, factor=2.0):
            self.factor = factor

        def __call__(self, denoise, x, t, cond, uncond):
            return self.factor * denoise(x, t, **cond)

    register_guidance("test_doubled", Doubled)
    try:
        assert make_guidance("test_doubled", factor=3.0).factor == 3.0
        with pytest.raises(ConfigError, match="'no_such_guidance' is unknown; valid names: cfg, .*test_doubled"):
            make_guidance("no_such_guidance")
        with pytest.raises(ConfigError, match="invalid options"):
            make_guidance("cfg", sclae=3.0)
    finally:
        _GUIDANCE.pop("test_doubled")


# --- the sampling loop on an exactly solvable problem ----------------------------------------------
def _point_denoiser(kind, scheduler, calls):
    """Optimal prediction when the data distribution is one point x* (= text_embeds per sample)."""

    def denoise(x, t, text_embeds, text_mask=None):
        calls.append((x.shape[0], t.dtype))
        xs = _b(text_embeds.reshape(text_embeds.shape[0], -1)[:, 0], x).expand_as(x).double()
        xd = x.double()
        if kind == "flow":
            s = _b(t.double() / 1000, x)
            return ((xd - xs) / s).float()  # u = eps - x* with eps = (x_t - (1 - s) x*) / s
        a = _b(scheduler.alphas_cumprod.double()[t.long()], x)
        eps = (xd - a.sqrt() * xs) / (1 - a).sqrt()
        if kind == "eps":
            return eps.float()
        return (a.sqrt() * eps - (1 - a).sqrt() * xs).float()

    return denoise


SAMPLERS = [
    ("v", "CogVideoXDDIMScheduler", COGVIDEOX_2B, 1e-4),
    ("v", "CogVideoXDPMScheduler", COGVIDEOX_2B, 1e-4),
    ("eps", "DDIMScheduler", {**MODELSCOPE, "set_alpha_to_one": True}, 1e-4),
    # UniPC hands the model integer timesteps (999, 964, ...), so sigma = t/1000 is off by up to
    # 5e-4 from the scheduler's own sigma (measured error 1.3e-3; 0 with the exact sigmas)
    ("flow", "UniPCMultistepScheduler", WAN, 3e-3),
    ("flow", "FlowMatchEulerDiscreteScheduler", FLOW_EULER, 1e-4),
]


@pytest.mark.parametrize("kind,cls,cfg,tol", SAMPLERS, ids=[s[1] for s in SAMPLERS])
def test_sampler_recovers_single_point(kind, cls, cfg, tol):
    scheduler = make_scheduler(cls, cfg)
    calls, seen = [], []
    x_star = torch.tensor([0.7, -1.3])
    cond = {"text_embeds": x_star.reshape(2, 1, 1)}
    out = sample_latents(
        _point_denoiser(kind, scheduler, calls), scheduler, (2, 4, 3, 4, 4), cond, None, NoGuidance(),
        num_steps=50, generator=torch.Generator().manual_seed(0), device="cpu",
        callback=lambda i, t, x: seen.append(i),
    )  # fmt: skip
    assert out.shape == (2, 4, 3, 4, 4) and out.dtype == torch.float32
    torch.testing.assert_close(out, _b(x_star, out).expand_as(out), rtol=0, atol=tol)
    assert len(calls) == 50 and seen == list(range(50))
    assert calls[0][1] == scheduler.timesteps.dtype


@pytest.mark.parametrize("kind,cls,cfg,tol", SAMPLERS[::2], ids=[s[1] for s in SAMPLERS[::2]])
def test_sampler_with_cfg_extrapolates(kind, cls, cfg, tol):
    """CFG is affine in x*, so the guided sampler lands on x_u + s (x_c - x_u) exactly."""
    scheduler = make_scheduler(cls, cfg)
    calls = []
    x_c, x_u, s = torch.tensor([0.5, -0.2]), torch.tensor([0.1]), 3.0
    out = sample_latents(
        _point_denoiser(kind, scheduler, calls), scheduler, (2, 4, 2, 4, 4),
        {"text_embeds": x_c.reshape(2, 1, 1)}, {"text_embeds": x_u.reshape(1, 1, 1)}, CFG(s),
        num_steps=30, generator=torch.Generator().manual_seed(1), device="cpu",
    )  # fmt: skip
    expected = x_u + s * (x_c - x_u)
    torch.testing.assert_close(out, _b(expected, out).expand_as(out), rtol=0, atol=3 * tol)
    assert [b for b, _ in calls] == [4] * 30


def test_sampler_is_deterministic_and_make_scheduler_overrides():
    sch = make_scheduler("DDIMScheduler", MODELSCOPE, prediction_type="v_prediction", set_alpha_to_one=True)
    assert sch.config.prediction_type == "v_prediction" and sch.config.steps_offset == 1

    class Spec:
        scheduler_cls = "FlowMatchEulerDiscreteScheduler"
        scheduler_config = FLOW_EULER

    assert isinstance(make_scheduler(Spec()), diffusers.FlowMatchEulerDiscreteScheduler)

    def den(x, t, text_embeds):
        return 0.1 * x

    runs = [
        sample_latents(
            den,
            make_scheduler("CogVideoXDDIMScheduler", COGVIDEOX_2B),
            (1, 2, 1, 2, 2),
            {"text_embeds": torch.zeros(1, 1, 1)},
            num_steps=5,
            generator=torch.Generator().manual_seed(s),
        )  # fmt: skip
        for s in (3, 3, 4)
    ]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
