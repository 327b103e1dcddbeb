"""JDM Eq. 12: the InfoNCE-style estimate of I(y^i; y^j | x0) from embeddings.

``sim(a, b | c)`` is the cosine of the concatenations ``[t_a, c]`` and ``[t_b, c]`` of
L2-normalised parts, which is ``(t_a . t_b + 1) / 2`` in [0, 1] (``context_similarity``). Two
critics (``--critic``):

- ``ratio`` (default, Eq. 12 as printed): ``log sim(i, j | c) - log(1/M sum_k sim(i, neg_k | c))``;
  similarities are floored at ``EPS`` only so that a cosine of exactly -1 gives a finite log.
- ``exp`` (a knob, not in the paper): the InfoNCE critic ``f = exp(sim / T)`` in place of ``sim``:
  ``sim_ij / T - (logsumexp_k(sim_ik / T) - log M)``; sharper for small T (CLIP's 0.07).

Ī of a clip is the mean over its R(R-1) ordered pairs, clamped at 0 (a mutual information is
non-negative). Fewer than 2 regions: no pairs, Ī = 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vidgen.errors import ConfigError

CRITICS = ("ratio", "exp")
DEFAULT_CRITIC = "ratio"
DEFAULT_TEMPERATURE = 0.07  # the exp critic only
EPS = 1e-6


def check_critic(critic: str, temperature: float) -> None:
    if critic not in CRITICS:
        raise ConfigError(
            f"--critic={critic!r} is not valid; use one of {', '.join(CRITICS)} (ratio = Eq. 12 as printed)"
        )
    if critic == "exp" and not temperature > 0:
        raise ConfigError(f"--temperature={temperature} must be > 0 (the exp critic divides by it)")


def _unit(x: Tensor) -> Tensor:
    x = x.float()
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def context_similarity(a: Tensor, b: Tensor, context: Tensor, context_b: Tensor | None = None) -> Tensor:
    """Cosine of ``[a_i, c]`` and ``[b_j, c']`` (parts L2-normalised): ``[Na, Nb]`` in [0, 1].

    ``a [Na, P]``, ``b [Nb, P]``, ``context [Q]`` (``context_b`` defaults to the same context,
    then the result is ``(a_i . b_j + 1) / 2``).
    """
    c_a = _unit(context)
    c_b = c_a if context_b is None else _unit(context_b)
    ctx = (c_a * c_b).sum(-1)
    return (_unit(a) @ _unit(b).T + ctx) / 2


def pair_log_ratios(
    regions: Tensor,
    negatives: Tensor,
    context: Tensor,
    critic: str = DEFAULT_CRITIC,
    temperature: float = DEFAULT_TEMPERATURE,
) -> Tensor:
    """Eq. 12 for every ordered pair (i, j) of ``regions [R, P]``: ``[R, R]`` (diagonal NaN)."""
    check_critic(critic, temperature)
    r, m = regions.shape[0], negatives.shape[0]
    if m == 0:
        raise ValueError("pair_log_ratios needs at least one negative")
    s_pos = context_similarity(regions, regions, context)  # [R, R]
    s_neg = context_similarity(regions, negatives, context)  # [R, M]
    if critic == "ratio":
        out = s_pos.clamp_min(EPS).log() - s_neg.mean(dim=1).clamp_min(EPS).log()[:, None]
    else:
        log_mean_neg = torch.logsumexp(s_neg / temperature, dim=1) - math.log(m)  # [R]
        out = s_pos / temperature - log_mean_neg[:, None]
    out[torch.eye(r, dtype=torch.bool)] = float("nan")
    return out


def average_cmi(
    regions: Tensor,
    negatives: Tensor,
    context: Tensor,
    critic: str = DEFAULT_CRITIC,
    temperature: float = DEFAULT_TEMPERATURE,
    clamp: bool = True,
) -> float:
    """Ī: the mean of Eq. 12 over the ordered pairs of a clip's regional captions (0 with < 2 regions)."""
    r = regions.shape[0]
    if r < 2 or negatives.shape[0] == 0:
        return 0.0
    ratios = pair_log_ratios(regions, negatives, context, critic, temperature)
    value = float(ratios[~torch.eye(r, dtype=torch.bool)].mean())
    return max(value, 0.0) if clamp else value
