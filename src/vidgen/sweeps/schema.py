"""Sweep files: load, check against the W&B sweep schema, expand into runs.

The check follows wandb/sweeps' `config/schema.json` (top-level keys, methods, parameter specs,
`early_terminate`) and the checks `sweeps` adds in Python (probabilities sum to 1, min < max)
without depending on the `sweeps` package: it pins numpy<2, and wandb 0.31 ships no copy of the
schema (its `wandb.sdk.launch.sweeps` only forwards configs to the server). On top of W&B's rules a vidgen sweep
needs: a `name` of the form `<paper>/<table>_<slug>` known to `vidgen.sweeps.tables`, a
`description`, and a Hydra-style command ending in `${args_no_hyphens}`.

Expansion mirrors the W&B controller: `grid` is the Cartesian product of the categorical and
constant parameters in file order (the first parameter varies slowest); `random` draws `count`
runs from a seeded generator; `bayes` needs the W&B server and is refused locally.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vidgen.errors import ConfigError
from vidgen.sweeps.tables import TableSpec, table_spec

TOP_LEVEL = {
    "apiVersion", "kind", "controller", "description", "program", "job", "image_uri", "entity", "project",
    "method", "command", "name", "run_cap", "metric", "metrics", "scheduler", "early_terminate", "parameters",
}
METHODS = ("grid", "random", "bayes", "custom")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# distribution -> (required keys, allowed keys)
DISTRIBUTIONS: dict[str, tuple[set[str], set[str]]] = {
    "constant": ({"value"}, {"value"}),
    "categorical": ({"values"}, {"values"}),
    "categorical_w_probabilities": ({"values", "probabilities"}, {"values", "probabilities"}),
    "int_uniform": ({"min", "max"}, {"min", "max"}),
    "uniform": ({"min", "max"}, {"min", "max"}),
    "q_uniform": ({"min", "max"}, {"min", "max", "q"}),
    "log_uniform": ({"min", "max"}, {"min", "max"}),
    "log_uniform_values": ({"min", "max"}, {"min", "max"}),
    "q_log_uniform": ({"min", "max"}, {"min", "max", "q"}),
    "q_log_uniform_values": ({"min", "max"}, {"min", "max", "q"}),
    "inv_log_uniform": ({"min", "max"}, {"min", "max"}),
    "inv_log_uniform_values": ({"min", "max"}, {"min", "max"}),
    "normal": (set(), {"mu", "sigma"}),
    "q_normal": (set(), {"mu", "sigma", "q"}),
    "log_normal": (set(), {"mu", "sigma"}),
    "q_log_normal": (set(), {"mu", "sigma", "q"}),
    "beta": (set(), {"a", "b"}),
    "q_beta": (set(), {"a", "b", "q"}),
}
COMMAND_MACROS = ("${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "${args_json}",
                  "${args_json_file}", "${args_no_boolean_flags}", "${args_append_hydra}", "${args_override_hydra}")
TRAIN_MODULES = {"train": "vidgen.train", "profile": "vidgen.sweeps.profile_run"}


@dataclass
class Sweep:
    path: Path
    config: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.config.get("name", ""))

    @property
    def method(self) -> str:
        return str(self.config.get("method", ""))

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return self.config.get("parameters") or {}

    @property
    def spec(self) -> TableSpec | None:
        return table_spec(self.name)

    @property
    def slug(self) -> str:
        """Folder-safe sweep name: jdm/table3_mask_quality -> jdm-table3_mask_quality."""
        return self.name.replace("/", "-")


@dataclass
class RunSpec:
    """One run of a sweep: its parameter values and the arguments W&B's agent would pass."""

    params: dict[str, Any]
    index: int = 0
    extra: list[str] = field(default_factory=list)

    @property
    def args(self) -> list[str]:
        """`${args_no_hyphens}`: `key=value` exactly as wandb formats it (f"{param}={value}")."""
        return [f"{k}={v}" for k, v in self.params.items()]

    @property
    def name(self) -> str:
        """Deterministic folder name of the run, from its parameters (exp is already the parent)."""
        kept = {k: v for k, v in self.params.items() if k != "exp"}
        slug = re.sub(r"[^A-Za-z0-9.=_-]+", "_", ",".join(f"{k}={v}" for k, v in kept.items()))[:80] or "default"
        digest = hashlib.sha1(repr(sorted(self.params.items())).encode()).hexdigest()[:6]
        return f"{slug}-{digest}"


