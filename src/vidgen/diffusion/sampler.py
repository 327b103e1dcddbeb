"""The sampling loop, driven by a diffusers scheduler.

Works with the backbones' inference schedulers: ``CogVideoXDDIMScheduler`` (v),
``CogVideoXDPMScheduler`` (v, CogVideoX 5B), ``DDIMScheduler`` / ``DDPMScheduler`` (eps),
``UniPCMultistepScheduler`` with ``use_flow_sigmas`` + ``flow_prediction`` (Wan) and
``FlowMatchEulerDiscreteScheduler`` (flow).  The scheduler's config must carry the
``prediction_type`` the backbone was trained with (pass it as an override otherwise).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import diffusers
import torch
from diffusers.utils.torch_utils import randn_tensor

from vidgen.diffusion.guidance import Denoise, Guidance, NoGuidance
from vidgen.diffusion.objectives import instantiate_scheduler


def make_scheduler(scheduler_cls: Any, scheduler_config: dict | None = None, **overrides: Any):
    """A fresh inference scheduler: ``getattr(diffusers, cls).from_config({**config, **overrides})``.

    ``scheduler_cls`` may also be a ``BackboneSpec`` (anything with ``scheduler_cls`` and
    ``scheduler_config`` attributes), in which case ``scheduler_config`` must be omitted.
    """
    if not isinstance(scheduler_cls, str) and hasattr(scheduler_cls, "scheduler_cls"):
        spec = scheduler_cls
        scheduler_cls, scheduler_config = spec.scheduler_cls, dict(spec.scheduler_config)
    return instantiate_scheduler(scheduler_cls, scheduler_config, **overrides)


def _accepts(fn: Callable, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@torch.no_grad()
def sample_latents(
    denoise: Denoise,
    scheduler: Any,
    shape: Sequence[int],
    cond: dict[str, Any],
    uncond: dict[str, Any] | None = None,
    guidance: Guidance | None = None,
    num_steps: int = 50,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    latents: torch.Tensor | None = None,
    step_kwargs: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Run ``num_steps`` of ``scheduler`` from pure noise and return the final latents.

    ``x_T = randn(shape, generator) * scheduler.init_noise_sigma`` (or ``latents`` if given),
    then for each ``t`` in ``scheduler.timesteps``: ``scale_model_input`` -> ``guidance(denoise,
    x_in, t[B], cond, uncond)`` -> ``scheduler.step(out, t, x, generator=...)``.  The model
    receives ``t`` as a ``[B]`` tensor of the scheduler's timestep dtype (long for DDIM, float
    ``sigma * T`` for FlowMatchEuler, long for UniPC).  ``callback(i, t, x)`` is called after
    every step.  ``step_kwargs`` (e.g. ``{"eta": 0.0}``) are passed to ``scheduler.step``.
    """
    guidance = guidance if guidance is not None else NoGuidance()
    device = torch.device(device)
    step_kwargs = dict(step_kwargs or {})
    scheduler.set_timesteps(num_steps, device=device)
    timesteps = scheduler.timesteps

    if latents is None:
        x = randn_tensor(tuple(shape), generator=generator, device=device, dtype=dtype)
        x = x * getattr(scheduler, "init_noise_sigma", 1.0)
    else:
        x = latents.to(device=device, dtype=dtype)
    batch = x.shape[0]

    is_cogvideox_dpm = isinstance(scheduler, diffusers.CogVideoXDPMScheduler)
    if generator is not None and _accepts(scheduler.step, "generator"):
        step_kwargs.setdefault("generator", generator)
    has_scale = hasattr(scheduler, "scale_model_input")
    old_pred_x0 = None

    for i, t in enumerate(timesteps):
        x_in = scheduler.scale_model_input(x, t) if has_scale else x
        t_batch = t.reshape(()).expand(batch).to(device)
        out = guidance(denoise, x_in, t_batch, cond, uncond).to(x.dtype)
        if is_cogvideox_dpm:  # same call as diffusers' CogVideoX pipelines
            t_back = timesteps[i - 1] if i > 0 else None
            x, old_pred_x0 = scheduler.step(out, old_pred_x0, t, t_back, x, return_dict=False, **step_kwargs)
        else:
            x = scheduler.step(out, t, x, return_dict=False, **step_kwargs)[0]
        x = x.to(dtype)
        if callback is not None:
            callback(i, t, x)
    return x


sample_video = sample_latents  # name used in docs/architecture.md
