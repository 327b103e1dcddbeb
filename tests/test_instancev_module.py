"""InstanceVModule: SAUG branches and guidance, training at smoke size, bad input, overhead profile."""

from __future__ import annotations

import json
from unittest.mock import patch

import pytest
import torch
from omegaconf import OmegaConf

from vidgen.config import load_config
from vidgen.data.sample import check_fields, collate
from vidgen.diffusion import make_guidance
from vidgen.errors import ConfigError
from vidgen.methods import method_class
from vidgen.methods.instancev.config import InstanceVConfig
from vidgen.methods.instancev.module import InstanceVModule
from vidgen.methods.instancev.transform import SENTINEL_EMBEDS, encode_sentinels
from vidgen.runs import read_summary
from vidgen.train import build_datamodule, main, train


@pytest.fixture
def setup(smoke):
    def make(*extra, exp="instancev_wan", batch=2):
        cfg = load_config(smoke("logger=none", *extra, exp=exp))
        torch.manual_seed(0)
        module = InstanceVModule(cfg)
        dm = build_datamodule(cfg, module.spec)
        dm.transform = InstanceVModule.sample_transform(cfg, dm)
        module.set_null_text(*dm.null_text())
        return module, dm, collate([dm.dataset[i] for i in range(batch)])

    return make


def test_registered_and_saug_uncond_keeps_masks_with_distinct_sentinels(setup):
    assert method_class("instancev") is InstanceVModule
    module, dm, batch = setup()
    cond, uncond = module.branches(batch, batch.latents.shape, batch.text_embeds, batch.text_mask)
    assert torch.equal(cond["instance_masks"], uncond["instance_masks"])  # M kept (Eq. 7)
    assert cond["instance_masks"].any()
    assert torch.equal(uncond["text_embeds"], cond["text_embeds"])  # caption kept: Eq. 7 as printed
    s = uncond["instance_embeds"]  # [B, N, L, D]
    assert s.shape == cond["instance_embeds"].shape
    n = int(batch.instances.valid[0].sum())
    expected, _ = dm.text_encoder().encode([f"<extra_id_{k}>" for k in range(n)])
    assert torch.allclose(s[0, :n, :4], expected[:, :4])  # instance k -> <extra_id_k>
    assert not torch.equal(s[0, 0], s[0, 1]) if n > 1 else True
    assert batch.extras[SENTINEL_EMBEDS].shape[1] == module.hp.max_instances


def test_plain_cfg_ablation_drops_the_grounding(setup):
    module, _, batch = setup("method.saug=false")
    assert SENTINEL_EMBEDS not in batch.extras
    cond, uncond = module.branches(batch, batch.latents.shape, batch.text_embeds, batch.text_mask)
    assert cond["instance_masks"].any() and not uncond["instance_masks"].any()
    assert not uncond["instance_embeds"].any()  # Sec. 9.2: grounding inputs -> all-zero tensors
    assert torch.equal(uncond["text_embeds"][0], module.null_text_embeds)


def test_saug_caption_drop_is_the_other_reading_and_bad_values_fail(setup):
    module, _, batch = setup("method.saug_caption=drop")
    cond, uncond = module.branches(batch, batch.latents.shape, batch.text_embeds, batch.text_mask)
    assert torch.equal(uncond["text_embeds"][0], module.null_text_embeds)  # Sec. 9.2 reading: null caption
    assert torch.equal(uncond["instance_masks"], cond["instance_masks"])
    assert not torch.equal(uncond["instance_embeds"], cond["instance_embeds"])  # prompts -> sentinels
    with pytest.raises(ConfigError, match="method.saug_caption='maybe'"):
        InstanceVConfig.from_cfg(
            OmegaConf.create({"method": {**module.hp.__dict__, "saug_caption": "maybe"}})
        )


def test_training_dropout_feeds_exactly_the_guidance_uncond_branch(setup):
    """Sec. 9.2: the 20 % unconditional passes are the ones SAUG guides with at inference."""
    module, _, batch = setup("train.cfg_dropout=1.0")
    _, uncond = module.branches(batch, batch.latents.shape, batch.text_embeds, batch.text_mask.bool())
    seen = {}
    forward = module.model.forward

    def spy(x, t, **kwargs):
        seen.update(kwargs)
        return forward(x, t, **kwargs)

    with patch.object(module.model, "forward", spy):
        module.compute_loss(batch, torch.Generator().manual_seed(0))
    assert set(seen) == set(uncond)
    for k, v in uncond.items():
        assert torch.equal(seen[k], v.to(seen[k].dtype)), k


