"""A resumed run keeps its config: which keys may change on resume, and how an accepted change is recorded.

A resume trains on from the checkpoint; a key that changes what is trained (lr, seed, backbone,
method, data, batch, ...) would silently mix two experiments in one run folder (a new `optim.lr`
is even ignored: the optimizer state restored from the checkpoint keeps the old one). Such a
resume is refused with the differing keys, unless `run.accept_config_changes=true`; then the new
config is recorded as `config.resume-N.yaml` (N = 1, 2, ...) with the changed keys in its header,
and `config.yaml` becomes the new config.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vidgen.errors import ConfigError

CONFIG_FILE = "config.yaml"

# Keys a resume may change freely: they set how long, how often and where to log, not what is trained.
RESUMABLE_KEYS = (
    "train.max_steps",  # schedules bound to it (onecycle, cosine_with_restarts) are still refused by the module
    "train.log_every",
    "train.checkpoint_every",
    "train.eval_every",
    "train.eval_at_end",
    "data.num_workers",
    "data.text_encoder",  # used by `vidgen sample` only
    "data.vae",
    "logger.wandb.online",
    "logger.wandb.tags",
    "run.*",  # run.name / run.root / run.dir name the same folder; run.accept_config_changes is this flag
    "sample.*",
)
# Restored from the checkpoint whatever the config says: an accepted change here does not take effect.
RESTORED_FROM_CHECKPOINT = ("optim.", "schedule.")


def _resumable(key: str) -> bool:
    return any(key == k or (k.endswith(".*") and key.startswith(k[:-1])) for k in RESUMABLE_KEYS)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: tree}


def config_changes(saved: DictConfig, new: DictConfig) -> dict[str, tuple[Any, Any]]:
    """{key: (saved value, new value)} for every non-resumable leaf that differs (missing = '<absent>')."""
    old = flatten(OmegaConf.to_container(saved, resolve=True))
    now = flatten(OmegaConf.to_container(new, resolve=True))
    absent = "<absent>"
    return {
        k: (old.get(k, absent), now.get(k, absent))
        for k in sorted(set(old) | set(now))
        if not _resumable(k) and old.get(k, absent) != now.get(k, absent)
    }


def check_resume_config(run_dir: Path, cfg: DictConfig) -> dict[str, tuple[Any, Any]]:
    """Refuse a resume whose config differs from the run's in a non-resumable key (unless accepted).

    Returns the accepted changes ({} when none); writes nothing.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        saved = OmegaConf.load(path)
    except Exception as err:  # a damaged config.yaml: say so, do not overwrite it
        raise ConfigError(
            f"{path} cannot be read ({err}); restore it, or start a new run (run.dir=...)"
        ) from None
    changes = config_changes(saved, cfg)
    if not changes:
        return {}
    listing = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in changes.items()))
    if not cfg.run.get("accept_config_changes", False):
        raise ConfigError(
            f"{run_dir} holds a run trained with another config; resuming it would mix two experiments. "
            f"Differing keys: {listing}. Resume with the run's own values (see {path}), start a new run "
            f"(run.dir=...), or accept the change with run.accept_config_changes=true "
            f"(keys that may change on resume: {', '.join(RESUMABLE_KEYS)})"
        )
    restored = [k for k in changes if k.startswith(RESTORED_FROM_CHECKPOINT)]
    if restored:
        print(
            f"warning: {', '.join(restored)} changed, but the optimizer and LR-schedule state restored from "
            "the checkpoint keep the run's old values",
            file=sys.stderr,
        )
    return changes


def write_config(run_dir: Path, cfg: DictConfig, accepted: dict[str, tuple[Any, Any]], write) -> None:
    """config.yaml := cfg; with accepted changes also config.resume-N.yaml (header: what changed)."""
    text = OmegaConf.to_yaml(cfg, resolve=True)
    if accepted:
        n = 1 + len(list(Path(run_dir).glob("config.resume-*.yaml")))
        header = "".join(f"#   {k}: {a!r} -> {b!r}\n" for k, (a, b) in accepted.items())
        write(
            Path(run_dir) / f"config.resume-{n}.yaml",
            f"# resume {n} accepted config changes:\n{header}{text}",
        )
    write(Path(run_dir) / CONFIG_FILE, text)
