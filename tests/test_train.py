"""Training runs end to end on the CPU: run folder contents, exact resume, failures recorded."""

from __future__ import annotations

import json
import re

import pytest
import torch

from vidgen.config import load_config
from vidgen.errors import ConfigError
from vidgen.methods.base import DiffusionModule
from vidgen.runs import read_metrics, read_summary
from vidgen.train import build_trainer, train


def _losses(run_dir):
    return [(int(r["step"]), r["train/loss"]) for r in read_metrics(run_dir)]


def test_smoke_run_writes_the_run_folder(smoke, tmp_path):
    run_dir = train(load_config(smoke("logger=none")))
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert {p.name for p in (run_dir / "checkpoints").glob("step=*.ckpt")} == {"step=4.ckpt", "step=8.ckpt"}
    assert not list(run_dir.rglob("*.tmp"))  # atomic checkpoint writes leave nothing behind
    rows = read_metrics(run_dir)
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    assert all(torch.isfinite(torch.tensor(r["train/loss"])) for r in rows)
    summary = read_summary(run_dir)
    assert summary["exp"] == "ft_cogvideox"
    assert summary["status"] == "completed"
    assert summary["global_step"] == 8
    assert summary["world_size"] == 1
    assert summary["restarts"] == 0
    assert summary["train/loss"] == rows[-1]["train/loss"]


def test_resume_is_bit_identical(smoke, tmp_path):
    straight = train(load_config(smoke("logger=none", run_dir=tmp_path / "straight")))
    split = tmp_path / "split"
    train(load_config(smoke("logger=none", "train.max_steps=4", run_dir=split)))
    assert read_summary(split)["global_step"] == 4
    train(load_config(smoke("logger=none", run_dir=split)))  # same folder: resumes at step 4
    assert _losses(split) == _losses(straight)  # exact float equality, steps 1..8 once each
    # the epoch column counts passes over the data, the same after a resume, written as integers
    epochs = [r["epoch"] for r in read_metrics(split)]
    assert epochs == [r["epoch"] for r in read_metrics(straight)] and epochs[0] == 0 and epochs == sorted(epochs)
    assert all(line.rsplit(",", 1)[1].isdigit() for line in (split / "metrics.csv").read_text().splitlines()[1:])
    assert read_summary(split)["restarts"] == 1
    assert read_summary(split)["status"] == "completed"


def test_wandb_run_id_is_stable_across_resume(smoke, tmp_path, monkeypatch):
    """One W&B run per folder: same id and name after a resume, and every record logged at
    W&B step == trainer/global_step == metrics.csv step, so the resumed segment's _step continues."""
    import wandb.sdk.wandb_run

    logged = []
    original = wandb.sdk.wandb_run.Run.log

    def spy(self, data, step=None, commit=None):
        logged.append((self.id, self.name, step, data.get("trainer/global_step")))
        return original(self, data, step=step, commit=commit)

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log", spy)
    run = tmp_path / "wb"
    train(load_config(smoke("train.max_steps=2", run_dir=run)))
    first = (run / "wandb_id").read_text()
    train(load_config(smoke("train.max_steps=4", run_dir=run)))
    assert (run / "wandb_id").read_text() == first
    offline_runs = list((run / "wandb").glob("offline-run-*"))
    # wandb appends "-1" to a folder name when both segments start within the same second
    assert offline_runs and all(re.fullmatch(rf"offline-run-\d{{8}}_\d{{6}}-{first}(-\d+)?", p.name) for p in offline_runs)
    assert {(i, n) for i, n, _, _ in logged} == {(first, "ft_cogvideox/wb")}  # name unchanged on resume
    steps = [s for _, _, s, _ in logged]
    assert steps == [g for _, _, _, g in logged] == [int(r["step"]) for r in read_metrics(run)] == [1, 2, 3, 4]
    from vidgen.report.wandb_offline import read_run

    segments = [read_run(p) for p in sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))]
    assert [[h["_step"] for h in seg.history] for seg in segments] == [[1, 2], [3, 4]]  # _step continues
    assert {seg.name for seg in segments} == {"ft_cogvideox/wb"}
    # resumed from the checkpoint of the max_steps stop, which starts Lightning's epoch 1: the epoch
    # column counts passes over the 16 clips (2 a step) instead, so it stays 0
    assert [r["epoch"] for r in read_metrics(run)] == [0, 0, 0, 0]


