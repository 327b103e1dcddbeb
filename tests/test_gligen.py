"""GLIGEN (methods/gligen): zero gates = the backbone bit for bit on sd1.5 / ModelScope / Wan, grounding
arrives once the gates open, per-block parameter counts, freezing, scheduled sampling."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from vidgen.backbones import build_backbone, get_backbone
from vidgen.instances.gated_attention import gated_block_parameters
from vidgen.methods.gligen.denoiser import GLIGENSD, GLIGENModelScope, GLIGENWan, build_gligen

BACKBONES = ["sd1.5", "modelscope-t2v", "wan2.1-1.3b"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _built(name):
    torch.manual_seed(0)
    plain = build_backbone(name, size="tiny", init="random")
    d = plain.spec.text_dim_for("tiny")
    return plain, build_gligen(copy.deepcopy(plain), phrase_dim=d, token_dim=d)


def _pair(name):
    """(plain tiny backbone, GLIGEN on a copy of it): built once per module, copied per test."""
    return copy.deepcopy(_built(name))


def _inputs(name, seed=1):
    spec = get_backbone(name)
    g = torch.Generator().manual_seed(seed)
    c, f, h, w = spec.latent_shape(spec.tiny_frames, 32, 32)
    b, m, d = 2, 30, spec.tiny_text_dim
    args = (
        torch.randn(b, c, f, h, w, generator=g),
        torch.tensor([500, 20]),
        torch.randn(b, spec.tiny_text_len, d, generator=g),
        torch.ones(b, spec.tiny_text_len, dtype=torch.bool),
    )
    masks = torch.zeros(b, f, m)
    masks[:, :, :3] = 1
    xy = torch.rand(b, f, m, 2, generator=g) * 0.5
    grounding = {
        "grounding_boxes": torch.cat([xy, xy + 0.4], -1) * masks[..., None],
        "grounding_masks": masks,
        "grounding_phrases": torch.randn(b, f, m, d, generator=g) * masks[..., None],
    }
    return args, grounding


@pytest.mark.parametrize("name", BACKBONES)
@torch.no_grad()
def test_zero_gates_are_the_backbone_bit_for_bit(name):
    plain, gligen = _pair(name)
    args, grounding = _inputs(name)
    reference = plain(*args)
    assert torch.equal(gligen(*args, **grounding), reference)  # step 0: tanh(0) = 0 gates
    assert torch.equal(gligen(*args), reference)  # no grounding (scheduled sampling's beta = 0)
    gligen.set_gates(0.5)
    grounded = gligen(*args, **grounding)
    assert not torch.allclose(grounded, reference, atol=1e-4)
    moved = dict(grounding, grounding_boxes=grounding["grounding_boxes"].flip(-1))
    assert not torch.allclose(gligen(*args, **moved), grounded, atol=1e-5)  # the boxes matter
    with pytest.raises(ValueError, match="or none"):
        gligen(*args, grounding_boxes=grounding["grounding_boxes"])


@pytest.mark.parametrize("name", BACKBONES)
def test_blocks_follow_the_formula_and_only_they_train(name):
    plain, gligen = _pair(name)
    fusers = gligen.fusers()
    # tiny U-Nets: down 1 + mid 1 + up 2 transformer blocks; tiny Wan: 2 blocks
    n_blocks = {"sd1.5": 4, "modelscope-t2v": 4, "wan2.1-1.3b": 2}[name]
    assert len(fusers) == n_blocks
    c = gligen.spec.text_dim_for("tiny")
    added = sum(gated_block_parameters(f.linear.out_features, c) for f in fusers)
    net = gligen.model.position_net if isinstance(gligen, GLIGENSD) else gligen.position_net
    n_net = sum(p.numel() for p in net.parameters())
    assert n_net == (c + 64) * 512 + 512 + 512 * 512 + 512 + 512 * c + c + c + 64
    total = sum(p.numel() for p in gligen.parameters())
    assert total == sum(p.numel() for p in plain.parameters()) + added + n_net
    trainable = sum(p.numel() for p in gligen.parameters() if p.requires_grad)
    assert trainable == added + n_net


def test_family_classes_and_unsupported_backbone():
    assert isinstance(_pair("sd1.5")[1], GLIGENSD)
    assert isinstance(_pair("modelscope-t2v")[1], GLIGENModelScope)
    assert isinstance(_pair("wan2.1-1.3b")[1], GLIGENWan)
    from vidgen.errors import ConfigError

    with pytest.raises(ConfigError, match="method=gligen is implemented on"):
        build_gligen(build_backbone("cogvideox-2b", size="tiny"), 32, 32)


def test_real_sd15_adds_the_official_parameter_count():
    """official-code-facts A.2: 16 blocks (d = 320 x5, 640 x5, 1280 x6) = 208,018,272 + PositionNet 1,083,968."""
    with torch.device("meta"):
        plain = build_backbone("sd1.5", size="real", init="random")
        gligen = build_gligen(plain, phrase_dim=768, token_dim=768)
    widths = sorted(f.linear.out_features for f in gligen.fusers())
    assert widths == [320] * 5 + [640] * 5 + [1280] * 6
    added = sum(p.numel() for p in gligen.parameters()) - 859_520_964
    assert added == 208_018_272 + 1_083_968


@torch.no_grad()
def test_visual_position_knob_keeps_step0_and_parameters_and_places_tokens():
    """method.visual_position=sincos: zero gates = the backbone bit for bit, no extra parameter; with open
    gates a token's output depends on where it is (the plain block is blind to a permutation of tokens)."""
    from vidgen.errors import ConfigError
    from vidgen.methods.gligen.position import PositionedFuser

    plain, gligen = _pair("sd1.5")
    torch.manual_seed(0)
    positioned = build_gligen(copy.deepcopy(plain), 32, 32, visual_position="sincos")
    positioned.load_state_dict(gligen.state_dict())  # the same names, the same weights
    assert all(isinstance(f, PositionedFuser) for f in positioned.fusers()) and len(positioned.fusers()) == 4
    assert sum(p.numel() for p in positioned.parameters()) == sum(p.numel() for p in gligen.parameters())
    args, grounding = _inputs("sd1.5")
    assert torch.equal(positioned(*args, **grounding), plain(*args))
    positioned.set_gates(0.5)
    gligen.set_gates(0.5)
    assert not torch.allclose(positioned(*args, **grounding), gligen(*args, **grounding), atol=1e-5)
    # one block: permuting the visual tokens permutes the plain block's output, not the positioned one's
    fuser, plain_fuser = positioned.fusers()[0], gligen.fusers()[0]
    fuser.latent_hw = (8, 8)
    x, objs = torch.randn(2, 64, fuser.linear.out_features), torch.randn(2, 30, 32)
    perm = torch.randperm(64)
    assert torch.allclose(plain_fuser(x[:, perm], objs), plain_fuser(x, objs)[:, perm], atol=1e-5)
    assert not torch.allclose(fuser(x[:, perm], objs), fuser(x, objs)[:, perm], atol=1e-3)
    with pytest.raises(ConfigError, match="visual_position=sincos is implemented on sd1.5 only"):
        build_gligen(build_backbone("wan2.1-1.3b", size="tiny"), 32, 32, visual_position="sincos")


