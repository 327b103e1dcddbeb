"""STIV's training objectives: Eq. 1-2 flow matching as printed, and the Table 2 SD-DDPM baseline."""

from __future__ import annotations

from torch import Tensor

from vidgen.diffusion.objectives import DDPMObjective, FlowObjective, Objective, make_objective
from vidgen.errors import ConfigError

OBJECTIVES = ("flow", "ddpm_eps")

# Stable Diffusion's default noise schedule (Table 2 baseline, Sec. G): scaled-linear betas
# 0.00085 -> 0.012 over 1000 steps (CompVis/stable-diffusion v1 scheduler_config.json).
SD_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)


class PaperFlowObjective(FlowObjective):
    """STIV Eq. 1-2 as printed: ``x_t = t x1 + (1 - t) eps``, target ``v = x1 - eps``, t ~ U[0, 1).

    Time runs from noise (t = 0) to data (t = 1); the model receives ``t * 1000``. diffusers' flow
    schedulers run the other way (sigma = 1 - t) and step with ``eps - x1 = -v``: ``sampler_call``
    converts (see ``STIVModule.generate``). No timestep shift (the paper states none).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, shift=1.0, **kwargs)

    def data_time(self, t: Tensor) -> Tensor:
        """The paper's t in [0, 1] of a model timestep ``t * T``."""
        return t.float() / self.num_train_timesteps

    def sample_timesteps(self, n, generator=None, device=None):
        t = self._sample_unit(n, generator) * self.num_train_timesteps
        return t if device is None else t.to(device)

    def add_noise(self, x0, noise, t):
        """Eq. 1: ``x_t = t x1 + (1 - t) eps`` (x1 = the data, here ``x0``)."""
        s = self.data_time(t).to(x0.device).reshape(-1, *([1] * (x0.ndim - 1)))
        return (s * x0.float() + (1.0 - s) * noise.float()).to(x0.dtype)

    def target(self, x0, noise, x_t=None, t=None):
        """Eq. 2's velocity ``v_t = x1 - eps``."""
        return (x0.float() - noise.float()).to(x0.dtype)

    def predict_x0(self, pred, x_t, t):
        s = self.data_time(t).to(x_t.device).reshape(-1, *([1] * (x_t.ndim - 1)))
        return (x_t.float() + (1.0 - s) * pred.float()).to(x_t.dtype)

    def snr(self, t):
        s = self.data_time(t).double()
        return ((s / (1.0 - s)) ** 2).float()


def make_stiv_objective(kind: str, timestep_sampling: str = "uniform", **knobs) -> Objective:
    """``flow`` (default, Eq. 1-2) or ``ddpm_eps`` (Table 2 baseline: SD schedule, epsilon loss)."""
    if kind == "flow":
        return PaperFlowObjective(
            "FlowMatchEulerDiscreteScheduler",
            {"num_train_timesteps": 1000},
            timestep_sampling=timestep_sampling,
            **knobs,
        )
    if kind == "ddpm_eps":
        obj = make_objective(
            "eps", "DDIMScheduler", SD_SCHEDULER, timestep_sampling=timestep_sampling, **knobs
        )
        assert isinstance(obj, DDPMObjective)
        return obj
    raise ConfigError(f"method.objective={kind!r} is not valid; use one of {', '.join(OBJECTIVES)}")


def scheduler_for(kind: str) -> tuple[str, dict]:
    """The inference scheduler of an objective (flow: Euler ODE, no shift; ddpm_eps: DDIM on SD's schedule)."""
    if kind == "flow":
        return "FlowMatchEulerDiscreteScheduler", {"num_train_timesteps": 1000, "shift": 1.0}
    return "DDIMScheduler", dict(SD_SCHEDULER)


def sampler_call(kind: str, model, num_train_timesteps: int = 1000):
    """``denoise(x, t, **cond)`` for the shared sampler loop.

    flow: the scheduler's ``t = sigma * T`` becomes the paper's ``(1 - sigma) * T`` and the model's
    ``v = x1 - eps`` is returned as the scheduler's ``eps - x1``; ddpm_eps: the model as it is.
    """

    def denoise(x: Tensor, t: Tensor, **kwargs) -> Tensor:
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t
        if kind == "flow":
            return -model(x, num_train_timesteps - t.float().to(x.device), **kwargs)
        return model(x, t.to(x.device), **kwargs)

    return denoise


__all__ = ["OBJECTIVES", "PaperFlowObjective", "make_stiv_objective", "sampler_call", "scheduler_for"]
