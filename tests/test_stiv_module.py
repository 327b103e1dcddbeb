"""STIVModule: Eq. 1-2 in closed form and through the sampler, CFG renormalisation, the MaskDiT loss,
config errors, and the progressive T2I -> T2V chain as real smoke runs."""

from __future__ import annotations

import pytest
import torch

from vidgen.config import load_config
from vidgen.data.sample import collate
from vidgen.diffusion import make_scheduler, sample_latents
from vidgen.errors import ConfigError
from vidgen.methods import method_class
from vidgen.methods.stiv.guidance import CFGRenorm, renormalize
from vidgen.methods.stiv.masking import kept_latent_mask, masked_mse
from vidgen.methods.stiv.module import STIVModule
from vidgen.methods.stiv.objective import make_stiv_objective, sampler_call, scheduler_for
from vidgen.runs import read_metrics, read_summary
from vidgen.train import build_datamodule, train


def smoke_cfg(smoke, *extra, exp="stiv_t2v_xl", run_dir=None):
    return load_config(smoke("data=shapes", "logger=none", *extra, exp=exp, run_dir=run_dir))


def test_flow_objective_is_eq_1_and_2_as_printed():
    obj = make_stiv_objective("flow")
    x1, eps = torch.randn(3, 4, 2, 8, 8), torch.randn(3, 4, 2, 8, 8)
    t = torch.tensor([0.0, 250.0, 1000.0])  # paper t = 0 (noise), 0.25, 1 (data)
    x_t = obj.add_noise(x1, eps, t)
    torch.testing.assert_close(x_t[0], eps[0])
    torch.testing.assert_close(x_t[1], 0.25 * x1[1] + 0.75 * eps[1])
    torch.testing.assert_close(x_t[2], x1[2])
    torch.testing.assert_close(obj.target(x1, eps, x_t, t), x1 - eps)  # v_t = x1 - eps
    torch.testing.assert_close(obj.predict_x0(x1 - eps, x_t, t)[1], x1[1])
    ts = obj.sample_timesteps(10_000, torch.Generator().manual_seed(0))
    assert 0 <= ts.min() and ts.max() < 1000 and abs(ts.mean().item() - 500) < 15  # t ~ U[0, 1) x 1000


