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
    if not folder.is_dir():
        return []
    # nested options (variant/stiv/table2_01_qk_norm.yaml) are chosen as "stiv/table2_01_qk_norm"
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def _check_group_choices(overrides: list[str]) -> None:
    """Name a bad group choice and list the valid ones (before Hydra's own, terser error)."""
    for item in overrides:
        key, sep, value = item.lstrip("+~").partition("=")
        if sep and key in GROUPS and value not in ("", "null"):
            options = group_options(key)
            if value not in options:
                raise ConfigError(f"{key}={value}: no such {key}. Valid values: {', '.join(options)}")


def _run_name(overrides: list[str], kind: str = "") -> str:
    """A deterministic run name: the same command line lands in the same folder (and resumes).

    Under SLURM the job (array: job_task) id names the run, so a requeued job finds its folder.
    `hydra.*` overrides (Hydra's own settings) never name a run. `kind` names runs that are not
    trainings (`profile`: JDM Table 6 rows), so they never share a training's folder. Under a W&B
    sweep agent (WANDB_SWEEP_ID and WANDB_RUN_ID set) the agent's run id ends the name: each run
    the agent starts has its own folder, which a rerun of that run (same id) finds again.
    """
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"slurm-{array_job}_{task}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}"
    ignored = ("exp", "run.", "sample.", "hydra.")
    kept = sorted(o for o in overrides if not o.split("=")[0].lstrip("+~").startswith(ignored))
    name = "default"
    if kept:
        slug = re.sub(r"[^A-Za-z0-9.=_-]+", "_", ",".join(kept))[:60]
        name = f"{slug}-{hashlib.sha1(chr(0).join(kept).encode()).hexdigest()[:6]}"
    if kind:
        name = kind if name == "default" else f"{kind}.{name}"
    if os.environ.get("WANDB_SWEEP_ID") and os.environ.get("WANDB_RUN_ID"):
        name = f"{name}.wandb-{os.environ['WANDB_RUN_ID']}"
    return name


def load_config(overrides: list[str] | None = None, run_kind: str = "") -> DictConfig:
    """Compose `train.yaml` with Hydra overrides; resolve exp_name and the run folder; check the
    result against the typed schema (`vidgen.schema`): a bad or unknown key is a ConfigError.
    `run_kind` prefixes a derived run name (see `_run_name`)."""
    overrides = list(overrides or [])
    _check_group_choices(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
    except MissingConfigException as err:
        raise ConfigError(f"config error: {err}") from None
    except HydraException as err:
        from vidgen.schema import override_error

        raise ConfigError(override_error(str(err)) or f"bad override in {' '.join(overrides)!r}: {err}") from None
    exp = next((o.split("=", 1)[1] for o in overrides if o.startswith("exp=")), None)
    OmegaConf.set_struct(cfg, False)
    if exp:
        cfg.exp_name = exp
    if not cfg.run.name:
        cfg.run.name = _run_name(overrides, run_kind)
    if not cfg.run.dir:
        cfg.run.dir = str(Path(cfg.run.root) / cfg.exp_name / cfg.run.name)
    OmegaConf.set_struct(cfg, True)
    from vidgen.schema import validate_config

    validate_config(cfg)  # types, ranges and unknown keys, before any command writes a file
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