def load_sweep(path: str | Path) -> Sweep:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such sweep file")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a sweep file is a YAML mapping (program, method, parameters, command, ...)")
    return Sweep(path, config)


def _param_errors(name: str, spec: Any) -> list[str]:
    where = f"parameters.{name}"
    if not PARAM_NAME.match(name):
        return [f"{where}: parameter names match {PARAM_NAME.pattern}"]
    if not isinstance(spec, dict):
        return [f"{where}: must be a mapping such as {{values: [...]}} or {{value: x}}"]
    if "parameters" in spec:  # nested parameter dictionary
        if set(spec) != {"parameters"} or not isinstance(spec["parameters"], dict) or not spec["parameters"]:
            return [f"{where}: a nested parameter has only a non-empty `parameters` mapping"]
        return [e for k, v in spec["parameters"].items() for e in _param_errors(f"{name}.{k}", v)]
    dist = spec.get("distribution")
    if dist is None:
        dist = ("constant" if "value" in spec else "categorical_w_probabilities" if "probabilities" in spec
                else "categorical" if "values" in spec
                else ("int_uniform" if all(isinstance(spec.get(k), int) for k in ("min", "max")) else "uniform")
                if "min" in spec else None)
    if dist not in DISTRIBUTIONS:
        return [f"{where}: unknown distribution {dist!r} (give `value`, `values`, or `min`/`max`). "
                f"Valid distributions: {', '.join(DISTRIBUTIONS)}"]
    required, allowed = DISTRIBUTIONS[dist]
    errors = []
    keys = set(spec) - {"distribution"}
    if missing := required - keys:
        errors.append(f"{where}: distribution {dist} needs {', '.join(sorted(missing))}")
    if unknown := keys - allowed:
        errors.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for distribution {dist}")
    if "values" in spec and (not isinstance(spec["values"], list) or not spec["values"]):
        errors.append(f"{where}: `values` must be a non-empty list")
    if dist == "categorical_w_probabilities" and isinstance(spec.get("values"), list):
        probs = spec.get("probabilities")
        if not isinstance(probs, list) or len(probs) != len(spec["values"]) or any(
            not isinstance(p, (int, float)) or p < 0 for p in probs
        ):
            errors.append(f"{where}: `probabilities` must be non-negative numbers, one per value")
        elif not math.isclose(sum(probs), 1.0, rel_tol=1e-5, abs_tol=1e-8):  # sweeps: np.isclose(sum, 1)
            errors.append(f"{where}: `probabilities` sum to {sum(probs):g}; W&B requires them to sum to 1")
    for k in ("min", "max", "mu", "sigma", "q", "a", "b"):
        if k in spec and (not isinstance(spec[k], (int, float)) or isinstance(spec[k], bool)):
            errors.append(f"{where}.{k}: must be a number")
    if dist == "int_uniform" and not all(isinstance(spec.get(k), int) for k in ("min", "max")):
        errors.append(f"{where}: int_uniform needs integer min and max")
    lo, hi = spec.get("min"), spec.get("max")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) and lo >= hi:
        # sweeps' validate_min_max: min must be strictly less than max, for every distribution
        errors.append(f"{where}: min {lo} is not less than max {hi} (W&B requires min < max)")
    return errors


HYPERBAND_KEYS = {"type", "min_iter", "max_iter", "s", "eta", "strict"}


