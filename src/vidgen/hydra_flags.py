"""Hydra's own command-line flags for `vidgen train`, on the compose API (docs/architecture.md).

    --cfg job|hydra|all [--resolve] [--package P]   print the composed config and exit
    --info [all|config|defaults|defaults-tree|plugins|searchpath]
    -m / --multirun   comma lists (`exp=a,b seed=0,1`) -> one run per combination, one after another
    -sc install=bash | uninstall=bash | query=bash   shell completion (`eval "$(vidgen -sc install=bash)"`)

The flags are parsed by Hydra's own parser (`hydra._internal.utils.get_args_parser`), the
combinations are expanded by Hydra's basic sweeper, and --info / --cfg hydra / completion are
Hydra's own printers, run on the Hydra instance that `initialize_config_dir` creates.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from vidgen.config import CONF_DIR
from vidgen.errors import ConfigError

OVERRIDES_FILE = "overrides.yaml"
CONFIG_NAME = "train"
HYDRA_COMMANDS = ("train", "sample", "profile")  # the commands that take Hydra overrides


def parse(argv: list[str]) -> argparse.Namespace:
    """Hydra's flags and the overrides (`.overrides`), as `@hydra.main` would parse them."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.exit_on_error = False
    try:
        args, unknown = parser.parse_known_intermixed_args(argv)  # flags anywhere among overrides
    except (argparse.ArgumentError, SystemExit) as err:
        if isinstance(err, SystemExit) and err.code == 0:  # --version printed Hydra's version
            raise
        raise ConfigError(f"bad Hydra flag in {' '.join(argv)!r}: {err}") from None
    if unknown:
        raise ConfigError(f"unknown flag(s) {' '.join(unknown)}; Hydra's are --cfg, --info, -m, -sc")
    unsupported = {"--config-path": args.config_path, "--config-name": args.config_name,
                   "--config-dir": args.config_dir, "--experimental-rerun": args.experimental_rerun,
                   "--hydra-help": args.hydra_help}
    if given := [flag for flag, value in unsupported.items() if value]:
        raise ConfigError(f"{', '.join(given)}: not supported by vidgen (one config root, src/vidgen/conf; "
                          "choose configs with exp=NAME and group=option overrides)")
    return args


def wants_flag(args: argparse.Namespace) -> bool:
    return bool(args.cfg or args.info or args.shell_completion)


@contextmanager
def _hydra() -> Iterator:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield GlobalHydra.instance().hydra


def run_flag(args: argparse.Namespace) -> int:
    """--cfg / --info / -sc: print, and exit 0."""
    if args.shell_completion:
        return shell_completion(args.overrides)
    if args.info:
        import logging

        root = logging.getLogger()
        saved = root.handlers[:], root.level
        try:  # Hydra prints the info through a root stdout handler: take it away again after
            with _hydra() as hydra:
                hydra.show_info(args.info, config_name=CONFIG_NAME, overrides=args.overrides)
        finally:
            root.handlers[:], root.level = saved[0], saved[1]
        return 0
    if args.cfg == "job":  # the run's config as `vidgen train` sees it: derived run.name / run.dir included
        from omegaconf import OmegaConf

        from vidgen.config import load_config

        cfg = load_config(args.overrides)
        selected = OmegaConf.select(cfg, args.package) if args.package not in (None, "_global_") else cfg
        if selected is None:
            raise ConfigError(f"--package {args.package}: no such key in the composed config")
        print(OmegaConf.to_yaml(selected, resolve=args.resolve) if OmegaConf.is_config(selected) else selected)
        return 0
    with _hydra() as hydra:
        hydra.show_cfg(CONFIG_NAME, args.overrides, args.cfg, args.package, args.resolve)
    return 0


def shell_completion(spec: list[str]) -> int:
    """Hydra's bash completion for `vidgen <command> [overrides]`.

    Hydra's script asks `vidgen -sc query=bash` with the whole line in COMP_LINE; its parser would
    read the command name as an override, so the command word is taken out first. At the command
    word itself the commands are offered.
    """
    if spec and spec[0].startswith("query="):
        words = os.environ.get("COMP_LINE", "").split()
        trailing = os.environ.get("COMP_LINE", "").endswith(" ")
        if len(words) <= 1 or (len(words) == 2 and not trailing):
            from vidgen.cli import COMMANDS

            prefix = words[1] if len(words) == 2 else ""
            print(" ".join(sorted(c for c in [*COMMANDS, "backbones"] if c.startswith(prefix))))
            return 0
        if words[1] not in HYDRA_COMMANDS:
            return 0
        os.environ["COMP_LINE"] = " ".join([words[0], *words[2:]]) + (" " if trailing else "")
    with _hydra() as hydra:
        try:
            hydra.shell_completion(config_name=CONFIG_NAME, overrides=spec)
        except ValueError as err:
            raise ConfigError(f"-sc {' '.join(spec)}: {err}") from None
    return 0


def expand_multirun(overrides: list[str]) -> list[list[str]]:
    """Every combination of the comma lists, in Hydra's basic-sweeper order (the last key varies
    fastest); `exp=a,b seed=0,1` -> 4 override lists."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides=overrides)
        (jobs,) = BasicSweeper.split_arguments(parsed, None)
    except HydraException as err:
        raise ConfigError(f"-m {' '.join(overrides)}: {err}") from None
    return jobs


def write_overrides(run_dir: Path, overrides: list[str]) -> None:
    """`<run.dir>/overrides.yaml`: this (re)start's command-line overrides, as Hydra's
    `.hydra/overrides.yaml` (a YAML list), written atomically."""
    from vidgen.runs import _atomic_write_text

    _atomic_write_text(Path(run_dir) / OVERRIDES_FILE, yaml.safe_dump(list(overrides), default_flow_style=False))
