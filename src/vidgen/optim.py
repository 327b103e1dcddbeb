"""Optimizers, LR schedules and gradient-accumulation arithmetic.

* :func:`build_optimizer` - ``adamw`` (``torch.optim.AdamW``) or ``adafactor``.
  Adafactor is ``transformers.optimization.Adafactor`` with ``relative_step=False,
  scale_parameter=False, warmup_init=False``: the update is then ``lr * (factored RMS-normalised
  gradient)`` so the LR schedule alone drives it.  ``torch.optim.Adafactor`` was not chosen
  because it always multiplies the step by ``min(lr, 1/sqrt(t))`` and the parameter RMS, which
  fights an external schedule.
* :func:`build_lr_schedule` - ``(scheduler, "step")`` for Lightning's
  ``lr_scheduler_config["interval"]``.
* :func:`accumulation_steps` - ``global_batch / (micro_batch * world_size)``.

``piecewise_linear`` stays a ``LambdaLR`` over the closed form rather than ``SequentialLR`` of
``LinearLR``/``ConstantLR``: ``LinearLR`` factors must lie in (0, 1] of the optimizer LR, so a
warm-up from 0 or InstanceV's 5e-4 peak over a 1e-4 optimizer LR cannot be written, and its
chainable update drifts from the closed form in the last bits (tests/test_lr_resume.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from vidgen.errors import ConfigError

OPTIMIZERS = ("adamw", "adafactor")
LR_SCHEDULES = (
    "constant",
    "constant_with_warmup",
    "cosine_with_restarts",
    "onecycle",
    "piecewise_linear",
    "instancev_staged",
)

# InstanceV Sec. 9.2: 1e-5 for steps 0-1000, linear up to 5e-4 at 3000, hold to 8000,
# linear down to 1e-5 at 10000 (then constant).
INSTANCEV_KNOTS: tuple[tuple[int, float], ...] = (
    (0, 1e-5),
    (1000, 1e-5),
    (3000, 5e-4),
    (8000, 5e-4),
    (10000, 1e-5),
)

_NORM_TYPES = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)


# --- optimizers -------------------------------------------------------------------------------
def _named_params(params: Any) -> list[tuple[str, nn.Parameter]] | list[dict] | None:
    """Normalise ``params``; returns named params, param-group dicts (passed through) or None."""
    if isinstance(params, nn.Module):
        module = params
        norm_param_ids = {
            id(p) for m in module.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters(recurse=False)
        }
        named = []
        for n, p in module.named_parameters():
            # mark norm weights via the name so the rule below sees them
            named.append((f"{n}#norm" if id(p) in norm_param_ids else n, p))
        return named
    items = list(params)
    if not items:
        raise ConfigError("optimizer: got no parameters to optimise (is everything frozen?)")
    if all(isinstance(x, dict) for x in items):
        return items
    if all(isinstance(x, tuple) and len(x) == 2 for x in items):
        return [(str(n), p) for n, p in items]
    return [(f"param{i}", p) for i, p in enumerate(items)]


def _no_decay(name: str, p: torch.Tensor) -> bool:
    """Biases and normalisation weights: 1-D tensors, ``*.bias``, or params of norm modules."""
    return p.ndim <= 1 or name.endswith(".bias") or name == "bias" or name.endswith("#norm")


def param_groups(
    params: Iterable[Any] | nn.Module, weight_decay: float, no_decay_norm_bias: bool = True
) -> list[dict]:
    """Split trainable params into ``[{params, weight_decay}, {params, weight_decay: 0}]``."""
    named = _named_params(params)
    if named and isinstance(named[0], dict):
        return list(named)  # explicit groups: the caller decides
    named = [(n, p) for n, p in named if p.requires_grad]
    if not named:
        raise ConfigError("optimizer: no trainable parameters (every parameter has requires_grad=False)")
    if not no_decay_norm_bias or weight_decay == 0.0:
        return [{"params": [p for _, p in named], "weight_decay": weight_decay}]
    decay = [p for n, p in named if not _no_decay(n, p)]
    nodecay = [p for n, p in named if _no_decay(n, p)]
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if nodecay:
        groups.append({"params": nodecay, "weight_decay": 0.0})
    return groups


def build_optimizer(
    params: Iterable[Any] | nn.Module,
    name: str = "adamw",
    lr: float = 1e-4,
    weight_decay: float = 0.0,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float | Sequence[float] = 1e-8,
    no_decay_norm_bias: bool = True,
    **kw: Any,
) -> torch.optim.Optimizer:
    """Build an optimizer by name.

    ``params``: an ``nn.Module``, ``named_parameters()`` pairs, plain parameters, or explicit
    param-group dicts (passed through unchanged).  With ``no_decay_norm_bias`` (default) biases,
    norm weights and other 1-D tensors get ``weight_decay=0`` (only names / module types are
    available for a module or named pairs; plain parameters are judged by ``ndim``).

    * ``adamw``: ``torch.optim.AdamW(lr, betas, eps, weight_decay, **kw)`` (e.g. ``fused=True``).
    * ``adafactor``: ``transformers.optimization.Adafactor(lr, weight_decay, relative_step=False,
      scale_parameter=False, warmup_init=False, **kw)``; ``betas``/``eps`` of AdamW do not apply:
      pass ``beta1`` (default None = no first moment), ``clip_threshold``, ``decay_rate`` in ``kw``
      and a two-tuple ``eps`` (default ``(1e-30, 1e-3)``) if you want to change it.
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer name={name!r} is unknown; valid names: {', '.join(OPTIMIZERS)}")
    if lr <= 0:
        raise ConfigError(f"optimizer lr={lr} must be > 0")
    groups = param_groups(params, weight_decay, no_decay_norm_bias)
    try:
        if name == "adamw":
            return torch.optim.AdamW(
                groups, lr=lr, betas=tuple(betas), eps=float(eps), weight_decay=weight_decay, **kw
            )
        from transformers.optimization import Adafactor

        af_eps = tuple(eps) if isinstance(eps, (tuple, list)) else (1e-30, 1e-3)
        opts = dict(relative_step=False, scale_parameter=False, warmup_init=False)
        opts.update(kw)
        return Adafactor(groups, lr=lr, eps=af_eps, weight_decay=weight_decay, **opts)
    except TypeError as exc:
        raise ConfigError(f"optimizer {name!r}: invalid option(s) {sorted(kw)} ({exc})") from exc


