"""vidgen.benchmark_runs: held-out eval overrides, `--keep` reuse of completed runs, paired intervals
and the teacher-forced probe of the layout benchmarks."""

from __future__ import annotations

import json

import pytest
import torch

from vidgen import benchmark_runs
from vidgen.benchmark_runs import exported, heldout_data, paired_difference, teacher_forced_mse, trained


def test_heldout_data_names_another_world_or_none():
    assert heldout_data(1000, 16) == ["data.seed=1000", "data.num_clips=16"]
    assert heldout_data(-1, 16) == []  # -1: score the training clips


def test_trained_reuses_only_a_completed_run_and_only_with_keep(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(benchmark_runs, "train_run", lambda ov: calls.append(ov) or tmp_path / "new")
    run = tmp_path / "arm"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"status": "completed"}))
    assert trained(["a=1"], run, keep=True) == run and calls == []
    assert trained(["a=1"], run, keep=False) == tmp_path / "new" and calls == [["a=1"]]
    (run / "summary.json").write_text(json.dumps({"status": "failed"}))
    assert trained(["a=2"], run, keep=True) == tmp_path / "new" and calls[-1] == ["a=2"]


def test_trained_refuses_a_kept_run_of_another_length(tmp_path, monkeypatch):
    from vidgen.errors import ConfigError

    monkeypatch.setattr(benchmark_runs, "train_run", lambda ov: tmp_path / "new")
    run = tmp_path / "ft"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"status": "completed", "max_steps": 3000}))
    assert trained(["train.max_steps=3000"], run, keep=True) == run
    with pytest.raises(
        ConfigError, match=r"ft: the kept run trained max_steps=3000, this benchmark asks for 20000"
    ):
        trained(["train.max_steps=20000"], run, keep=True)


def test_stand_in_overrides_name_the_twin_and_the_world():
    assert benchmark_runs.stand_in_overrides("tiny", 0.0) == []
    assert benchmark_runs.stand_in_overrides("tiny", 0.2) == ["data.background_ramp=0.2"]
    assert benchmark_runs.stand_in_overrides("sd_levels", 0.0) == benchmark_runs.SD15_TWINS["sd_levels"]


def test_exported_reuses_a_non_empty_export_only_with_keep(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(benchmark_runs, "export_weights", lambda run, out: calls.append(run) or out)
    out = tmp_path / "export"
    assert exported(tmp_path / "run", out, keep=True) == out and len(calls) == 1  # nothing there yet
    (out / "unet").mkdir(parents=True)
    assert exported(tmp_path / "run", out, keep=True) == out and len(calls) == 1
    assert exported(tmp_path / "run", out, keep=False) == out and len(calls) == 2


def test_paired_difference_interval_is_over_the_instance_pairs():
    gen = torch.Generator().manual_seed(0)
    b = torch.rand(200, generator=gen)
    same = paired_difference(b, b)
    assert same["diff"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["instances"] == 200
    # a constant shift is certain once paired, however spread out the scores are
    shifted = paired_difference(b + 0.05, b)
    assert shifted["diff"] == pytest.approx(0.05) and shifted["ci95"] == pytest.approx([0.05, 0.05])
    noisy = paired_difference(b + 0.05 + 0.2 * torch.randn(200, generator=gen), b)
    lo, hi = noisy["ci95"]
    assert lo < noisy["diff"] < hi and 0.0 < lo and hi - lo < 0.15
    with pytest.raises(ValueError, match="same instances"):
        paired_difference(b, b[:10])


class _Objective:
    """x_t = x0 + noise; t drawn from the generator like a real objective's."""

    def sample_timesteps(self, n, gen):
        return torch.randint(0, 1000, (n,), generator=gen)

    def add_noise(self, x0, noise, t):
        return x0 + noise


def test_teacher_forced_mse_shares_noise_across_variants_and_captions():
    from types import SimpleNamespace

    latents = torch.randn(3, 2, 1, 4, 4)
    batch = SimpleNamespace(latents=latents, text_embeds=torch.zeros(3, 5, 8), text_mask=torch.ones(3, 5))

    def model(x_t, t, text, text_mask=None, shift=None):
        assert x_t.shape[0] == text.shape[0] == text_mask.shape[0] == t.shape[0] == 12  # 3 clips x 4 draws
        out = 0.5 * x_t + text.mean()  # depends on the noise, so redrawn noise would show
        return out if shift is None else out + shift.reshape(-1, 1, 1, 1, 1)

    captions = {"": (batch.text_embeds, batch.text_mask), "null/": (torch.ones(3, 5, 8), torch.ones(3, 5))}
    variants = {"a": (model, {}), "b": (model, {}), "shifted": (model, {"shift": torch.ones(3)})}
    out = teacher_forced_mse(_Objective(), batch, variants, draws=4, captions=captions)
    assert set(out) == {"a", "b", "shifted", "null/a", "null/b", "null/shifted"}
    assert out["a"] == out["b"] and out["null/a"] == out["null/b"]  # the same (noise, t), bit for bit
    noise = torch.randn(12, 2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    x0 = latents.repeat(4, 1, 1, 1, 1)
    err = 0.5 * (x0 + noise) - noise
    assert out["a"] == pytest.approx(float((err**2).mean()))
    assert out["shifted"] == pytest.approx(float(((err + 1) ** 2).mean()))  # kwargs repeated per draw
    assert out["null/a"] == pytest.approx(float(((err + 1) ** 2).mean()))  # the caption adds 1
