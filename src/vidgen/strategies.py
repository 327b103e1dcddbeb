"""Lightning strategies from the `strategy` config group."""

from __future__ import annotations

from omegaconf import DictConfig

from vidgen.errors import ConfigError

STRATEGIES = ("ddp",)


def build_strategy(cfg: DictConfig, world_size: int):
    s = cfg.strategy
    if s.name == "ddp":
        if world_size == 1:
            return "auto"
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=bool(s.find_unused_parameters))
    raise ConfigError(f"strategy={s.name}: no such strategy. Valid values: {', '.join(STRATEGIES)}")


def cluster_plugins(cfg: DictConfig) -> list:
    """Cluster-environment plugins for the Trainer (none outside a cluster)."""
    return []