# --- LR schedules -----------------------------------------------------------------------------
def _check_knots(knots: Any) -> list[tuple[int, float]]:
    try:
        parsed = [(int(s), float(v)) for s, v in knots]
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"lr_schedule.knots={knots!r} must be a list of [step, lr] pairs, e.g. [[0, 1e-5], [1000, 1e-4]]"
        ) from exc
    if not parsed:
        raise ConfigError("lr_schedule.knots is empty; give at least one [step, lr] pair")
    steps = [s for s, _ in parsed]
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ConfigError(f"lr_schedule.knots steps {steps} must be strictly increasing")
    if any(v < 0 for _, v in parsed):
        raise ConfigError(f"lr_schedule.knots={parsed} has a negative learning rate")
    return parsed


def piecewise_linear_lr(step: int, knots: Sequence[tuple[int, float]]) -> float:
    """Absolute LR at ``step``: linear between knots, constant before the first and after the last."""
    steps = [s for s, _ in knots]
    if step <= steps[0]:
        return knots[0][1]
    if step >= steps[-1]:
        return knots[-1][1]
    i = bisect.bisect_right(steps, step)
    (s0, v0), (s1, v1) = knots[i - 1], knots[i]
    return v0 + (v1 - v0) * (step - s0) / (s1 - s0)


class _PiecewiseFactor:
    """Picklable ``LambdaLR`` factor ``lr(step) / base_lr`` (checkpointable, unlike a closure)."""

    def __init__(self, knots: Sequence[tuple[int, float]], base_lr: float) -> None:
        self.knots = [tuple(k) for k in knots]
        self.base_lr = base_lr

    def __call__(self, step: int) -> float:
        return piecewise_linear_lr(step, self.knots) / self.base_lr


def _no_warmup(name: str, warmup_steps: int, why: str) -> None:
    if warmup_steps:
        raise ConfigError(
            f"lr_schedule {name!r} does not use warmup_steps={warmup_steps} ({why}); set it to 0"
        )