# ----------------------------------------------------------------------------- the method
from vidgen.config import load_config  # noqa: E402
from vidgen.data.sample import collate  # noqa: E402
from vidgen.diffusion import make_guidance, make_scheduler, sample_latents  # noqa: E402
from vidgen.errors import ConfigError  # noqa: E402
from vidgen.methods import method_class  # noqa: E402
from vidgen.methods.gligen.config import GLIGENConfig  # noqa: E402
from vidgen.methods.gligen.denoiser import GROUNDING_KEYS  # noqa: E402
from vidgen.methods.gligen.module import GLIGENModule  # noqa: E402
from vidgen.runs import read_summary  # noqa: E402
from vidgen.train import build_datamodule, main, train  # noqa: E402


@pytest.fixture
def setup(smoke):
    def make(*extra, exp="gligen_sd15", batch=2):
        cfg = load_config(smoke("logger=none", *extra, exp=exp))
        torch.manual_seed(0)
        module = GLIGENModule(cfg)
        dm = build_datamodule(cfg, module.spec)
        dm.transform = GLIGENModule.sample_transform(cfg, dm)
        module.set_null_text(*dm.null_text())
        return module, dm, collate([dm.dataset[i] for i in range(batch)])

    return make


def test_scheduled_sampling_grounds_the_first_30_percent_of_steps():
    guide = make_guidance("gligen", scale=7.5, tau=0.3, num_steps=10)
    seen = []

    def denoise(x, t, **kwargs):
        seen.append(sorted(kwargs))
        return torch.zeros_like(x)

    cond = {"text_embeds": torch.ones(1, 2, 3), **{k: torch.ones(1, 1, 2) for k in GROUNDING_KEYS}}
    sample_latents(
        denoise, make_scheduler("DDIMScheduler", {}), (1, 4, 1, 2, 2), cond, cond, guide, num_steps=10
    )
    grounded = [all(k in s for k in GROUNDING_KEYS) for s in seen]
    assert grounded == [True] * 3 + [False] * 7  # int(0.3 * 10) steps with beta = 1 (diffusers' rule)
    assert all("text_embeds" in s for s in seen)
    assert make_guidance("gligen", scale=2.0).grounded_steps is None  # no step count: grounded throughout


