"""Check a pretrained-weights folder against the backbone before anything is loaded.

Reads only `config.json`: a folder of another model (e.g. a pipeline's `vae/` given as
`backbone.weights`) or weights of another size than `backbone.size` are refused with the fix,
instead of instantiating the wrong model (a VAE config given to a transformer class builds the
class's default, full-size model) or failing at step 1 with a size mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vidgen.errors import ConfigError

SHOWN = 4  # differing keys named in the message
# Not a size: methods change them on the same backbone (JDM inflates the latent channels, Sec. 3.2).
METHOD_KEYS = ("in_channels", "out_channels")


def _structural(value: Any) -> bool:
    """Ints and int lists: the dimensions that decide parameter shapes and the data vidgen feeds."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )


def size_mismatch(
    spec: Any, config: dict[str, Any], size: str, tiny_config: dict[str, Any] | None = None
) -> list[str]:
    """`key: weights value != size's registry value` for every differing structural key
    (``tiny_config`` merged over the tiny config: weights trained with `backbone.tiny_config`)."""
    want = {**spec.config_for(size), **(tiny_config or {})} if size == "tiny" else spec.config_for(size)
    return [
        f"{k}={config[k]} (backbone.size={size}: {want[k]})"
        for k in sorted(set(config) & set(want) - set(METHOD_KEYS))
        if _structural(config[k]) and config[k] != (list(want[k]) if isinstance(want[k], tuple) else want[k])
    ]


def check_weights_config(
    spec: Any, folder: Path, weights: str, size: str, tiny_config: dict[str, Any] | None = None
) -> None:
    """Refuse `folder/config.json` when it is not this backbone's model class or not `size` (at
    size tiny: the tiny config with ``tiny_config`` merged over it)."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise ConfigError(
            f"backbone.weights={weights!r}: {path} is unreadable ({e}); restore the weights folder"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"backbone.weights={weights!r}: {path} is not a model config (a JSON object)")
    want_cls = spec.model_cls.__name__
    got_cls = config.get("_class_name")
    if got_cls is not None and got_cls != want_cls:
        raise ConfigError(
            f"backbone.weights={weights!r} holds a {got_cls} ({path}), not the {want_cls} of backbone "
            f"{spec.name}. Fix: point backbone.weights at the diffusers pipeline folder or its "
            f"{spec.weights_subfolder}/ subfolder."
        )
    diff = size_mismatch(spec, config, size, tiny_config)
    if diff:
        other = [s for s in ("tiny", "real") if s != size and not size_mismatch(spec, config, s)]
        fix = (
            f"set backbone.size={other[0]} (the size these weights have)"
            if other
            else f"use weights of {spec.name} at backbone.size={size}"
            + (" (with the +backbone.tiny_config they were trained with)" if size == "tiny" else "")
        )
        shown = ", ".join(diff[:SHOWN]) + (f" and {len(diff) - SHOWN} more" if len(diff) > SHOWN else "")
        raise ConfigError(
            f"backbone.weights={weights!r} ({path}) is not {spec.name} at backbone.size={size}: {shown}. Fix: {fix}."
        )
