"""Timestep sampling densities and per-timestep loss weights.

Everything here is schedule-agnostic: samplers draw ``u`` in ``[0, 1)`` (a fraction of the
diffusion time) and the objective maps ``u`` onto what its backbone expects (an integer DDPM
timestep, or a flow-matching sigma).  Loss weights take the signal-to-noise ratio that the
objective reads off its diffusers scheduler.

References
----------
* Esser et al. 2024, "Scaling Rectified Flow Transformers for High-Resolution Image Synthesis"
  (SD3), Sec. 3.1: logit-normal sampling (Eq. 19) and mode sampling with heavy tails (Eq. 20).
* Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy", Sec. 3.4 /
  Eq. 10: weight ``min(SNR, gamma)`` on the x0 loss, i.e. ``min(SNR, gamma) / SNR`` for an
  epsilon target and ``min(SNR, gamma) / (SNR + 1)`` for a v target.
"""

from __future__ import annotations

import math

import torch

from vidgen.errors import ConfigError

TIMESTEP_SAMPLINGS = ("uniform", "logit_normal", "mode")
LOSS_WEIGHTINGS = ("none", "min_snr")


def check_timestep_sampling(name: str) -> str:
    if name not in TIMESTEP_SAMPLINGS:
        raise ConfigError(
            f"objective.timestep_sampling={name!r} is not a known timestep sampling; "
            f"valid names: {', '.join(TIMESTEP_SAMPLINGS)}"
        )
    return name


def check_loss_weighting(name: str, valid: tuple[str, ...] = LOSS_WEIGHTINGS) -> str:
    if name not in valid:
        raise ConfigError(
            f"objective.loss_weighting={name!r} is not supported here; valid names: {', '.join(valid)}"
        )
    return name


def check_mode_scale(mode_scale: float) -> float:
    if not -1.0 <= mode_scale <= 2.0 / (math.pi - 2.0):
        raise ConfigError(
            f"objective.mode_scale={mode_scale} is outside [-1, {2.0 / (math.pi - 2.0):.4f}] "
            "(SD3 Eq. 20 is only a density there); pick a value in that range, e.g. 1.29"
        )
    return mode_scale


def sample_unit(
    n: int,
    method: str = "uniform",
    generator: torch.Generator | None = None,
    *,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    mode_scale: float = 1.29,
) -> torch.Tensor:
    """Draw ``n`` float32 values ``u`` in ``[0, 1]`` (on the generator's device, CPU by default).

    * ``uniform``: ``u ~ U[0, 1)``.
    * ``logit_normal``: ``u = sigmoid(z)``, ``z ~ N(logit_mean, logit_std^2)`` (SD3 Eq. 19).
    * ``mode``: ``u = 1 - v - s (cos^2(pi v / 2) - 1 + v)``, ``v ~ U[0, 1)`` (SD3 Eq. 20);
      ``s = mode_scale`` must lie in ``[-1, 2/(pi-2)]`` for the density to stay valid.
    """
    check_timestep_sampling(method)
    device = generator.device if generator is not None else torch.device("cpu")
    if method == "uniform":
        return torch.rand(n, generator=generator, device=device)
    if method == "logit_normal":
        z = torch.randn(n, generator=generator, device=device) * logit_std + logit_mean
        return torch.sigmoid(z)
    check_mode_scale(mode_scale)
    v = torch.rand(n, generator=generator, device=device)
    u = 1.0 - v - mode_scale * (torch.cos(math.pi * v / 2.0) ** 2 - 1.0 + v)
    return u.clamp(0.0, 1.0)


def unit_to_discrete(u: torch.Tensor, num_train_timesteps: int) -> torch.Tensor:
    """Map ``u`` in ``[0, 1]`` to integer timesteps ``0 .. T-1`` (long)."""
    return (u * num_train_timesteps).long().clamp_(0, num_train_timesteps - 1)


def shift_sigma(sigma: torch.Tensor | float, shift: float) -> torch.Tensor | float:
    """Resolution-dependent timestep shift (SD3 Eq. 23, diffusers FlowMatchEulerDiscreteScheduler).

    ``sigma' = shift * sigma / (1 + (shift - 1) * sigma)``; e.g. shift=3, sigma=0.5 -> 0.75.
    """
    return shift * sigma / (1.0 + (shift - 1.0) * sigma)


def snr_from_alphas_cumprod(alphas_cumprod_t: torch.Tensor) -> torch.Tensor:
    """``SNR(t) = alpha_bar_t / (1 - alpha_bar_t)`` (Kingma et al. 2021); ``inf`` where alpha_bar=1."""
    a = alphas_cumprod_t.double()
    return (a / (1.0 - a)).float()


def min_snr_weight(snr: torch.Tensor, gamma: float, prediction: str) -> torch.Tensor:
    """Min-SNR-gamma weight (Hang et al. 2023) for the loss on a given prediction target.

    The paper weights the x0-space loss by ``min(SNR, gamma)``.  An epsilon-space MSE equals the
    x0-space MSE times ``SNR``, and a v-space MSE equals it times ``SNR + 1``, so

    * ``prediction="eps"``: ``w = min(SNR, gamma) / SNR = min(1, gamma / SNR)``
      (``1`` at ``SNR = 0``, the zero-terminal-SNR step);
    * ``prediction="v"``: ``w = min(SNR, gamma) / (SNR + 1)``.
    """
    snr = snr.float()
    if prediction == "eps":
        return torch.clamp(gamma / snr, max=1.0)  # gamma / 0 = inf -> 1
    if prediction == "v":
        return torch.clamp(snr, max=gamma) / (snr + 1.0)
    raise ConfigError(f"min_snr weighting is defined for 'eps' and 'v' targets, not {prediction!r}")
