"""Compose the Hydra config for a command line, with errors a researcher can act on."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf

from vidgen.errors import ConfigError

CONF_DIR = Path(__file__).parent / "conf"
GROUPS = ("backbone", "method", "data", "optim", "schedule", "trainer", "strategy", "logger", "exp", "variant", "preset")


def group_options(group: str) -> list[str]:
    folder = CONF_DIR / group
    # nested options too: conf/variant/<method>/<row>.yaml is `variant=<method>/<row>`
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml")) if folder.is_dir() else []


def _check_group_choices(overrides: list[str]) -> None:
    """Name a bad group choice and list the valid ones (before Hydra's own, terser error)."""
    for item in overrides:
        key, sep, value = item.lstrip("+~").partition("=")
        if sep and key in GROUPS and value not in ("", "null"):
            options = group_options(key)
            if value not in options:
                raise ConfigError(f"{key}={value}: no such {key}. Valid values: {', '.join(options)}")


def _run_name(overrides: list[str]) -> str:
    """A deterministic run name: the same command line lands in the same folder (and resumes).

    Under SLURM the job (array: job_task) id names the run, so a requeued job finds its folder.
    """
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"slurm-{array_job}_{task}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}"
    kept = sorted(o for o in overrides if not o.split("=")[0].lstrip("+~").startswith(("exp", "run.", "sample.")))
    if not kept:
        return "default"
    slug = re.sub(r"[^A-Za-z0-9.=_-]+", "_", ",".join(kept))[:60]
    digest = hashlib.sha1("\0".join(kept).encode()).hexdigest()[:6]
    return f"{slug}-{digest}"


def load_config(overrides: list[str] | None = None) -> DictConfig:
    """Compose `train.yaml` with Hydra overrides; resolve exp_name and the run folder."""
    overrides = list(overrides or [])
    _check_group_choices(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
    except MissingConfigException as err:
        raise ConfigError(f"config error: {err}") from None
    except HydraException as err:
        raise ConfigError(f"bad override in {' '.join(overrides)!r}: {err}") from None
    exp = next((o.split("=", 1)[1] for o in overrides if o.startswith("exp=")), None)
    OmegaConf.set_struct(cfg, False)
    if exp:
        cfg.exp_name = exp
    if not cfg.run.name:
        cfg.run.name = _run_name(overrides)
    if not cfg.run.dir:
        cfg.run.dir = str(Path(cfg.run.root) / cfg.exp_name / cfg.run.name)
    OmegaConf.set_struct(cfg, True)
    return cfg


def overrides_help(command: str, synopsis: str) -> str:
    """`vidgen <command> --help`: the synopsis, then every config group and its choices."""
    lines = [f"usage: vidgen {command} {synopsis}", "", "Hydra overrides; config groups (group=choice):"]
    for group in GROUPS:
        options = group_options(group)
        if options:
            lines.append(f"  {group:<9} {', '.join(options)}")
    lines += [
        "",
        "and any key, e.g. optim.lr=1e-4 train.max_steps=100 backbone.size=tiny run.dir=PATH",
        "(the composed config of a run is written to <run.dir>/config.yaml)",
    ]
    return "\n".join(lines)


def wants_help(argv: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)