def test_failure_is_recorded_and_leaves_last_good_checkpoint(smoke, tmp_path, monkeypatch):
    run = tmp_path / "fail"
    original = DiffusionModule.compute_loss

    def explode(self, batch, gen):
        if self.global_step >= 5:
            raise RuntimeError("boom")
        return original(self, batch, gen)

    monkeypatch.setattr(DiffusionModule, "compute_loss", explode)
    with pytest.raises(RuntimeError, match="boom"):
        train(load_config(smoke("logger=none", run_dir=run)))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "boom" in summary["error"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4


def test_gradient_accumulation_derived_from_global_batch(smoke, tmp_path):
    cfg = load_config(smoke("logger=none", "train.global_batch_size=8", "train.micro_batch_size=2"))
    trainer = build_trainer(cfg, tmp_path, "x")
    assert trainer.accumulate_grad_batches == 4
    cfg = load_config(smoke("logger=none", "train.global_batch_size=6", "train.micro_batch_size=4"))
    with pytest.raises(Exception, match="global_batch_size"):
        build_trainer(cfg, tmp_path, "x")


def test_caption_dropout_uses_the_empty_prompt(smoke):
    cfg = load_config(smoke("train.cfg_dropout=1.0"))
    module = DiffusionModule(cfg)
    null = torch.randn_like(module.null_text_embeds)
    module.set_null_text(null, torch.zeros_like(module.null_text_mask))
    embeds = torch.randn(3, *null.shape)
    mask = torch.ones(3, null.shape[0], dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    out, out_mask = module.drop_text(embeds, mask, gen)
    assert torch.equal(out, null.expand_as(embeds)) and not out_mask.any()
    module.cfg.train.cfg_dropout = 0.0
    out, out_mask = module.drop_text(embeds, mask, gen)
    assert torch.equal(out, embeds) and out_mask.all()


def test_ema_weights_are_what_the_checkpoint_holds(smoke, tmp_path):
    run = tmp_path / "ema"
    train(load_config(smoke("logger=none", "train.ema.enabled=true", "train.ema.decay=0.5", run_dir=run)))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert "current_model_state" in ckpt  # Lightning's EMAWeightAveraging: state_dict holds the average
    key = next(k for k in ckpt["state_dict"] if k.startswith("model."))
    assert not torch.equal(ckpt["state_dict"][key], ckpt["current_model_state"][key])


def test_gradient_checkpointing_gives_the_same_gradients(smoke):
    torch.manual_seed(0)
    plain = DiffusionModule(load_config(smoke("backbone=wan2.1-1.3b")))
    ckpt = DiffusionModule(load_config(smoke("backbone=wan2.1-1.3b", "backbone.gradient_checkpointing=true")))
    ckpt.model.load_state_dict(plain.model.state_dict())
    assert ckpt.model.model.gradient_checkpointing and not plain.model.model.gradient_checkpointing
    inputs = DiffusionModule.example_inputs(plain.spec, "tiny", 9, 64, 64, model=plain.model, batch=2)
    grads = []
    for module in (plain, ckpt):
        module.model.zero_grad()
        module.model(**inputs).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in module.model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])


def test_resume_refuses_to_stretch_a_step_bound_schedule(smoke, tmp_path):
    run = tmp_path / "onecycle"
    train(load_config(smoke("logger=none", "schedule=onecycle", "train.max_steps=2", run_dir=run)))
    with pytest.raises(ConfigError, match="train.max_steps=2"):
        train(load_config(smoke("logger=none", "schedule=onecycle", "train.max_steps=4", run_dir=run)))
    assert read_summary(run)["status"] == "completed"  # the finished run's summary is kept


def test_evaluation_every_n_steps_lands_in_eval_csv_and_summary(smoke, tmp_path, monkeypatch):
    from vidgen.eval.callback import read_eval

    monkeypatch.setattr(DiffusionModule, "evaluate", lambda self, dm: {"score": float(self.global_step) / 10})
    run = tmp_path / "eval"
    train(load_config(smoke("logger=none", "train.eval_every=3", "train.max_steps=7", run_dir=run)))
    assert [(int(r["step"]), r["score"]) for r in read_eval(run)] == [(3, 0.3), (6, 0.6), (7, 0.7)]
    summary = read_summary(run)
    assert summary["eval/score"] == 0.7 and summary["eval/step"] == 7
    train(load_config(smoke("logger=none", "train.eval_every=3", "train.max_steps=7", run_dir=run)))
    assert len(read_eval(run)) == 3  # starting a finished run again evaluates nothing twice


def test_only_global_rank_zero_writes_the_run_folder_files(smoke, tmp_path, monkeypatch):
    """Two ranks starting one run must not race on config.yaml or mint two W&B ids."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from vidgen.runs import prepare_run_dir, wandb_run_id

    cfg = load_config(smoke(run_dir=tmp_path / "ranks"))
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    run = prepare_run_dir(cfg)
    assert (run / "checkpoints").is_dir() and not (run / "config.yaml").exists()
    assert wandb_run_id(run) is None and not (run / "wandb_id").exists()
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    prepare_run_dir(cfg)
    minted = wandb_run_id(run)
    assert (run / "config.yaml").is_file() and (run / "wandb_id").read_text() == minted
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert wandb_run_id(run) == minted  # other ranks read rank 0's id


def test_one_logger_record_per_optimizer_step_with_loss_lr_and_method_terms():
    """RunRecorder sends loss, lr and the method's train/* terms in one record (one W&B call a step),
    at the row's step: W&B step == trainer/global_step == metrics.csv step."""
    from types import SimpleNamespace

    import torch

    from vidgen.runs import RunRecorder

    calls = []
    logger = SimpleNamespace(log_metrics=lambda metrics, step: calls.append((metrics, step)))
    trainer = SimpleNamespace(
        loggers=[logger],
        global_step=3,
        callback_metrics={"train/loss": torch.tensor(0.25), "train/cmi_weight": torch.tensor(0.5)},
    )
    RunRecorder._log_step(trainer, {"step": 3, "train/loss": 0.25, "lr": 1e-4, "epoch": 0})
    assert calls == [({"train/loss": 0.25, "lr": 1e-4, "train/cmi_weight": 0.5}, 3)]