def test_distinct_sentinels_let_the_kept_masks_position_the_instances(setup):
    """Sec. 10.4: with one distinct sentinel per instance, swapping two instances' masks changes the
    unconditional output (the masks carry position); with identical empty prompts it would not."""
    module, _, batch = setup(batch=1)
    _, uncond = module.branches(batch, batch.latents.shape, batch.text_embeds, batch.text_mask)
    masks = uncond["instance_masks"]  # [1, F', N, S]
    assert masks.shape[2] >= 2 and not torch.equal(masks[:, :, 0], masks[:, :, 1])
    swapped = masks.clone()
    swapped[:, :, [0, 1]] = masks[:, :, [1, 0]]
    module.model.set_gates(1.0)
    x, t = torch.randn(batch.latents.shape, generator=torch.Generator().manual_seed(0)), torch.tensor([500.0])
    with torch.no_grad():
        out = module.model(x, t, **uncond)
        out_swapped = module.model(x, t, **{**uncond, "instance_masks": swapped})
        same = uncond["instance_embeds"].clone()
        same[:, 1] = same[:, 0]  # instance 1 given instance 0's sentinel: the swap is invisible
        a = module.model(x, t, **{**uncond, "instance_embeds": same})
        b = module.model(x, t, **{**uncond, "instance_embeds": same, "instance_masks": swapped})
    assert not torch.allclose(out, out_swapped, atol=1e-5)
    assert torch.allclose(a, b, atol=1e-5)


def test_saug_guidance_is_eq7_with_w_equal_scale_minus_one():
    guide = make_guidance("saug", scale=5.0)
    assert guide.w == 4.0

    def denoise(x, t, flag):
        return x * flag[:, None]

    x = torch.ones(2, 3)
    out = guide(denoise, x, torch.zeros(2), {"flag": torch.full((2,), 2.0)}, {"flag": torch.full((2,), 0.5)})
    assert torch.allclose(out, (1 + 4.0) * 2.0 - 4.0 * 0.5 + torch.zeros_like(x))


def test_training_drops_to_the_unconditional_branch_at_cfg_dropout(setup):
    module, _, batch = setup("train.cfg_dropout=1.0")
    loss, logs = module.compute_loss(batch, torch.Generator().manual_seed(0))
    assert logs["uncond_fraction"] == 1.0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in module.model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in module.model.model.parameters())  # backbone frozen


def test_smoke_run_trains_samples_and_evaluates_layout_iou(smoke, tmp_path, capsys):
    run = train(
        load_config(
            smoke(
                "logger=none",
                "train.max_steps=2",
                "method.eval_samples=1",
                "method.eval_steps=2",
                exp="instancev_wan",
            )
        )
    )
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["global_step"] == 2
    assert 0.0 <= summary["eval/layout_iou_aw"] <= 1.0 and 0.0 <= summary["eval/layout_iou"] <= 1.0

    # `vidgen sample instances=LAYOUT.json`: the layout reaches IMCA under SAUG, and is drawn when asked
    from vidgen.data.video_io import read_video
    from vidgen.sampling import main as sample_main

    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps({"instances": [{"prompt": "a red square", "box": [0.0, 0.0, 0.5, 0.5]}]}))
    args = smoke("logger=none", "steps=2", "prompt=a red square", exp="instancev_wan")
    calls = []
    real = InstanceVModule.generate_instances
    with patch.object(
        InstanceVModule,
        "generate_instances",
        lambda self, batch, *a: calls.append((batch, str(self.cfg.sample.guidance))) or real(self, batch, *a),
    ):
        assert (
            sample_main([*args, f"instances={layout}", "draw_layout=true", f"out={tmp_path / 'a.mp4'}"]) == 0
        )
    ((batch, guidance),) = calls
    assert guidance == "saug" and batch.instances.prompts == [["a red square"]]
    assert batch.instances.boxes.shape[:2] == (1, 1) and bool(batch.instances.visible.all())
    assert SENTINEL_EMBEDS in batch.extras
    frames, _ = read_video(tmp_path / "a.mp4")
    assert frames.shape[0] == batch.instances.boxes.shape[2]
    assert int(frames[0, 0, 0].min()) > 200  # the top-left box corner is drawn white

    # `vidgen eval RUN suite=shapes`: each clip generated with its own layout (InstanceBench's protocol)
    from vidgen.eval.cli import main as eval_main
    from vidgen.eval.results import read_suite

    calls.clear()
    with patch.object(
        InstanceVModule,
        "generate_instances",
        lambda self, batch, *a: calls.append((batch, str(self.cfg.sample.guidance))) or real(self, batch, *a),
    ):
        assert eval_main([str(run), "eval.limit=1", "sample.steps=2"]) == 0
    ((batch, guidance),) = calls
    assert guidance == "saug" and SENTINEL_EMBEDS in batch.extras and batch.instances.valid.any()
    assert 0.0 <= read_suite(run, "shapes")["metrics"]["eval/shapes_layout_iou"] <= 1.0

    layout.write_text(json.dumps({"instances": [{"prompt": "x", "box": [0.2, 0.2, 1.5, 0.9]}]}))
    assert sample_main([*args, f"instances={layout}", f"out={tmp_path / 'b.mp4'}"]) == 2
    err = capsys.readouterr().err
    assert f"instances={layout}" in err and "outside [0, 1]" in err and "Traceback" not in err
    assert not (tmp_path / "b.mp4").exists()


