"""Metric weights from local files: one error naming the metric, the config key and the file to put there."""

from __future__ import annotations

from pathlib import Path

import torch

from vidgen.errors import ConfigError


def require_path(metric: str, key: str, path: str | Path | None, expect: str) -> Path:
    """``path`` if it exists, else a ConfigError saying which metric needs which file under which key."""
    if path in (None, "") or not Path(str(path)).exists():
        given = f"{key}={path!r} does not exist" if path not in (None, "") else f"{key} is not set"
        raise ConfigError(f"{metric} needs local weights: {given}; put {expect} there and pass {key}=PATH")
    return Path(str(path))


def load_torchscript(metric: str, key: str, path: str | Path | None, expect: str) -> torch.jit.ScriptModule:
    """A TorchScript feature network (code + weights in one archive; no Python pickle is executed)."""
    path = require_path(metric, key, path, expect)
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"{metric}: {key}={str(path)!r} is not a TorchScript archive ({exc}); put {expect} there"
        ) from None