def _early_terminate_errors(spec: Any) -> list[str]:
    """W&B's `hyperband_stopping` schema: `type: hyperband` and either `min_iter` or `max_iter` + `s`."""
    where = "early_terminate"
    if not isinstance(spec, dict) or spec.get("type") != "hyperband":
        return [f"{where}: W&B supports only {{type: hyperband, min_iter: N}} (or max_iter + s)"]
    errors = []
    if unknown := set(spec) - HYPERBAND_KEYS:
        errors.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; hyperband allows "
                      f"{', '.join(sorted(HYPERBAND_KEYS))}")
    if "min_iter" not in spec and not {"max_iter", "s"} <= set(spec):
        errors.append(f"{where}: hyperband needs `min_iter` (first step to stop runs at) or both `max_iter` "
                      "and `s` (W&B's schema rejects it otherwise)")
    for key, low, strict in (("min_iter", 1, False), ("max_iter", None, False), ("eta", 1, True)):
        value = spec.get(key)
        if value is None:
            continue
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if key != "eta" and not is_int:
            errors.append(f"{where}.{key}: must be an integer")
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{where}.{key}: must be a number")
        elif low is not None and (value <= low if strict else value < low):
            errors.append(f"{where}.{key}: must be {'>' if strict else '>='} {low}")
    if "s" in spec and (not isinstance(spec["s"], (int, float)) or isinstance(spec["s"], bool)):
        errors.append(f"{where}.s: must be a number")
    if "strict" in spec and not isinstance(spec["strict"], bool):
        errors.append(f"{where}.strict: must be true or false")
    return errors


def schema_errors(config: dict[str, Any]) -> list[str]:
    """What W&B's sweep schema (plus vidgen's conventions) rejects in a sweep config."""
    errors = []
    if unknown := set(config) - TOP_LEVEL:
        errors.append(f"unknown top-level key(s) {', '.join(sorted(unknown))}: W&B's sweep schema allows only "
                      f"{', '.join(sorted(TOP_LEVEL))} (put table links in vidgen/sweeps/tables.py)")
    for key in ("program", "method", "parameters", "command", "name", "description"):
        if key not in config:
            errors.append(f"missing `{key}`")
    if "method" in config and config["method"] not in METHODS:
        errors.append(f"method: {config['method']!r} is not one of {', '.join(METHODS)}")
    for key in ("program", "name", "description"):
        if key in config and not isinstance(config[key], str):
            errors.append(f"{key}: must be a string")
    if "run_cap" in config and (not isinstance(config["run_cap"], int) or config["run_cap"] <= 0):
        errors.append("run_cap: must be a positive integer")
    if "metric" in config:
        m = config["metric"]
        if not isinstance(m, dict) or "name" not in m or set(m) - {"name", "goal", "target", "impute",
                                                                  "impute_while_running"}:
            errors.append("metric: a mapping with `name` and optional goal/target/impute")
        elif m.get("goal", "minimize") not in ("minimize", "maximize"):
            errors.append("metric.goal: minimize or maximize")
    if "early_terminate" in config:
        errors.extend(_early_terminate_errors(config["early_terminate"]))
    params = config.get("parameters")
    if "parameters" in config:
        if not isinstance(params, dict) or not params:
            errors.append("parameters: a non-empty mapping of parameter name -> spec")
        else:
            for name, spec in params.items():
                errors.extend(_param_errors(str(name), spec))
    command = config.get("command")
    if "command" in config:
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            errors.append("command: a list of strings, e.g. [${env}, ${interpreter}, -m, vidgen.train, "
                          "${args_no_hyphens}]")
        else:
            if "${args_no_hyphens}" not in command:
                errors.append("command: must pass the parameters as Hydra overrides with ${args_no_hyphens}")
            if "-m" not in command or command.index("-m") + 1 >= len(command) or \
                    command[command.index("-m") + 1] not in TRAIN_MODULES.values():
                errors.append(f"command: must run `-m {TRAIN_MODULES['train']}` "
                              f"(or `-m {TRAIN_MODULES['profile']}` for profile tables)")
            for chunk in command:
                if chunk.startswith("${") and chunk not in COMMAND_MACROS:
                    errors.append(f"command: unknown macro {chunk}; W&B knows {', '.join(COMMAND_MACROS)}")
    return errors