def test_grounding_inputs_dropout_and_frozen_backbone(setup):
    assert method_class("gligen") is GLIGENModule
    module, _, batch = setup()
    g = module.grounding(batch, batch.latents.shape[2])
    n = batch.instances.valid.sum(1)  # sd1.5: one frame, one slot per instance
    assert g["grounding_masks"].shape == (2, 1, 30) and torch.equal(
        g["grounding_masks"].sum((1, 2)), n.float()
    )
    assert g["grounding_phrases"].shape[-1] == module.spec.tiny_text_dim
    dropped = module.grounding(batch, 1, drop=torch.tensor([True, False]))
    assert dropped["grounding_masks"][0].eq(0).all() and torch.equal(
        dropped["grounding_masks"][1], g["grounding_masks"][1]
    )
    module.hp = GLIGENConfig(**{**module.hp.__dict__, "grounding_dropout": 1.0})
    loss, logs = module.compute_loss(batch, torch.Generator().manual_seed(0))
    assert logs["grounding_dropped"] == 1.0 and torch.isfinite(loss)
    loss.backward()
    trained = {n for n, p in module.model.named_parameters() if p.grad is not None}
    assert trained and all(".fuser." in n or n.startswith("model.position_net.") for n in trained)


def test_bad_input_is_one_clean_error(smoke, capsys):
    rc = main(smoke("logger=none", "method.max_boxes=1", exp="gligen_sd15"))
    assert rc == 2
    assert "more than method.max_boxes=1 grounding slots. Fix: keep the 1 largest" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="method.phrase_pool=max: input should be 'eos' or 'mean'"):
        GLIGENConfig.from_cfg(load_config(smoke("method.phrase_pool=max", exp="gligen_sd15")))
    with pytest.raises(ConfigError, match="method=gligen is implemented on"):
        GLIGENModule(load_config(smoke("backbone=cogvideox-2b", exp="gligen_sd15")))


@pytest.mark.slow
def test_profile_counts_the_gated_blocks(smoke):
    from vidgen.profile import profile

    r = profile(load_config(smoke("logger=none", exp="gligen_wan")))
    assert r["overhead"]["params_pct"] > 0 and r["overhead"]["fwd_flops_pct"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("exp", ["gligen_sd15", "gligen_wan", "gligen_modelscope"])
def test_smoke_experiments_train_and_evaluate(smoke, exp):
    run = train(
        load_config(
            smoke("logger=none", "train.max_steps=2", "method.eval_samples=1", "method.eval_steps=2", exp=exp)
        )
    )
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["global_step"] == 2
    assert 0.0 <= summary["eval/layout_iou"] <= 1.0