def test_the_sampler_integrates_the_paper_velocity_from_noise_to_data():
    """With the exact velocity of a one-point data set, v = (x1 - x_t) / (1 - t), Euler lands on x1."""
    x1 = torch.randn(2, 4, 2, 8, 8)

    def model(x, t, **kwargs):  # the paper's convention: t * 1000, t = 1 is data
        s = (t / 1000).reshape(-1, 1, 1, 1, 1)
        return (x1 - x) / (1 - s)

    cls, cfg = scheduler_for("flow")
    out = sample_latents(
        sampler_call("flow", model),
        make_scheduler(cls, cfg),
        x1.shape,
        {},
        num_steps=8,
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(out, x1, atol=1e-4, rtol=1e-4)
    with pytest.raises(AssertionError):  # without the t -> 1 - t / v -> -v conversion it does not
        out = sample_latents(
            lambda x, t, **k: model(x, t),
            make_scheduler(cls, cfg),
            x1.shape,
            {},
            num_steps=8,
            generator=torch.Generator().manual_seed(0),
        )
        torch.testing.assert_close(out, x1, atol=1e-2, rtol=1e-2)


def test_ddpm_baseline_uses_stable_diffusions_schedule():
    obj = make_stiv_objective("ddpm_eps")
    assert obj.kind == "eps" and obj.num_train_timesteps == 1000
    # scaled-linear 0.00085 -> 0.012: alpha_bar at t = 999 of SD v1
    assert abs(obj.alphas_cumprod[-1].item() - 0.0046) < 1e-4
    x0, eps = torch.randn(2, 4, 1, 8, 8), torch.randn(2, 4, 1, 8, 8)
    torch.testing.assert_close(obj.target(x0, eps, None, torch.tensor([5, 900])), eps)


def test_cfg_renorm_restores_the_conditional_norm_and_keeps_the_direction():
    guided, cond = torch.randn(3, 4, 2, 8, 8) * 5, torch.randn(3, 4, 2, 8, 8)
    out = renormalize(guided, cond, "sample")
    norm = torch.linalg.vector_norm
    torch.testing.assert_close(norm(out, dim=(1, 2, 3, 4)), norm(cond, dim=(1, 2, 3, 4)))
    cos = torch.nn.functional.cosine_similarity(out.flatten(1), guided.flatten(1))
    torch.testing.assert_close(cos, torch.ones(3))
    per_token = renormalize(guided, cond, "token")
    torch.testing.assert_close(norm(per_token, dim=1), norm(cond, dim=1))

    def denoise(x, t, text_embeds):  # uncond rows predict 0, cond rows predict 1
        return text_embeds.reshape(-1, 1, 1, 1, 1).expand_as(x)

    x = torch.zeros(2, 4, 1, 2, 2)
    out = CFGRenorm(scale=7.5)(
        denoise, x, torch.tensor(5.0), {"text_embeds": torch.ones(2)}, {"text_embeds": torch.zeros(2)}
    )
    torch.testing.assert_close(out, torch.ones_like(x))  # 7.5 x the conditional one, renormalised to it


def test_maskdit_loss_counts_only_the_kept_tokens():
    keep_s, keep_t = torch.tensor([[0, 3], [1, 2]]), None
    region = kept_latent_mask(keep_s, keep_t, 2, (2, 2, 2), (2, 2, 2), "cpu")  # 2 x 2 x 2 tokens, patch 2
    assert region.shape == (2, 1, 4, 4, 4) and region.mean().item() == 0.5
    assert region[0, 0, :, :2, :2].eq(1).all() and region[0, 0, :, :2, 2:].eq(0).all()
    err = torch.rand(2, 3, 4, 4, 4)
    loud = torch.where(region.bool(), err, torch.full_like(err, 1e6))
    torch.testing.assert_close(masked_mse(loud, region), masked_mse(err, region))
    torch.testing.assert_close(masked_mse(err, torch.ones_like(region)), err.flatten(1).mean(1))
    t_only = kept_latent_mask(None, torch.tensor([[1], [0]]), 2, (2, 2, 2), (2, 2, 2), "cpu")
    assert t_only[0, 0, :2].eq(0).all() and t_only[0, 0, 2:].eq(1).all() and t_only[1, 0, :2].eq(1).all()


def test_training_step_masks_half_the_tokens_then_fine_tunes_unmasked(smoke):
    cfg = smoke_cfg(smoke, "method.mask_steps=3")
    assert method_class("stiv") is STIVModule
    module = STIVModule(cfg)
    dm = build_datamodule(cfg, module.spec)
    batch = collate([dm.dataset[i] for i in range(2)])
    seen = []
    module.model.model.blocks[0].register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    loss_a, _ = module.compute_loss(batch, torch.Generator().manual_seed(1))
    loss_b, _ = module.compute_loss(batch, torch.Generator().manual_seed(1))
    assert torch.equal(loss_a, loss_b) and torch.isfinite(loss_a)
    assert seen[0][2] == 8  # 16 spatial tokens at 64^2 tiny, half kept
    module.mask_ratios = lambda: (0.0, 0.0)  # what the module does once global_step >= mask_steps
    module.compute_loss(batch, torch.Generator().manual_seed(1))
    assert seen[-1][2] == 16


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.task=t2x", "method.task=t2x: .*t2i or t2v"),
        ("method.objective=eps", "method.objective=eps: .*flow"),
        ("+method.arch.qknorm=true", r"method.arch: unknown STIVDiT option\(s\) \['qknorm'\]"),
        ("method.spatial_mask_ratio=1.0", r"method.spatial_mask_ratio=1: .*\[0, 1\)"),
        ("+method.arch.decoder_blocks=0", "needs method.arch.decoder_blocks >= 1"),
        ("method.init.from=/nonexistent/run", "no checkpoint at /nonexistent/run/checkpoints/last.ckpt"),
    ],
)
def test_bad_method_config_is_one_clean_error(smoke, override, message):
    with pytest.raises(ConfigError, match=message):
        STIVModule(smoke_cfg(smoke, override))


def test_progressive_t2i_to_t2v_chain_trains_and_samples(smoke, tmp_path):
    """The T2I smoke run initialises the T2V smoke run (method.init.from=RUN_DIR), which samples."""
    t2i_dir, t2v_dir = tmp_path / "t2i", tmp_path / "t2v"
    cfg = smoke_cfg(smoke, "train.max_steps=2", exp="stiv_t2i_xl", run_dir=t2i_dir)
    train(cfg)
    assert read_summary(t2i_dir)["global_step"] == 2
    cfg = smoke_cfg(
        smoke,
        "train.max_steps=2",
        "sample.steps=2",
        f"method.init.from={t2i_dir}",
        f"sample.out={tmp_path / 'clip.mp4'}",
        run_dir=t2v_dir,
    )
    module = STIVModule(cfg)
    t2i_state = torch.load(t2i_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    key = "model.model.blocks.0.attn_s.to_q.weight"
    assert torch.equal(module.state_dict()[key], t2i_state[key])
    assert module.model.model.patch_embed.weight.shape[2] == 2  # inflated cubify kernel
    train(cfg)
    losses = [r["train/loss"] for r in read_metrics(t2v_dir)]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    from vidgen.sampling import sample

    assert sample(cfg).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("exp", ["stiv_t2v_m", "stiv_t2i_xl_512", "stiv_t2v_xl_512", "stiv_t2v_m_512"])
def test_every_stiv_experiment_runs_at_smoke_size(exp, smoke, tmp_path):
    run = tmp_path / exp
    cfg = smoke_cfg(smoke, "train.max_steps=2", "backbone.init=random", exp=exp, run_dir=run)
    train(cfg)
    assert read_summary(run)["global_step"] == 2
