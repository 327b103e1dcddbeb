"""`vidgen sweep validate`: schema, the table link, every variant/experiment exists, every run composes,
no parameter sets the run folder; a command that does not train is a warning."""

from __future__ import annotations

import re

from vidgen.config import group_options, load_config
from vidgen.errors import VidgenError
from vidgen.reference import get_table
from vidgen.sweeps.schema import TRAIN_MODULES, Sweep, expand, schema_errors
from vidgen.sweeps.tables import TABLES

NAME = re.compile(r"^(?P<paper>[a-z0-9_]+)/(?P<table>(table|fig)[0-9]+[a-z]?)(_[A-Za-z0-9_]+)?$")
# Arguments a profile sweep passes to vidgen.sweeps.profile_run that are not Hydra overrides.
PROFILE_ARGS = ("profile.time=",)
# Keys that name a run's folder: every row of a sweep that set them would share one run (and resume it).
RUN_FOLDER_KEYS = ("run.dir", "run.root", "run.name")


def parameter_names(params: dict) -> list[str]:
    """Dotted names of every sweep parameter, nested `parameters:` dictionaries flattened."""
    names = []
    for name, spec in params.items():
        if isinstance(spec, dict) and isinstance(spec.get("parameters"), dict):
            names += [f"{name}.{sub}" for sub in parameter_names(spec["parameters"])]
        else:
            names.append(str(name))
    return names


def run_folder_errors(sweep: Sweep) -> list[str]:
    return [
        f"parameters.{name}: a sweep must not set {name.lstrip('+~')}: every row would write to and resume one "
        "run folder. Fix: remove it; rows get their own folders under <run.root>/<exp>/ (choose the root "
        "with `vidgen sweep run SWEEP --local -- run.root=DIR`)"
        for name in parameter_names(sweep.parameters)
        if name.lstrip("+~") in RUN_FOLDER_KEYS
    ]


def command_module(command: object) -> str | None:
    """The module a sweep command runs with `-m` (None when it runs none)."""
    if not isinstance(command, list) or "-m" not in command:
        return None
    i = command.index("-m")
    return str(command[i + 1]) if i + 1 < len(command) else None


def sweep_warnings(sweep: Sweep) -> list[str]:
    """What looks wrong but is allowed (the sweep file is trusted, but every row runs its command):
    a command that does not run a vidgen training module, or that runs anything besides it."""
    command = sweep.config.get("command")
    if not isinstance(command, list):
        return []
    shown = " ".join(map(str, command))
    module = command_module(command)
    if module not in TRAIN_MODULES.values():
        return [f"{sweep.path}: command: does not run `-m vidgen.train` (nor `-m vidgen.sweeps.profile_run`); "
                f"every row will run `{shown}`. Check it for a typo."]
    usual = {"${env}", "${interpreter}", "-m", module, "${args_no_hyphens}"}
    if extra := [str(c) for c in command if c not in usual]:
        return [f"{sweep.path}: command: runs {' '.join(extra)} besides `-m {module} ${{args_no_hyphens}}`; "
                f"every row will run `{shown}`. Check it for a typo."]
    return []


def _table_label(table: str) -> str:
    """table3 -> 'Table 3', fig4 -> 'Fig. 4' (what a description must mention)."""
    m = re.match(r"(table|fig)([0-9]+[a-z]?)", table)
    return f"{'Table' if m.group(1) == 'table' else 'Fig.'} {m.group(2)}" if m else table


def hydra_overrides(args: list[str]) -> list[str]:
    return [a for a in args if not a.startswith(PROFILE_ARGS)]


def validate(sweep: Sweep, compose: bool = True) -> list[str]:
    """Every problem found, as `file: message` lines (empty: the sweep is valid)."""
    errors = schema_errors(sweep.config) + run_folder_errors(sweep)
    name_match = NAME.match(sweep.name)
    spec = sweep.spec
    if not name_match:
        errors.append(f"name: {sweep.name!r} must be <paper>/<table|figN>_<slug>, e.g. jdm/table3_mask_quality")
    elif spec is None:
        errors.append(f"name: {sweep.name!r} has no table link in vidgen/sweeps/tables.py "
                      f"(known: {', '.join(sorted(TABLES))})")
    if spec is not None and not errors:
        try:
            ref = get_table(spec.paper, spec.table)
        except VidgenError as err:
            return [f"{sweep.path}: {e}" for e in [*errors, str(err)]]
        description = str(sweep.config.get("description", ""))
        if spec.paper.lower() not in description.lower() or _table_label(spec.table) not in description:
            errors.append(f"description: must name the paper ({spec.paper.upper()}) and the table "
                          f"({_table_label(spec.table)})")
        labels = {r["label"] for r in ref["rows"]}
        if missing := set(spec.rows.values()) - labels - set(spec.extra_rows):
            errors.append(f"table link: rows {sorted(missing)} are not in the reference {spec.paper}/{spec.table}")
        ref_metrics = {m["name"] for m in ref.get("metrics", [])}
        if ref_metrics and (missing := {m.paper for m in spec.metrics} - ref_metrics):
            errors.append(f"table link: metrics {sorted(missing)} are not in the reference table")
        module = command_module(sweep.config["command"])
        if module != TRAIN_MODULES[spec.source]:
            errors.append(f"command: this table is produced by `-m {TRAIN_MODULES[spec.source]}`, not {module}")
        row_spec = sweep.parameters.get(spec.row_param)
        if row_spec is None:
            errors.append(f"parameters: the row parameter `{spec.row_param}` is missing")
        else:
            values = row_spec.get("values", [row_spec["value"]] if "value" in row_spec else [])
            if set(values) != set(spec.rows):
                errors.append(f"parameters.{spec.row_param}: values {values} must be the table's rows "
                              f"{list(spec.rows)}")
    for group in ("exp", "variant"):
        p = sweep.parameters.get(group)
        if isinstance(p, dict):
            options = group_options(group)
            for value in p.get("values", [p["value"]] if "value" in p else []):
                if str(value) not in options:
                    errors.append(f"parameters.{group}: {value!r} does not exist "
                                  f"(src/vidgen/conf/{group}/ has: {', '.join(options) or 'nothing'})")
    if compose and not errors:
        try:
            runs = expand(sweep, count=None if sweep.method == "grid" else 3)
        except VidgenError as err:
            runs, _ = [], errors.append(str(err))
        for run in runs:
            try:
                load_config(hydra_overrides(run.args))
            except VidgenError as err:
                errors.append(f"run {' '.join(run.args)} does not compose: {err}")
    return [f"{sweep.path}: {e}" for e in errors]
