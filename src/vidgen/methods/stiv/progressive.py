"""Progressive initialisation (STIV Sec. 2.4, E; Tables 4, 15-17): ``method.init.from=RUN_DIR``.

Weights are the source run's ``checkpoints/last.ckpt`` ``state_dict`` (the EMA weights when the
run used EMA, as Sec. E loads "the EMA weights from the T2I model"), read with
``weights_only=True``. Mapping rules, key by key into the new model:

- same shape: copied (spatial layers; low -> high resolution and 20 -> 40 frames need no change:
  RoPE has no weights, its interpolation is ``method.arch.rope_*_scale``);
- ``patch_embed.weight`` with temporal kernel 1 -> pt: the "cubify" inflation of Sec. E, each
  temporal slice ``W / pt`` (a clip of pt equal frames gives the T2I embedding);
- ``proj_out`` with 1 -> pt frames per token: the T2I projection repeated for each frame;
- keys the source lacks (temporal attention of a T2I source): kept as initialised (zero output
  projection, so the T2V model reproduces the T2I one on repeated frames);
- ``temporal_from``: a second run whose temporal-attention weights (``.attn_t.``) replace them
  (Table 4 "Both": spatial from T2I-512, temporal from T2V-256).
Any other shape mismatch is a ConfigError naming the key.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vidgen.errors import ConfigError

PREFIX = "model.model."  # DiffusionModule.model (Backbone) .model (STIVDiT)
TEMPORAL = ".attn_t."


def checkpoint_path(run: str | Path) -> Path:
    """``RUN_DIR/checkpoints/last.ckpt``, or the ``.ckpt`` file itself."""
    path = Path(run).expanduser()
    ckpt = path if path.is_file() else path / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise ConfigError(
            f"method.init.from={str(run)!r}: no checkpoint at {ckpt}; pass a finished run folder "
            "(with checkpoints/last.ckpt) or a .ckpt file"
        )
    return ckpt


def load_run_state(run: str | Path) -> dict[str, Tensor]:
    """The STIV DiT weights of a run (keys as in ``STIVDiT.state_dict()``)."""
    ckpt = checkpoint_path(run)
    try:
        raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle with code, a truncated file, not a checkpoint
        raise ConfigError(
            f"method.init.from: {ckpt} is not a vidgen checkpoint, not loaded ({err})"
        ) from None
    state = raw.get("state_dict") if isinstance(raw, dict) else None
    weights = {k[len(PREFIX) :]: v for k, v in (state or {}).items() if k.startswith(PREFIX)}
    if not weights:
        raise ConfigError(f"method.init.from: {ckpt} holds no STIV model weights (no {PREFIX}* keys)")
    return weights


def inflate(key: str, src: Tensor, shape: torch.Size) -> Tensor:
    """Map one source tensor onto ``shape`` by the rules above, or raise."""
    if src.shape == shape:
        return src
    if key == "patch_embed.weight" and src.ndim == 5 and src.shape[2] == 1 and src.shape[:2] == shape[:2]:
        pt = shape[2]
        return src.repeat(1, 1, pt, 1, 1) / pt  # Sec. E: inflate the cubify weights along time
    if key.startswith("proj_out.") and shape[0] % src.shape[0] == 0 and src.shape[1:] == shape[1:]:
        return src.repeat(shape[0] // src.shape[0], *([1] * (src.ndim - 1)))  # one copy per frame of a token
    raise ConfigError(
        f"method.init.from: weight {key!r} has shape {tuple(src.shape)} in the source run but "
        f"{tuple(shape)} in this model; the models differ in more than temporal layers / patch "
        "(check backbone.name, method.arch and method.task of both runs)"
    )


def load_into(
    model: nn.Module, source: dict[str, Tensor], only_temporal: bool = False
) -> dict[str, list[str]]:
    """Copy ``source`` into ``model`` by the mapping rules; returns the loaded / new / ignored keys."""
    target = model.state_dict()
    loaded, new = [], []
    with torch.no_grad():
        for key, value in target.items():
            if only_temporal and TEMPORAL not in key:
                continue
            if key not in source:
                new.append(key)
                continue
            value.copy_(inflate(key, source[key], value.shape).to(value.dtype))
            loaded.append(key)
    ignored = sorted(set(source) - set(target))
    if only_temporal and not loaded:
        raise ConfigError("method.init.temporal_from: the run has no temporal-attention weights (.attn_t.)")
    return {"loaded": loaded, "new": new, "ignored": ignored}


def initialize(model: nn.Module, init_from: str | None, temporal_from: str | None) -> dict[str, list[str]]:
    """Apply ``method.init`` to a freshly built STIV DiT."""
    report: dict[str, list[str]] = {"loaded": [], "new": [], "ignored": []}
    if init_from:
        report = load_into(model, load_run_state(init_from))
    if temporal_from:
        temporal = load_into(model, load_run_state(temporal_from), only_temporal=True)
        report["loaded"] += temporal["loaded"]
        report["new"] = [k for k in report["new"] if k not in set(temporal["loaded"])]
    return report
