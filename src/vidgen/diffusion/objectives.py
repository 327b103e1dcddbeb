"""Training objectives, each "as its backbone was trained".

``make_objective(kind, scheduler_cls, scheduler_config, ...)`` returns an :class:`Objective`:

* ``"v"`` (CogVideoX): v-prediction (Salimans & Ho 2022, "Progressive Distillation", Sec. 4 /
  App. D) on the DDPM schedule of the backbone's diffusers scheduler (``CogVideoXDDIMScheduler``,
  with its SNR shift and zero-terminal-SNR rescale):
  ``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps``, target ``v = sqrt(a_t) eps - sqrt(1 - a_t) x0``.
* ``"eps"`` (ModelScope): epsilon prediction (Ho et al. 2020, DDPM Eq. 14, the "simple" loss)
  on a ``DDIMScheduler``/``DDPMScheduler`` schedule; same ``x_t``, target ``eps``.
* ``"flow"`` (Wan2.1): rectified flow / flow matching (Esser et al. 2024, SD3 Sec. 3, Eq. 1-3;
  Liu et al. 2022): ``x_t = (1 - sigma) x0 + sigma eps``, target ``u = eps - x0``, with the
  SD3/diffusers shift ``sigma' = s sigma / (1 + (s - 1) sigma)`` applied to the sampled sigma;
  the model receives ``timestep = sigma' * num_train_timesteps`` (float).

Here ``a_t`` is ``scheduler.alphas_cumprod[t]``; the alphas are never re-derived: the noising
and the velocity go through the scheduler's ``add_noise`` / ``get_velocity`` (in float32).
All knobs are plain keyword arguments, so a Hydra ``objective:`` block maps 1:1 onto them::

    objective: {kind: flow, timestep_sampling: logit_normal, logit_mean: 0.0, logit_std: 1.0}
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import diffusers
import torch

from vidgen.diffusion import timesteps as ts
from vidgen.errors import ConfigError

OBJECTIVE_KINDS = ("v", "eps", "flow")
PREDICTION_TYPES = {"v": "v_prediction", "eps": "epsilon", "flow": "flow_prediction"}


def instantiate_scheduler(scheduler_cls: str, scheduler_config: dict | None = None, **overrides: Any):
    """``getattr(diffusers, scheduler_cls).from_config({**scheduler_config, **overrides})``."""
    cls = getattr(diffusers, str(scheduler_cls), None)
    if cls is None or not hasattr(cls, "from_config"):
        raise ConfigError(
            f"scheduler_cls={scheduler_cls!r} is not a diffusers scheduler class; use a class name "
            "from diffusers, e.g. CogVideoXDDIMScheduler, DDIMScheduler, UniPCMultistepScheduler, "
            "FlowMatchEulerDiscreteScheduler"
        )
    config = {k: v for k, v in dict(scheduler_config or {}).items() if not str(k).startswith("_")}
    config.update(overrides)
    return cls.from_config(config)


def _bcast(coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample ``[n]`` coefficient to broadcast over ``like`` ``[n, ...]``."""
    return coef.reshape(coef.shape[0], *([1] * (like.ndim - 1)))


