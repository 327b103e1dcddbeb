"""JDMModule: loss weighting and its estimators, joint noising inputs, joint sampling, mask
evaluation, and every JDM experiment at smoke size."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from vidgen.config import load_config
from vidgen.data.sample import collate
from vidgen.methods import method_class
from vidgen.methods.jdm.loss_weighting import choose_fine, dynamic_weight, two_pass_loss
from vidgen.methods.jdm.module import CAPTION_EMBEDS, CMI, MASK_LATENTS, MASKS, JDMModule
from vidgen.runs import read_summary
from vidgen.train import build_datamodule, train


@pytest.fixture
def setup(smoke):
    def make(*extra, exp="jdm_cogvideox", batch=4):
        cfg = load_config(smoke("logger=none", *extra, exp=exp))
        torch.manual_seed(0)
        module = JDMModule(cfg)
        datamodule = build_datamodule(cfg, module.spec)
        datamodule.transform = JDMModule.sample_transform(cfg, datamodule)
        module.set_null_text(*datamodule.null_text())
        module.use_data(datamodule)  # fresh combinations are encoded with the data's codec / text encoder
        batch = collate([datamodule.dataset[i] for i in range(batch)])
        return module, datamodule, batch

    return make


def test_method_is_registered_and_extras_have_the_contract_shapes(setup):
    assert method_class("jdm") is JDMModule
    module, _, batch = setup("method.combinations=pool")
    c, f, h, w = batch.latents.shape[1:]
    k = int(module.cfg.method.num_combinations)
    assert batch.extras[MASK_LATENTS].shape == (4, k, c, f, h, w)
    assert batch.extras[CAPTION_EMBEDS].shape == (4, k, *batch.text_embeds.shape[1:])
    assert batch.extras[MASKS].dtype == torch.bool and batch.extras[MASKS].shape[:2] == (4, k)
    # combination 0 pairs the global caption with the all-objects mask
    torch.testing.assert_close(batch.extras[CAPTION_EMBEDS][:, 0], batch.text_embeds)


def test_dynamic_weight_formula():
    cmi = torch.tensor([0.0, 1.0, 0.5, -0.3])
    torch.testing.assert_close(dynamic_weight(cmi), torch.tensor([1.0, math.exp(-1), math.exp(-0.5), 1.0]))
    torch.testing.assert_close(
        dynamic_weight(cmi, w=0.5, alpha=2.0), 0.5 * torch.tensor([1.0, math.exp(-2), math.exp(-1), 1.0])
    )
    assert dynamic_weight(torch.tensor([20.0])).item() < 1e-8  # strongly dependent captions: back to L_diff
    l_diff, l_fine = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0])
    torch.testing.assert_close(
        two_pass_loss(l_diff, l_fine, torch.tensor([0.25, 1.0])), torch.tensor([1.5, 5.0])
    )
    assert choose_fine(torch.tensor([0.3, 0.3]), torch.tensor([0.29, 0.31])).tolist() == [True, False]
    with pytest.raises(Exception, match="loss_w"):
        dynamic_weight(cmi, w=1.5)


def test_w_prime_comes_from_the_clip_cmi(setup):
    module, _, batch = setup("seed=3", batch=16)
    # the shapes world's stand-in CMI reaches every sample: w' = exp(-Ī), not the constant w
    w = module.w_prime(batch)
    torch.testing.assert_close(w, torch.exp(-batch.extras[CMI].clamp_min(0)))
    assert (batch.extras[CMI] > 0).any() and (w < 1).any()
    batch.extras[CMI] = torch.tensor([0.0, 1.0, 2.0, 3.0] * 4)
    torch.testing.assert_close(module.w_prime(batch), torch.exp(-torch.tensor([0.0, 1.0, 2.0, 3.0] * 4)))
    off, _, batch = setup("method.dynamic_weighting=false")  # the ablation knob: w' = w
    batch.extras[CMI] = torch.tensor([0.0, 1.0, 2.0, 3.0])
    torch.testing.assert_close(off.w_prime(batch), torch.ones(4))


def test_l_diff_is_the_video_only_objective_by_default(setup, monkeypatch):
    module, _, batch = setup("train.cfg_dropout=0.0")
    joint, _, _ = setup("train.cfg_dropout=0.0", "method.l_diff=joint")
    c = module.channels
    d = module.draw(batch, torch.Generator().manual_seed(1))
    for m in (module, joint):

        def perfect_video_wrong_signal(x_t, t, text, mask, b, m=m):
            x0 = torch.cat([batch.latents, batch.extras[MASK_LATENTS][:, 0]], dim=1)
            target = m.objective.target(x0, d.noise, x_t, t)
            return torch.cat([target[:, :c], target[:, c:] + 1.0], dim=1)

        monkeypatch.setattr(m, "denoise", perfect_video_wrong_signal)
    diff = torch.zeros(4, dtype=torch.bool)
    assert torch.equal(module.joint_loss(batch, d, diff)[0], torch.zeros(4))  # Eq. 3: video channels only
    torch.testing.assert_close(
        joint.joint_loss(batch, d, diff)[0], torch.full((4,), 0.5)
    )  # half the channels off by 1


def test_terms_feed_global_caption_with_all_objects_mask_vs_regional_combination(setup, monkeypatch):
    module, _, batch = setup("train.cfg_dropout=0.0", "method.combinations=pool")
    c = module.channels
    d = module.draw(batch, torch.Generator().manual_seed(1))
    assert d.noise.shape[1] == 2 * c and not torch.equal(d.noise[:, :c], d.noise[:, c:])  # independent noise
    assert (d.k >= 1).all() and (d.k < batch.extras[MASK_LATENTS].shape[1]).all()
    seen = {}

    def spy(x_t, t, text, mask, b):
        seen.update(x_t=x_t, t=t, text=text)
        return torch.zeros_like(x_t)

    monkeypatch.setattr(module, "denoise", spy)
    rows = torch.arange(4)
    for fine in (False, True):
        module.joint_loss(batch, d, torch.full((4,), fine))
        combo = d.k if fine else torch.zeros_like(d.k)
        x0 = torch.cat([batch.latents, batch.extras[MASK_LATENTS][rows, combo]], dim=1)
        torch.testing.assert_close(
            seen["x_t"], module.objective.add_noise(x0, d.noise, d.t)
        )  # one t for both
        text = batch.extras[CAPTION_EMBEDS][rows, d.k] if fine else batch.text_embeds
        torch.testing.assert_close(seen["text"], text)


def test_fresh_combinations_are_drawn_every_step_from_all_subsets_and_encoded(setup, monkeypatch):
    from itertools import combinations as subsets_of

    from vidgen.methods.jdm.combinations import join_captions
    from vidgen.methods.jdm.fresh_combinations import region_counts
    from vidgen.methods.jdm.signals import signal_video

    module, dm, batch = setup("train.cfg_dropout=0.0", batch=16)
    assert batch.extras[MASK_LATENTS].shape[1] == 1  # the data carries only combination 0 (L_diff)
    counts = region_counts(batch)
    seen = [set() for _ in counts]
    for step in range(60):
        d = module.draw(batch, torch.Generator().manual_seed(step))
        for i, sub in enumerate(d.subsets):
            seen[i].add(sub)
    for i, n in enumerate(counts):  # every non-empty subset turns up (no cap by default)
        assert seen[i] == {c for r in range(1, n + 1) for c in subsets_of(range(n), r)}, (i, n)
    assert max(counts) >= 3
    again = [module.draw(batch, torch.Generator().manual_seed(7)).subsets for _ in range(2)]
    assert again[0] == again[1]  # from the step generator: a resumed run draws the same subsets
    d = module.draw(batch, torch.Generator().manual_seed(3))
    seen = {}
    monkeypatch.setattr(
        module, "denoise", lambda x_t, t, text, mask, b: seen.update(x_t=x_t, text=text) or x_t
    )
    module.joint_loss(batch, d, torch.ones(16, dtype=torch.bool))
    codec, emb = dm.codec(), dm.text_encoder()
    for i in range(16):
        masks, caps = batch.regions.masks[i, : counts[i]], batch.regions.captions[i]
        union = masks[list(d.subsets[i])].any(0)
        m0 = codec.encode(signal_video(union.float())[None])[0]
        x0 = torch.cat([batch.latents[i], m0])[None]
        want = module.objective.add_noise(x0, d.noise[i : i + 1], d.t[i : i + 1])[0]
        torch.testing.assert_close(seen["x_t"][i], want, atol=1e-5, rtol=1e-5)
        text = emb.encode([join_captions([caps[j] for j in d.subsets[i]])])[0][0]
        torch.testing.assert_close(seen["text"][i], text)


def test_subset_laws():
    from collections import Counter

    from vidgen.methods.jdm.fresh_combinations import draw_subset

    g = torch.Generator().manual_seed(0)
    uniform = Counter(draw_subset(3, g, None, "uniform") for _ in range(2800))
    assert len(uniform) == 7 and all(abs(n / 2800 - 1 / 7) < 0.03 for n in uniform.values())
    size_first = Counter(draw_subset(3, g, None, "size_first") for _ in range(2700))
    assert abs(size_first[(0,)] / 2700 - 1 / 9) < 0.03 and abs(size_first[(0, 1, 2)] / 2700 - 1 / 3) < 0.04
    assert {len(s) for s in (draw_subset(5, g, 2, "uniform") for _ in range(200))} == {1, 2}  # the cap


def test_one_pass_estimator_is_unbiased_for_the_two_pass_loss(setup):
    module, _, batch = setup("method.estimator=two_pass", "method.combinations=pool")
    batch.extras[CMI] = torch.tensor([0.0, 0.7, 2.0, 0.3])
    w = module.w_prime(batch)
    d = module.draw(batch, torch.Generator().manual_seed(3))
    with torch.no_grad():
        exact, logs = module.loss_terms(batch, d)
        l_diff, _ = module.joint_loss(batch, d, torch.zeros(4, dtype=torch.bool))
        l_fine, _ = module.joint_loss(batch, d, torch.ones(4, dtype=torch.bool))
    torch.testing.assert_close(exact, (1 - w) * l_diff + w * l_fine)
    assert (l_fine - l_diff).abs().min() > 1e-4  # the terms differ, so the test has power
    module.estimator = "one_pass"
    n = 300
    gen = torch.Generator().manual_seed(0)
    total = torch.zeros(4)
    with torch.no_grad():
        for _ in range(n):
            u = torch.rand(4, generator=gen)
            per, _ = module.loss_terms(batch, dataclasses.replace(d, u=u))
            fine = u < w
            torch.testing.assert_close(per, torch.where(fine, l_fine, l_diff))  # one forward, the chosen term
            total += per
    mean = total / n
    stderr = (w * (1 - w) / n).sqrt() * (l_fine - l_diff).abs()
    assert ((mean - exact).abs() <= 4 * stderr + 1e-6).all(), (mean, exact, stderr)
    assert (mean.mean() - exact.mean()).abs() <= 4 * stderr.pow(2).sum().sqrt() / 4 + 1e-6


def test_step_randomness_is_reproducible(setup):
    module, _, batch = setup()
    a, _ = module.compute_loss(batch, torch.Generator().manual_seed(5))
    b, logs = module.compute_loss(batch, torch.Generator().manual_seed(5))
    c, _ = module.compute_loss(batch, torch.Generator().manual_seed(6))
    assert a.item() == b.item() and a.item() != c.item()
    assert {"w_prime", "loss_video", "loss_mask", "fine_fraction"} <= set(logs)


def test_example_inputs_follow_the_model_channels(setup):
    module, _, _ = setup()
    from vidgen.backbones import build_backbone

    spec = module.spec
    plain = build_backbone(spec, size="tiny", init="random")
    assert JDMModule.example_inputs(spec, "tiny", 9, 64, 64, model=plain)["latents"].shape[1] == 16
    assert JDMModule.example_inputs(spec, "tiny", 9, 64, 64, model=module.model)["latents"].shape[1] == 32


@pytest.mark.parametrize("exp", ["jdm_cogvideox", "jdm_modelscope"])
def test_joint_sampling_writes_video_and_binary_mask_side_by_side(setup, exp):
    module, datamodule, batch = setup(exp=exp, batch=2)
    module.eval()
    frames, height, width = batch.extras[MASKS].shape[2:]
    shape = module.latent_shape(frames, height, width)
    assert shape[0] == 2 * module.spec.latent_channels
    latents = module.generate(
        batch.text_embeds,
        batch.text_mask,
        module.null_text_embeds[None],
        module.null_text_mask[None],
        latent_shape=shape,
        steps=2,
    )
    out = module.decode_sample(latents, datamodule.codec())
    assert out.shape == (2, 3, frames, height, 2 * width)
    mask_half = out[..., width:]
    assert set(mask_half.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(mask_half[:, 0], mask_half[:, 1])  # grey: same on R, G, B


def test_decoding_the_true_mask_latents_recovers_the_masks(setup):
    """The codec path evaluation relies on: encode (data side) -> decode + binarise (here)."""
    module, datamodule, batch = setup()
    c = module.channels
    latents = torch.cat([batch.latents, batch.extras[MASK_LATENTS][:, 0]], dim=1)
    pred = module.decode_signal(latents, datamodule.codec())
    from vidgen.eval.mask_metrics import mask_metrics

    iou = mask_metrics(pred, batch.extras[MASKS][:, 0])["mask_iou"]
    assert iou > 0.7, iou
    assert latents.shape[1] == 2 * c


def test_evaluate_scores_the_generated_mask_against_the_generated_videos_segmentation(setup, monkeypatch):
    module, datamodule, _ = setup("method.eval_samples=2", "method.eval_steps=2")
    metrics = module.evaluate(datamodule)
    assert set(metrics) == {"mask_iou", "mask_f1", "mask_pixel_acc", "source_mask_iou", "source_mask_f1",
                            "source_mask_pixel_acc"}  # fmt: skip
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    # Table 3 protocol: a generated video of a red square and a mask that matches it scores
    # IoU 1 against the video's own segmentation, while the source clip's mask (clip 0) disagrees
    f, h, w = datamodule.dataset.clip(0).masks.shape[1:]
    mask = torch.zeros(f, h, w, dtype=torch.bool)
    mask[:, 2:20, 30:50] = True  # a red square on a black background
    red = torch.tensor([0.9, 0.1, 0.1]) * 2 - 1
    video = torch.where(mask[None], red.view(3, 1, 1, 1), torch.full((3, 1, 1, 1), -0.9))
    seen = {}

    def fake(prompts, shape, codec, steps):
        seen["steps"] = steps
        return video[None].expand(len(prompts), -1, -1, -1, -1), mask[None].expand(len(prompts), -1, -1, -1)

    monkeypatch.setattr(module, "generate_joint", fake)
    monkeypatch.setattr(module, "hp", dataclasses.replace(module.hp, eval_samples=1, eval_steps=None,
                                                          eval_prompts=None))  # fmt: skip
    from vidgen.methods.jdm import evaluation

    prompts = evaluation.eval_prompts(module.hp, datamodule, module._dataset_samples(datamodule))
    prompts[0].text = "a red square moving right"
    monkeypatch.setattr(evaluation, "eval_prompts", lambda *a: prompts)
    metrics = module.evaluate(datamodule)
    assert metrics["mask_iou"] == 1.0 and metrics["source_mask_iou"] < 0.9
    assert seen["steps"] == int(module.cfg.sample.steps)  # eval_steps null: sample.steps
    hed, dm, _ = setup("method.signal=hed", exp="jdm_cogvideox_hed")
    assert hed.evaluate(dm) == {}


@pytest.mark.parametrize(
    "exp", ["jdm_cogvideox", "jdm_cogvideox_hed", "jdm_cogvideox_depth", "jdm_modelscope"]
)
def test_every_jdm_experiment_runs_at_smoke_size(smoke, tmp_path, exp):
    run = train(load_config(smoke("logger=none", "train.max_steps=2", "method.eval_steps=2", exp=exp)))
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["method"] == "jdm"
    assert math.isfinite(summary["train/loss"])
    if exp in ("jdm_cogvideox", "jdm_modelscope"):
        assert 0.0 <= summary["eval/mask_iou"] <= 1.0 and "eval/mask_pixel_acc" in summary


def test_two_pass_training_and_exact_resume(smoke, tmp_path):
    from vidgen.runs import read_metrics

    args = ("logger=none", "method.estimator=two_pass", "method.eval_samples=0")
    straight = train(
        load_config(smoke(*args, "train.max_steps=4", exp="jdm_cogvideox", run_dir=tmp_path / "a"))
    )
    split = tmp_path / "b"
    train(load_config(smoke(*args, "train.max_steps=2", exp="jdm_cogvideox", run_dir=split)))
    train(load_config(smoke(*args, "train.max_steps=4", exp="jdm_cogvideox", run_dir=split)))
    losses = lambda r: [x["train/loss"] for x in read_metrics(r)]  # noqa: E731
    assert losses(split) == losses(straight) and len(losses(straight)) == 4


def test_vidgen_sample_writes_video_and_mask_side_by_side(smoke, tmp_path):
    from vidgen.data.video_io import read_video
    from vidgen.sampling import expand_shorthands, sample

    run = tmp_path / "s"
    train(
        load_config(
            smoke(
                "logger=none", "train.max_steps=1", "method.eval_samples=0", exp="jdm_cogvideox", run_dir=run
            )
        )
    )
    out = tmp_path / "s.mp4"
    cfg = load_config(
        expand_shorthands(
            smoke(
                "prompt=a red circle moving right", f"out={out}", "steps=2", exp="jdm_cogvideox", run_dir=run
            )
        )
    )
    assert sample(cfg) == out
    frames, _ = read_video(out)
    assert frames.shape == (9, 64, 128, 3)  # 9 x 64 x 64 video | 9 x 64 x 64 mask
    mask = frames[..., 64:, :].float()
    assert ((mask < 30) | (mask > 225)).float().mean() > 0.95  # binary black / white (codec-rounded)


@pytest.mark.slow
def test_shapes_world_training_generates_masks_better_than_trivial_ones(tmp_path):
    """benchmarks/jdm_mask_iou.py: a short CPU training beats an all-zero and a random mask (~1-3 min)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "jdm_mask_iou.py"
    spec = importlib.util.spec_from_file_location("jdm_mask_iou", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--steps", "3000", "--eval-every", "0", "--out", str(tmp_path / "r.json")]) == 0