def test_bad_input_is_one_clean_error(smoke, capsys):
    rc = main(smoke("logger=none", "method.max_instances=1", exp="instancev_wan"))
    assert rc == 2
    assert "more than method.max_instances=1" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"does not provide field\(s\) \['instances'"):
        check_fields(InstanceVModule.required_fields, {"latents", "text_embeds"}, "data=shards")
    with pytest.raises(ConfigError, match="method.stape=true needs method.imca=true"):
        InstanceVConfig.from_cfg(load_config(smoke("method.imca=false", exp="instancev_wan")))
    with pytest.raises(ConfigError, match="implemented on Wan2.1"):
        InstanceVModule(load_config(smoke("backbone=cogvideox-2b", exp="instancev_wan")))


class _FewSentinels:
    class tokenizer:  # noqa: N801
        @staticmethod
        def get_vocab():
            return {f"<extra_id_{k}>": k for k in range(3)}


def test_a_tokenizer_with_too_few_sentinels_fails_clearly():
    with pytest.raises(ConfigError, match="has 3 <extra_id_N> sentinel tokens but method.max_instances=8"):
        encode_sentinels(_FewSentinels(), 8, "data.text_encoder=/models/umt5")


def test_profile_counts_the_additions(smoke):
    from vidgen.profile import profile

    r = profile(load_config(smoke("logger=none", exp="instancev_wan")))
    assert r["overhead"]["params_pct"] > 0 and r["overhead"]["fwd_flops_pct"] > 0


def test_a_real_tokenizer_without_sentinels_is_refused(tmp_path):
    from fixtures_models import make_tiny_text_encoder
    from vidgen.data.encoders import load_text_encoder

    enc = load_text_encoder(
        make_tiny_text_encoder(tmp_path, "UMT5EncoderModel", dim=32), "UMT5EncoderModel", 16
    )
    with pytest.raises(ConfigError, match="has 0 <extra_id_N> sentinel tokens"):
        encode_sentinels(enc, 2, "data.text_encoder=tiny")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_one_bf16_gpu_step(smoke):
    run = train(
        load_config(
            smoke(
                "logger=none",
                "train.max_steps=1",
                "method.eval_samples=1",
                "method.eval_steps=2",
                "trainer.accelerator=gpu",
                "trainer.precision=bf16-mixed",
                exp="instancev_wan",
            )
        )
    )
    assert read_summary(run)["status"] == "completed"


def test_backbone_row_trains_nothing_and_runs(setup):
    module, _, batch = setup("variant=instancev/backbone")
    assert module.model.imca is None and module.nothing_trains is not None
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    opt = module.configure_optimizers()
    loss, _ = module.compute_loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in module.model.state_dict().items())


def test_variants_are_nested_per_method_and_change_only_their_row(smoke):
    base = load_config(smoke(exp="instancev_wan"))
    with pytest.raises(ConfigError, match=r"variant=instancev/nope: no such variant.*instancev/full"):
        load_config(smoke("variant=instancev/nope", exp="instancev_wan"))
    rows = {
        "full": {},
        "imca_stape": {"method.saug": False, "sample.guidance": "cfg"},
        "imca": {"method.stape": False, "method.saug": False, "sample.guidance": "cfg"},
        "cfg6": {"sample.guidance_scale": 6.0},
    }
    for row, change in rows.items():
        cfg = load_config(smoke(f"variant=instancev/{row}", exp="instancev_wan"))
        for key in ("method.imca", "method.stape", "method.saug", "sample.guidance", "sample.guidance_scale"):
            want = change.get(key, OmegaConf.select(base, key))
            assert OmegaConf.select(cfg, key) == want, (row, key)
