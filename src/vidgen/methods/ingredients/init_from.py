"""``method.init.from=RUN_DIR``: stage 2 starts from stage 1's weights (Sec. 3.3).

The run folder's ``checkpoints/last.ckpt`` is found and read (``weights_only=True``) as STIV's
progressive initialisation does (vidgen.methods.stiv.progressive.checkpoint_path); every weight of
the Ingredients denoiser must be there with the same shape (both stages build the same model).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vidgen.errors import ConfigError
from vidgen.methods.stiv.progressive import checkpoint_path

PREFIX = "model."  # DiffusionModule.model


def load_stage(model: nn.Module, run: str | Path) -> None:
    ckpt = checkpoint_path(run)
    try:
        raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle with code, a truncated file, not a checkpoint
        raise ConfigError(
            f"method.init.from: {ckpt} is not a vidgen checkpoint, not loaded ({err})"
        ) from None
    state = raw.get("state_dict") if isinstance(raw, dict) else None
    source = {k[len(PREFIX) :]: v for k, v in (state or {}).items() if k.startswith(PREFIX)}
    target = model.state_dict()
    missing = sorted(set(target) - set(source))
    if missing:
        raise ConfigError(
            f"method.init.from: {ckpt} lacks {len(missing)} Ingredients weights (e.g. {missing[0]!r}); "
            "pass a run of method=ingredients with the same backbone and method sizes"
        )
    bad = [k for k in target if source[k].shape != target[k].shape]
    if bad:
        raise ConfigError(
            f"method.init.from: weight {bad[0]!r} has shape {tuple(source[bad[0]].shape)} in {ckpt} but "
            f"{tuple(target[bad[0]].shape)} here; the runs differ in backbone or method sizes"
        )
    model.load_state_dict({k: source[k] for k in target})
