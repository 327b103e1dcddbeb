"""validate_config: the composed config against the schema, every problem in one ConfigError."""

from __future__ import annotations

import difflib
import re
import types
import typing
from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ValidationError

from vidgen.errors import ConfigError
from vidgen.schema.base import Section
from vidgen.schema.core import VidgenConfig
from vidgen.schema.groups import GROUP_SECTIONS
from vidgen.schema.methods import METHOD_SECTIONS
from vidgen.schema.trainer import trainer_hint

MAX_PROBLEMS = 8


def option_sections() -> dict[str, dict[str, type[Section]]]:
    return {**GROUP_SECTIONS, "method": METHOD_SECTIONS}


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming each bad key, its value and the fix; return quietly when valid."""
    try:
        raw = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as err:
        raise ConfigError(f"config error: {err}") from None
    raw = _integral_floats_as_ints(raw)
    problems = _problems(VidgenConfig, raw, ())
    for group, options in option_sections().items():
        section = raw.get(group)
        if not isinstance(section, dict):
            continue
        name = section.get("name")
        if name not in options:
            problems.append(
                f"{group}.name={name}: no such {group} in vidgen's config schema (known: "
                f"{', '.join(sorted(options))}); a new option adds its section in vidgen/schema/"
            )
            continue
        problems += _problems(options[name], section, (group,))
    if problems:
        head = "invalid config:" if len(problems) > 1 else "invalid config: " + problems[0]
        more = [f"  - {p}" for p in problems[:MAX_PROBLEMS]] if len(problems) > 1 else []
        if len(problems) > MAX_PROBLEMS:
            more.append(f"  ... and {len(problems) - MAX_PROBLEMS} more")
        raise ConfigError("\n".join([head, *more]))


def _integral_floats_as_ints(value: Any) -> Any:
    """Hydra reads `5e7` as a float: an integral float is accepted where an integer is asked for
    (3.0 is 3); 3.5 is still refused. A float field accepts the int either way."""
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def _problems(model: type[BaseModel], data: Any, prefix: tuple[str, ...]) -> list[str]:
    try:
        model.model_validate(data)
    except ValidationError as err:
        out: dict[str, str] = {}
        for e in err.errors():
            loc = _keys(e["loc"])
            path = ".".join((*prefix, *loc))
            if path not in out:
                out[path] = _message(model, loc, path, e)
        return list(out.values())
    return []


def _keys(loc: tuple) -> tuple[str, ...]:
    """The config keys of an error location (list indices and pydantic's union tags dropped)."""
    keys: list[str] = []
    for part in loc:
        if not isinstance(part, str) or "[" in part or part.startswith(("function-", "literal")):
            break
        keys.append(part)
    return tuple(keys)


def _show(value: Any) -> str:
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _message(model: type[BaseModel], loc: tuple[str, ...], path: str, e: dict) -> str:
    if e["type"] == "extra_forbidden":
        return unknown_key_message(path)
    doc = _field(model, loc)
    if e["type"] == "missing":
        return f"{path} is missing; set {path}=VALUE ({doc or 'see the config group files'})"
    reason = re.sub(r"^Value error, ", "", e["msg"])
    reason = reason[:1].lower() + reason[1:]
    fix = f"; use {doc}" if doc else ""
    return f"{path}={_show(e.get('input'))}: {reason}{fix}"


def _field(model: type[BaseModel], loc: tuple[str, ...]) -> str:
    """The description of the field at `loc` (the fix to print), '' when there is none."""
    info = None
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return ""
        info = model.model_fields[part]
        model = _section_type(info.annotation)
    return (info.description or "") if info else ""


def _section_type(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(
            (a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
    return None


@cache
def known_keys() -> tuple[str, ...]:
    """Every dotted key the schema knows, over all group options and methods."""
    keys: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            sub = _section_type(info.annotation)
            if sub is not None:
                walk(sub, f"{prefix}{name}.")
            elif not (prefix == "" and name in option_sections()):
                keys.add(prefix + name)

    walk(VidgenConfig, "")
    for group, options in option_sections().items():
        for section in options.values():
            walk(section, f"{group}.")
    return tuple(sorted(keys))


def unknown_key_message(path: str) -> str:
    """`path` is not a key vidgen reads: say so, and what was probably meant."""
    section, _, key = path.rpartition(".")
    if section == "trainer" and (hint := trainer_hint(key)):
        return f"{path} is not a vidgen key: {hint}"
    head = f"{path} is not a key vidgen reads (a value set there would be ignored)"
    if path in known_keys():
        options = [n for n, s in option_sections().get(section, {}).items() if key in s.model_fields]
        return f"{head} with this {section}; it is a key of {section}={'|'.join(options)}"
    siblings = [k.rpartition(".")[2] for k in known_keys() if k.rpartition(".")[0] == section]
    close = [f"{section}.{k}" for k in difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)]
    close = close or difflib.get_close_matches(path, known_keys(), n=1, cutoff=0.8)
    if close:
        return f"{head}; did you mean {close[0]}?"
    valid = f"; keys of {section}: {', '.join(siblings)}" if siblings else ""
    return f"{head}{valid} (a new project key is declared in vidgen/schema/)"


def override_error(message: str) -> str | None:
    """A clearer message for Hydra's override errors about keys ("use +key=..." for a typo), or None."""
    m = re.search(r"Could not override '([^']+)'", message)
    if m:
        key = m.group(1)
        if key in known_keys():  # an optional key no YAML file sets, e.g. trainer.auto_requeue
            return f"{key} is optional and not set by the config files; add it with +{key}=VALUE"
        return unknown_key_message(key)
    m = re.search(r"Could not append to config. An item is already at '([^']+)'", message)
    if m:
        return f"{m.group(1)} is already in the config; set it without the leading '+': {m.group(1)}=VALUE"
    return None