def build_lr_schedule(
    optimizer: torch.optim.Optimizer, name: str, max_steps: int, warmup_steps: int = 0, **kw: Any
) -> tuple[torch.optim.lr_scheduler.LRScheduler, str]:
    """Build an LR schedule by name; returns ``(scheduler, "step")`` (step once per optimizer step).

    * ``constant``: the optimizer's LR.
    * ``constant_with_warmup``: linear 0 -> lr over ``warmup_steps``, then constant
      (``diffusers.optimization.get_constant_schedule_with_warmup``).
    * ``cosine_with_restarts``: warm-up then cosine with ``num_cycles`` hard restarts (default 1)
      (``diffusers.optimization.get_cosine_with_hard_restarts_schedule_with_warmup``).
    * ``onecycle``: ``torch.optim.lr_scheduler.OneCycleLR`` with ``max_lr`` = each group's LR,
      ``total_steps=max_steps``; knobs ``pct_start=0.3, div_factor=25.0,
      final_div_factor=1e4, anneal_strategy="cos", cycle_momentum=False`` (False so AdamW's
      betas are left alone and Adafactor works).
    * ``piecewise_linear``: knob ``knots=[[step, lr], ...]`` of absolute LRs, linear in between,
      constant outside (a ``LambdaLR`` returning ``lr(step) / optimizer.defaults["lr"]``; groups
      whose LR differs from the optimizer default keep their ratio to it).
    * ``instancev_staged``: ``piecewise_linear`` with InstanceV Sec. 9.2's knots as the default
      (``INSTANCEV_KNOTS``); ``knots`` overrides them.
    """
    from diffusers.optimization import (
        get_constant_schedule,
        get_constant_schedule_with_warmup,
        get_cosine_with_hard_restarts_schedule_with_warmup,
    )

    if name not in LR_SCHEDULES:
        raise ConfigError(f"lr_schedule name={name!r} is unknown; valid names: {', '.join(LR_SCHEDULES)}")
    allowed = {
        "constant": set(),
        "constant_with_warmup": set(),
        "cosine_with_restarts": {"num_cycles"},
        "onecycle": {
            "pct_start",
            "div_factor",
            "final_div_factor",
            "anneal_strategy",
            "cycle_momentum",
            "base_momentum",
            "max_momentum",
            "three_phase",
        },
        "piecewise_linear": {"knots"},
        "instancev_staged": {"knots"},
    }[name]
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise ConfigError(
            f"lr_schedule {name!r}: unknown option(s) {', '.join(unknown)}; valid options: "
            f"max_steps, warmup_steps{''.join(', ' + a for a in sorted(allowed))}"
        )
    if warmup_steps < 0:
        raise ConfigError(f"lr_schedule.warmup_steps={warmup_steps} must be >= 0")

    if name == "constant":
        _no_warmup(name, warmup_steps, "use constant_with_warmup for a warm-up")
        sched = get_constant_schedule(optimizer)
    elif name == "constant_with_warmup":
        sched = get_constant_schedule_with_warmup(optimizer, num_warmup_steps=warmup_steps)
    elif name == "cosine_with_restarts":
        if max_steps <= warmup_steps:
            raise ConfigError(f"lr_schedule: max_steps={max_steps} must exceed warmup_steps={warmup_steps}")
        sched = get_cosine_with_hard_restarts_schedule_with_warmup(
            optimizer,
            num_warmup_steps=warmup_steps,
            num_training_steps=max_steps,
            num_cycles=int(kw.get("num_cycles", 1)),
        )
    elif name == "onecycle":
        _no_warmup(name, warmup_steps, "its warm-up is pct_start * max_steps")
        if max_steps <= 0:
            raise ConfigError(f"lr_schedule onecycle needs max_steps > 0, got {max_steps}")
        opts = dict(pct_start=0.3, div_factor=25.0, final_div_factor=1e4, cycle_momentum=False)
        opts.update(kw)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=max_steps, **opts
        )
    else:  # piecewise_linear / instancev_staged
        _no_warmup(name, warmup_steps, "the knots define the warm-up")
        if "knots" in kw:
            knots = _check_knots(kw["knots"])
        elif name == "instancev_staged":
            knots = list(INSTANCEV_KNOTS)
        else:
            raise ConfigError("lr_schedule piecewise_linear needs knots=[[step, lr], ...]")
        base_lr = float(optimizer.defaults["lr"])
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, _PiecewiseFactor(knots, base_lr))
    return sched, "step"


# --- batch arithmetic -------------------------------------------------------------------------
def accumulation_steps(global_batch: int, micro_batch: int, world_size: int) -> int:
    """Gradient-accumulation steps so that ``micro_batch * world_size * steps == global_batch``."""
    for field, value in (
        ("train.global_batch_size", global_batch),
        ("micro batch size", micro_batch),
        ("world size", world_size),
    ):
        if int(value) != value or value <= 0:
            raise ConfigError(f"{field}={value} must be a positive integer")
    per_step = micro_batch * world_size
    if global_batch % per_step == 0:
        return global_batch // per_step
    lower = (global_batch // per_step) * per_step
    upper = lower + per_step
    nearest = f"{lower} or {upper}" if lower > 0 else f"{upper}"
    raise ConfigError(
        f"train.global_batch_size={global_batch} is not divisible by micro_batch_size ({micro_batch}) "
        f"x world_size ({world_size}) = {per_step}; nearest valid values: {nearest} "
        "(or change the micro batch size / number of devices)"
    )


__all__ = [
    "INSTANCEV_KNOTS",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "accumulation_steps",
    "build_lr_schedule",
    "build_optimizer",
    "param_groups",
    "piecewise_linear_lr",
]