def _values(spec: dict[str, Any]) -> list[Any] | None:
    """The finite values of a grid-able parameter, else None."""
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec and spec.get("distribution", "categorical") in ("categorical", "categorical_w_probabilities"):
        return list(spec["values"])
    return None


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    out = {}
    for k, v in params.items():
        if isinstance(v, dict) and "parameters" in v:
            out.update(_flatten(v["parameters"], f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _draw(spec: dict[str, Any], rng: random.Random) -> Any:
    values = _values(spec)
    if values is not None:
        if "probabilities" in spec:
            return rng.choices(values, weights=spec["probabilities"])[0]
        return rng.choice(values)
    dist = spec.get("distribution") or ("int_uniform" if isinstance(spec.get("min"), int)
                                        and isinstance(spec.get("max"), int) else "uniform")
    lo, hi = spec.get("min", 0), spec.get("max", 1)
    q = spec.get("q", 1.0)
    if dist == "int_uniform":
        return rng.randint(int(lo), int(hi))
    if dist in ("uniform", "q_uniform"):
        x = rng.uniform(lo, hi)
        return round(x / q) * q if dist == "q_uniform" else x
    if dist in ("log_uniform", "q_log_uniform"):  # min/max are exponents (natural log)
        x = math.exp(rng.uniform(lo, hi))
        return round(x / q) * q if dist == "q_log_uniform" else x
    if dist in ("log_uniform_values", "q_log_uniform_values"):
        x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return round(x / q) * q if dist == "q_log_uniform_values" else x
    if dist in ("inv_log_uniform", "inv_log_uniform_values"):
        a, b = (lo, hi) if dist == "inv_log_uniform" else (-math.log(hi), -math.log(lo))
        return math.exp(-rng.uniform(a, b))
    if dist in ("normal", "q_normal", "log_normal", "q_log_normal"):
        x = rng.gauss(spec.get("mu", 0.0), spec.get("sigma", 1.0))
        x = math.exp(x) if "log" in dist else x
        return round(x / q) * q if dist.startswith("q_") else x
    if dist in ("beta", "q_beta"):
        x = rng.betavariate(spec.get("a", 1.0), spec.get("b", 1.0))
        return round(x / q) * q if dist == "q_beta" else x
    raise ConfigError(f"cannot draw from distribution {dist!r}")


def expand(sweep: Sweep, count: int | None = None, seed: int = 0) -> list[RunSpec]:
    """The runs of a sweep, in a deterministic order (grid: file order; random: seeded draws)."""
    params = _flatten(sweep.parameters)
    method = sweep.method
    if method == "bayes":
        raise ConfigError(
            f"{sweep.path}: method: bayes picks each run from the results of the previous ones on the W&B "
            "server, so it cannot run locally. Use `wandb sweep` + `wandb agent` (docs/sweeps.md), or set "
            "method: grid / random for a local run."
        )
    if method == "custom":
        raise ConfigError(f"{sweep.path}: method: custom needs a W&B scheduler; use grid or random locally")
    if method == "grid":
        grids = {k: _values(v) for k, v in params.items()}
        if bad := [k for k, v in grids.items() if v is None]:
            raise ConfigError(f"{sweep.path}: method: grid needs `value` or `values` for every parameter; "
                              f"{', '.join(bad)} is a distribution (use method: random)")
        runs = [RunSpec(dict(zip(grids, combo)), i) for i, combo in enumerate(itertools.product(*grids.values()))]
        return runs[:count] if count else runs
    if method == "random":
        n = count or sweep.config.get("run_cap")
        if not n:
            raise ConfigError(f"{sweep.path}: method: random has no end; pass --count N (or set run_cap)")
        rng = random.Random(seed)
        return [RunSpec({k: _draw(v, rng) for k, v in params.items()}, i) for i in range(int(n))]
    raise ConfigError(f"{sweep.path}: unknown method {method!r}")
