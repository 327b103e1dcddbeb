"""Strategies: the DeepSpeed configs vidgen produces, clipping / accumulation passed through, CPU refusal."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from vidgen.config import load_config
from vidgen.errors import ConfigError
from vidgen.strategies import build_strategy, cluster_plugins, deepspeed_config
from vidgen.train import build_trainer

ZERO2 = {
    "stage": 2,
    "overlap_comm": True,
    "contiguous_gradients": True,
    "reduce_scatter": True,
    "reduce_bucket_size": 200_000_000,
    "allgather_partitions": True,
    "allgather_bucket_size": 200_000_000,
}


def _gpu_cfg(*overrides: str):
    return load_config(["exp=ft_cogvideox", "trainer.accelerator=gpu", *overrides])


def test_zero2_config():
    config = deepspeed_config(_gpu_cfg("strategy=deepspeed_zero2", "train.grad_clip=0.5", "train.micro_batch_size=2"))
    assert config["zero_optimization"] == ZERO2
    assert config["bf16"] == {"enabled": True}
    assert config["gradient_clipping"] == 0.5
    assert config["train_micro_batch_size_per_gpu"] == 2
    assert config["zero_allow_untested_optimizer"] is True
    assert "gradient_accumulation_steps" not in config  # Lightning sets it from the Trainer
    assert "zero_force_ds_cpu_optimizer" not in config


def test_zero2_offload_config():
    config = deepspeed_config(_gpu_cfg("strategy=deepspeed_zero2_offload"))
    assert config["zero_optimization"] == {**ZERO2, "offload_optimizer": {"device": "cpu", "pin_memory": True}}
    assert config["bf16"] == {"enabled": True}
    assert config["gradient_clipping"] == 1.0
    assert config["zero_force_ds_cpu_optimizer"] is False  # vidgen's torch optimizers under offload


def test_bucket_sizes_are_config():
    cfg = _gpu_cfg("strategy=deepspeed_zero2", "strategy.reduce_bucket_size=5e7", "strategy.overlap_comm=false")
    zero = deepspeed_config(cfg)["zero_optimization"]
    assert zero["reduce_bucket_size"] == 50_000_000 and zero["overlap_comm"] is False


@pytest.mark.parametrize("precision,bf16", [("bf16-mixed", True), ("auto", True), ("16-mixed", False), ("32-true", False)])
def test_deepspeed_bf16_follows_trainer_precision(precision, bf16):
    cfg = _gpu_cfg("strategy=deepspeed_zero2", f"trainer.precision={precision}")
    assert deepspeed_config(cfg)["bf16"] == {"enabled": bf16}


@pytest.mark.parametrize("strategy", ["deepspeed_zero2", "deepspeed_zero2_offload"])
def test_deepspeed_on_cpu_is_a_config_error(smoke, tmp_path, strategy):
    cfg = load_config(smoke(f"strategy={strategy}", "logger=none"))
    with pytest.raises(ConfigError, match=f"strategy={strategy} needs CUDA GPUs.*strategy=ddp"):
        build_trainer(cfg, tmp_path, "x")


def test_deepspeed_on_cpu_exits_cleanly_from_the_cli(smoke, capsys):
    from vidgen.train import main

    assert main(smoke("strategy=deepspeed_zero2", "logger=none")) == 2
    err = capsys.readouterr().err
    assert "needs CUDA GPUs" in err and "Traceback" not in err


@pytest.mark.parametrize("strategy", ["deepspeed_zero2", "deepspeed_zero2_offload"])
def test_lightning_passes_accumulation_and_clipping_through(monkeypatch, strategy):
    """Lightning's DeepSpeedStrategy fills gradient_accumulation_steps from the Trainer and keeps ours."""
    pytest.importorskip("deepspeed")
    from lightning.pytorch.strategies import DeepSpeedStrategy

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = load_config(
        ["exp=ft_cogvideox", f"strategy={strategy}", "train.global_batch_size=32", "train.grad_clip=0.25"]
    )
    strategy_obj = build_strategy(cfg, world_size=4)
    assert isinstance(strategy_obj, DeepSpeedStrategy)
    trainer = SimpleNamespace(accumulate_grad_batches=8, gradient_clip_val=0.25)
    monkeypatch.setattr(DeepSpeedStrategy, "lightning_module", property(lambda self: SimpleNamespace(trainer=trainer)))
    strategy_obj._format_batch_size_and_grad_accum_config()
    assert strategy_obj.config["gradient_accumulation_steps"] == 8
    assert strategy_obj.config["gradient_clipping"] == 0.25
    assert strategy_obj.config["train_micro_batch_size_per_gpu"] == 1
    assert strategy_obj.config["zero_optimization"]["stage"] == 2


def test_ddp_unchanged(smoke, tmp_path):
    cfg = load_config(smoke("logger=none"))
    assert build_strategy(cfg, 1) == "auto"
    from lightning.pytorch.strategies import DDPStrategy

    assert isinstance(build_strategy(cfg, 2), DDPStrategy)


def test_cluster_plugins(smoke, monkeypatch):
    from lightning.fabric.plugins.environments import SLURMEnvironment

    cfg = load_config(smoke())
    assert cluster_plugins(cfg) == []
    for key, value in {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_NAME": "vidgen"}.items():
        monkeypatch.setenv(key, value)
    (env,) = cluster_plugins(cfg)
    assert isinstance(env, SLURMEnvironment) and not env.auto_requeue  # vidgen.strategies.SlurmRequeue does it
    monkeypatch.setenv("SLURM_JOB_NAME", "bash")  # an interactive srun shell: no SLURM environment
    assert cluster_plugins(cfg) == []
