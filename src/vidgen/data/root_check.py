"""The start-up check of `data=shards`: a real-size experiment needs its precomputed data."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from vidgen.errors import ConfigError


def require_data_root(data: DictConfig) -> str:
    """``data.root`` of a shard dataset, or a ConfigError naming the field and how to make the data."""
    root = None if OmegaConf.is_missing(data, "root") else data.get("root")
    if not root:
        raise ConfigError(
            "data.root is not set: this experiment trains on precomputed shards (data=shards). Fix: run "
            "`vidgen precompute --vae PATH --text-encoder PATH --videos DIR --annotations FILE --out ROOT` and pass data.root=ROOT "
            "(see docs/data.md), or add preset=smoke to run on the synthetic shapes world."
        )
    return str(root)