class Objective:
    """Base class; see :func:`make_objective`.

    Attributes: ``kind`` ("v"|"eps"|"flow"), ``prediction_type`` (the diffusers name of the
    target), ``num_train_timesteps``, ``timestep_sampling``, ``loss_weighting``, ``scheduler``.
    """

    kind: str = ""
    valid_loss_weightings: tuple[str, ...] = ("none",)

    def __init__(
        self,
        scheduler_cls: str,
        scheduler_config: dict | None,
        timestep_sampling: str = "uniform",
        loss_weighting: str = "none",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        mode_scale: float = 1.29,
    ) -> None:
        self.scheduler_cls = scheduler_cls
        self.scheduler_config = dict(scheduler_config or {})
        self.scheduler = instantiate_scheduler(scheduler_cls, self.scheduler_config)
        self.num_train_timesteps = int(self.scheduler.config.num_train_timesteps)
        self.timestep_sampling = ts.check_timestep_sampling(timestep_sampling)
        self.loss_weighting = ts.check_loss_weighting(loss_weighting, self.valid_loss_weightings)
        self.logit_mean = float(logit_mean)
        self.logit_std = float(logit_std)
        self.mode_scale = float(mode_scale)
        if self.timestep_sampling == "mode":
            ts.check_mode_scale(self.mode_scale)

    @property
    def prediction_type(self) -> str:
        return PREDICTION_TYPES[self.kind]

    def _sample_unit(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return ts.sample_unit(
            n,
            self.timestep_sampling,
            generator,
            logit_mean=self.logit_mean,
            logit_std=self.logit_std,
            mode_scale=self.mode_scale,
        )

    # --- interface -------------------------------------------------------------------------
    def sample_timesteps(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """``[n]`` timesteps in the form the backbone takes as its ``timestep`` input."""
        raise NotImplementedError

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def target(
        self, x0: torch.Tensor, noise: torch.Tensor, x_t: torch.Tensor | None, t: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def predict_x0(self, pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Invert the target: the clean sample implied by a model prediction at ``(x_t, t)``."""
        raise NotImplementedError

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Per-sample weight ``[n]`` (float32) multiplying the MSE; ones for ``"none"``."""
        if self.loss_weighting == "none":
            return torch.ones(t.shape[0], dtype=torch.float32, device=t.device)
        raise NotImplementedError  # pragma: no cover - subclasses handle their weightings

    def loss(
        self,
        pred: torch.Tensor,
        x0: torch.Tensor,
        noise: torch.Tensor,
        x_t: torch.Tensor | None,
        t: torch.Tensor,
        reduce_dims: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Per-sample loss ``[n]`` = ``loss_weight(t) * mean((pred - target)^2)`` (float32).

        ``reduce_dims`` defaults to every non-batch dim.
        """
        target = self.target(x0, noise, x_t, t)
        err = (pred.float() - target.float()) ** 2
        dims = tuple(range(1, err.ndim)) if reduce_dims is None else tuple(reduce_dims)
        mse = err.mean(dim=dims) if dims else err
        weight = self.loss_weight(t).to(mse.device)
        return _bcast(weight, mse) * mse if mse.ndim > 1 else weight * mse

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.kind!r}, scheduler={self.scheduler_cls}, "
            f"timestep_sampling={self.timestep_sampling!r}, loss_weighting={self.loss_weighting!r})"
        )


class DDPMObjective(Objective):
    """``"v"`` and ``"eps"`` objectives on a discrete DDPM schedule (long timesteps 0..T-1)."""

    valid_loss_weightings = ("none", "min_snr")

    def __init__(self, kind: str, *args: Any, min_snr_gamma: float = 5.0, **kwargs: Any) -> None:
        self.kind = kind
        super().__init__(*args, **kwargs)
        if not hasattr(self.scheduler, "alphas_cumprod"):
            raise ConfigError(
                f"objective kind {kind!r} needs a DDPM-type scheduler with alphas_cumprod, got "
                f"{self.scheduler_cls}; use e.g. CogVideoXDDIMScheduler, DDIMScheduler or DDPMScheduler"
            )
        self.min_snr_gamma = float(min_snr_gamma)
        self.alphas_cumprod = self.scheduler.alphas_cumprod.detach().to(torch.float32).clone()

    def _abar(self, t: torch.Tensor, device: torch.device) -> torch.Tensor:
        return self.alphas_cumprod.to(device)[t.to(device).long()]

    def sample_timesteps(self, n, generator=None, device=None):
        if self.timestep_sampling == "uniform":
            gdev = generator.device if generator is not None else torch.device("cpu")
            t = torch.randint(0, self.num_train_timesteps, (n,), generator=generator, device=gdev)
        else:
            t = ts.unit_to_discrete(self._sample_unit(n, generator), self.num_train_timesteps)
        return t if device is None else t.to(device)

    def add_noise(self, x0, noise, t):
        """``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps`` via ``scheduler.add_noise`` (DDPM Eq. 4)."""
        x_t = self.scheduler.add_noise(x0.float(), noise.float(), t.to(x0.device).long())
        return x_t.to(x0.dtype)

    def target(self, x0, noise, x_t=None, t=None):
        if self.kind == "eps":
            return noise  # DDPM Eq. 14
        # Salimans & Ho 2022: v = sqrt(a_t) eps - sqrt(1 - a_t) x0
        v = self.scheduler.get_velocity(x0.float(), noise.float(), t.to(x0.device).long())
        return v.to(x0.dtype)

    def predict_x0(self, pred, x_t, t):
        a = _bcast(self._abar(t, x_t.device), x_t)
        pred, xf = pred.float(), x_t.float()
        if self.kind == "eps":
            x0 = (xf - (1.0 - a).sqrt() * pred) / a.sqrt()
        else:
            x0 = a.sqrt() * xf - (1.0 - a).sqrt() * pred
        return x0.to(x_t.dtype)

    def snr(self, t):
        return ts.snr_from_alphas_cumprod(self._abar(t, t.device))

    def loss_weight(self, t):
        if self.loss_weighting == "min_snr":
            return ts.min_snr_weight(self.snr(t), self.min_snr_gamma, self.kind)
        return super().loss_weight(t)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", min_snr_gamma={self.min_snr_gamma})"


class FlowObjective(Objective):
    """Rectified-flow objective (SD3 Sec. 3; Wan2.1), float timesteps ``sigma' * T`` in ``[0, T)``."""

    kind = "flow"

    def __init__(self, *args: Any, shift: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if shift is None:
            cfg = self.scheduler.config
            shift = cfg.get("flow_shift", None) or cfg.get("shift", None) or 1.0
        if shift <= 0:
            raise ConfigError(f"objective.shift={shift} must be > 0 (1.0 = no shift)")
        self.shift = float(shift)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Noise level of a model timestep: ``sigma' = t / T`` (float32)."""
        return t.float() / self.num_train_timesteps

    def sample_timesteps(self, n, generator=None, device=None):
        sigma = ts.shift_sigma(self._sample_unit(n, generator), self.shift)
        t = sigma * self.num_train_timesteps
        return t if device is None else t.to(device)

    def add_noise(self, x0, noise, t):
        """``x_t = (1 - sigma) x0 + sigma eps`` (SD3 Eq. 3 with a_t = 1 - t, b_t = t)."""
        s = _bcast(self.sigma(t).to(x0.device), x0)
        return ((1.0 - s) * x0.float() + s * noise.float()).to(x0.dtype)

    def target(self, x0, noise, x_t=None, t=None):
        """Velocity ``u = eps - x0`` (SD3 Eq. 1, the conditional flow field)."""
        return (noise.float() - x0.float()).to(x0.dtype)

    def predict_x0(self, pred, x_t, t):
        s = _bcast(self.sigma(t).to(x_t.device), x_t)
        return (x_t.float() - s * pred.float()).to(x_t.dtype)

    def snr(self, t):
        s = self.sigma(t).double()
        return (((1.0 - s) / s) ** 2).float()

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", shift={self.shift})"


def _knob_names() -> dict[str, list[str]]:
    base = [p for p in inspect.signature(Objective.__init__).parameters if p not in ("self",)]
    base = [p for p in base if p not in ("scheduler_cls", "scheduler_config")]
    return {"v": base + ["min_snr_gamma"], "eps": base + ["min_snr_gamma"], "flow": base + ["shift"]}


def make_objective(
    kind: str,
    scheduler_cls: str,
    scheduler_config: dict | None = None,
    timestep_sampling: str = "uniform",
    loss_weighting: str = "none",
    **knobs: Any,
) -> Objective:
    """Build the training objective for ``kind`` in ``("v", "eps", "flow")``.

    Knobs (all optional): ``logit_mean=0.0, logit_std=1.0`` (``logit_normal`` sampling),
    ``mode_scale=1.29`` (``mode`` sampling), ``min_snr_gamma=5.0`` (``v``/``eps`` with
    ``loss_weighting="min_snr"``), ``shift`` (``flow``; defaults to the scheduler config's
    ``flow_shift`` or ``shift``, else 1.0).  Unknown kinds or knobs raise ``ConfigError``.
    """
    if kind not in OBJECTIVE_KINDS:
        raise ConfigError(f"objective.kind={kind!r} is unknown; valid kinds: {', '.join(OBJECTIVE_KINDS)}")
    valid = _knob_names()[kind]
    unknown = sorted(set(knobs) - set(valid))
    if unknown:
        raise ConfigError(
            f"objective: unknown option(s) {', '.join(unknown)} for kind {kind!r}; valid options: "
            f"kind, scheduler_cls, scheduler_config, {', '.join(valid)}"
        )
    common = dict(timestep_sampling=timestep_sampling, loss_weighting=loss_weighting, **knobs)
    if kind == "flow":
        return FlowObjective(scheduler_cls, scheduler_config, **common)
    return DDPMObjective(kind, scheduler_cls, scheduler_config, **common)


def objective_from_spec(spec: Any, **knobs: Any) -> Objective:
    """``make_objective`` from a ``BackboneSpec`` (its ``objective``, ``scheduler_cls``/``_config``)."""
    return make_objective(spec.objective, spec.scheduler_cls, dict(spec.scheduler_config), **knobs)
