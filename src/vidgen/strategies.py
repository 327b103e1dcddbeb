"""Lightning strategies from the `strategy` config group, and the SLURM cluster plugin.

    strategy=ddp                       CPU and GPUs (the default; what the CPU tests run)
    strategy=deepspeed_zero2           ZeRO stage 2 on CUDA GPUs: bf16, overlap_comm, contiguous
                                       gradients, bucket sizes from the config
    strategy=deepspeed_zero2_offload   the same with the optimizer state and step on the CPU
                                       (as the JDM paper did for ModelScope)

The DeepSpeed JSON config is built here (`deepspeed_config`) from the strategy group and the
train settings. One key is left to Lightning on purpose: `gradient_accumulation_steps` (Lightning
refuses it in the config and sets it from `Trainer(accumulate_grad_batches=...)`, i.e. from
`train.global_batch_size`). Gradient clipping is set explicitly from `train.grad_clip` (DeepSpeed
clips inside its step; Lightning's own clipping is bypassed under DeepSpeed).

Lightning's DeepSpeedStrategy runs on CUDA only: asking for it on a CPU run is a ConfigError
that names the fix, not a traceback from inside Lightning.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from omegaconf import DictConfig

from vidgen.errors import ConfigError

STRATEGIES = ("ddp", "deepspeed_zero2", "deepspeed_zero2_offload")
BF16 = ("bf16-mixed", "bf16-true")


def _on_cpu(cfg: DictConfig) -> bool:
    accelerator = cfg.trainer.accelerator
    if accelerator == "cpu":
        return True
    if accelerator == "auto":
        import torch

        return not torch.cuda.is_available()
    return False


def resolve_precision(cfg: DictConfig, on_cpu: bool) -> str:
    """The Trainer precision as vidgen.train resolves it (auto: bf16-mixed on GPU, 32-true on CPU)."""
    precision = str(cfg.trainer.precision)
    if precision == "auto":
        return "32-true" if on_cpu else "bf16-mixed"
    return precision


def deepspeed_config(cfg: DictConfig, precision: str | None = None) -> dict[str, Any]:
    """The DeepSpeed config dict for `strategy=deepspeed_*` (the parts vidgen sets).

    `gradient_accumulation_steps` is absent on purpose: Lightning fills it in from the Trainer.
    """
    s = cfg.strategy
    if not str(s.name).startswith("deepspeed"):
        raise ConfigError(f"strategy={s.name} is not a DeepSpeed strategy")
    precision = precision or resolve_precision(cfg, on_cpu=False)
    bf16 = precision in BF16  # one precision knob: trainer.precision (fp16's section comes from Lightning)
    zero: dict[str, Any] = {
        "stage": int(s.stage),
        "overlap_comm": bool(s.overlap_comm),
        "contiguous_gradients": bool(s.contiguous_gradients),
        "reduce_scatter": bool(s.reduce_scatter),
        "reduce_bucket_size": int(s.reduce_bucket_size),
        "allgather_partitions": bool(s.allgather_partitions),
        "allgather_bucket_size": int(s.allgather_bucket_size),
    }
    offload = s.get("offload_optimizer")
    if offload and offload.get("device", "none") != "none":
        zero["offload_optimizer"] = {"device": str(offload.device), "pin_memory": bool(offload.pin_memory)}
    forced = {}
    if "offload_optimizer" in zero:
        # vidgen.optim builds torch optimizers; DeepSpeed refuses them under offload unless told to
        # (its DeepSpeedCPUAdam is faster but needs compiled ops, which `make install` skips).
        forced["zero_force_ds_cpu_optimizer"] = False
    config: dict[str, Any] = {
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,  # vidgen's AdamW / Adafactor from vidgen.optim
        "bf16": {"enabled": bf16},
        "gradient_clipping": float(cfg.train.grad_clip),
        "train_micro_batch_size_per_gpu": int(cfg.train.micro_batch_size),
        "steps_per_print": int(s.get("steps_per_print", 2**31 - 1)),
        "wall_clock_breakdown": False,
        **forced,
    }
    return config


def _deepspeed_strategy(cfg: DictConfig, world_size: int):
    on_cpu = _on_cpu(cfg)
    if on_cpu:
        raise ConfigError(
            f"strategy={cfg.strategy.name} needs CUDA GPUs (Lightning's DeepSpeedStrategy) but this run is on "
            f"the CPU (trainer.accelerator={cfg.trainer.accelerator}); use strategy=ddp on the CPU"
        )
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"strategy={cfg.strategy.name} needs the deepspeed package: pip install 'deepspeed>=0.16' "
            "(or `make install`), or use strategy=ddp"
        ) from None
    from lightning.pytorch.strategies import DeepSpeedStrategy

    config = deepspeed_config(cfg, resolve_precision(cfg, on_cpu))
    return DeepSpeedStrategy(config=config, process_group_backend=cfg.strategy.get("process_group_backend"))


def build_strategy(cfg: DictConfig, world_size: int):
    s = cfg.strategy
    if s.name == "ddp":
        if world_size == 1:
            return "auto"
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=bool(s.find_unused_parameters))
    if s.name in ("deepspeed_zero2", "deepspeed_zero2_offload"):
        return _deepspeed_strategy(cfg, world_size)
    raise ConfigError(f"strategy={s.name}: no such strategy. Valid values: {', '.join(STRATEGIES)}")


def in_slurm_job() -> bool:
    """True inside an srun-launched SLURM task (not an interactive `srun --job-name=bash` shell)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return "SLURM_JOB_ID" in os.environ and SLURMEnvironment.detect()


def _requeue_enabled(cfg: DictConfig) -> bool:
    return bool(cfg.trainer.get("auto_requeue", True))


def cluster_plugins(cfg: DictConfig) -> list:
    """Cluster-environment plugins for the Trainer (none outside a cluster).

    Under SLURM: Lightning's SLURMEnvironment (ranks, nodes and the master address from SLURM). Its
    own auto-requeue is off: Lightning saves inside the SIGUSR1 handler, i.e. wherever each rank
    happens to be, and the save's barrier can pair with another rank's gradient all-reduce and hang
    (seen on the test cluster). `vidgen.slurm_requeue.StopOnSignal` (from `cluster_callbacks`) saves at
    a step boundary all ranks agree on.
    """
    if not in_slurm_job():
        return []
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False, requeue_signal=signal.SIGUSR1)]


def cluster_callbacks(cfg: DictConfig, run_dir) -> list:
    """StopOnSignal, everywhere (SIGTERM is sent by SLURM and Kubernetes alike); it requeues on
    SIGUSR1 under SLURM unless `+trainer.auto_requeue=false` (then it saves and stops)."""
    from vidgen.slurm_requeue import StopOnSignal

    return [StopOnSignal(run_dir, requeue=in_slurm_job() and _requeue_enabled(cfg))]
