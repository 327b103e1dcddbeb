"""JDM's dynamic loss weighting (Sec. 3.3, Eq. 12-13) and its two estimators.

    w' = w * exp(-alpha * I_bar)                         (w = alpha = 1.0 in the paper)
    L  = (1 - w') * L_diff + w' * L_fine                 (Eq. 13)

``I_bar`` is the clip's average conditional mutual information of its regional-caption pairs,
read from the data (``vidgen jdm cmi`` -> ``<data.root>/jdm_cmi.json``; the shapes world's
stand-in, ``cmi_shapes``); ``method.dynamic_weighting=false`` sets w' = w for every clip. A mutual
information is non-negative, but the estimate of Eq. 12 can come out negative; it is clamped at 0
so w' stays in [0, w] and (1 - w') never turns negative.

Estimators of the per-sample loss (``method.estimator``):

- ``two_pass`` (exact): both terms every step, ``(1 - w') L_diff + w' L_fine`` (two forwards);
- ``one_pass`` (unbiased, default): per sample, draw u ~ U[0, 1) and evaluate only L_fine when
  u < w', else only L_diff (one forward). Its expectation over u is the two-pass loss:
  E = P(u >= w') L_diff + P(u < w') L_fine = (1 - w') L_diff + w' L_fine.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidgen.errors import ConfigError

ESTIMATORS = ("one_pass", "two_pass")


def check_estimator(name: str) -> str:
    if name not in ESTIMATORS:
        raise ConfigError(f"method.estimator={name!r} is not valid; use one of {', '.join(ESTIMATORS)}")
    return name


def dynamic_weight(cmi: Tensor, w: float = 1.0, alpha: float = 1.0) -> Tensor:
    """w' = w * exp(-alpha * max(I_bar, 0)) per sample (float32)."""
    if not 0.0 <= float(w) <= 1.0:
        raise ConfigError(f"method.loss_w={w} must be in [0, 1]")
    if float(alpha) < 0.0:
        raise ConfigError(f"method.loss_alpha={alpha} must be >= 0")
    cmi = torch.as_tensor(cmi, dtype=torch.float32)
    return float(w) * torch.exp(-float(alpha) * cmi.clamp_min(0.0))


def two_pass_loss(loss_diff: Tensor, loss_fine: Tensor, w_prime: Tensor) -> Tensor:
    """Eq. 13 per sample: (1 - w') L_diff + w' L_fine."""
    return (1.0 - w_prime) * loss_diff + w_prime * loss_fine


def choose_fine(w_prime: Tensor, u: Tensor) -> Tensor:
    """The one-pass estimator's choice per sample: True = evaluate L_fine (probability w')."""
    return u < w_prime
