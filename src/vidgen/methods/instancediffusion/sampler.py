"""Multi-instance sampler, "MIS" (InstanceDiffusion Fig. 5), registered as guidance ``mis``.

For the first ``fraction`` of the steps (0.36 in the released evaluation, 0.2 in its demos) every
input — the global one and one per instance, each with only its own grounding and its instance
caption as the prompt — is denoised on its own from the same starting noise, each with its own
scheduler state (multistep schedulers keep a history per input). Then the latents are averaged
and sampling continues from the mean with the global input and the global scheduler state.
Each of those per-step predictions uses CFG at ``scale`` (the unconditional branch is shared).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from vidgen.diffusion.guidance import CFG, Denoise, register_guidance


class MultiInstanceGuidance(CFG):
    """CFG per input plus the MIS fraction; alone (caption-only sampling) it is plain CFG."""

    def __init__(self, scale: float = 7.5, fraction: float = 0.36) -> None:
        super().__init__(scale)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"MIS fraction={fraction} must be in [0, 1]")
        self.fraction = float(fraction)

    def __repr__(self) -> str:
        return f"MultiInstanceGuidance(scale={self.scale}, fraction={self.fraction})"


register_guidance("mis", MultiInstanceGuidance)


def _step(scheduler, guidance, denoise, x: Tensor, t: Tensor, cond: dict, uncond: dict | None, gen) -> Tensor:
    x_in = scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x
    out = guidance(denoise, x_in, t.reshape(()).expand(x.shape[0]), cond, uncond).to(x.dtype)
    kwargs = (
        {"generator": gen}
        if gen is not None and "generator" in inspect.signature(scheduler.step).parameters
        else {}
    )
    return scheduler.step(out, t, x, return_dict=False, **kwargs)[0].to(x.dtype)


@torch.no_grad()
def sample_multi_instance(
    denoise: Denoise,
    scheduler: Any,
    shape: Sequence[int],
    cond: dict[str, Any],
    instance_conds: Sequence[dict[str, Any]],
    instance_valid: Tensor,
    uncond: dict[str, Any] | None,
    guidance: MultiInstanceGuidance,
    *,
    num_steps: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Latents [B, ...] sampled with MIS.

    cond: the global input; instance_conds[j]: instance slot j's input (its grounding only, its
    caption as the prompt) for the whole batch; instance_valid [B, N] bool: rows where slot j holds
    an instance (a row's mean runs over the global latent and its valid instances only).
    """
    device = torch.device(device)
    scheduler.set_timesteps(num_steps, device=device)
    x = randn_tensor(tuple(shape), generator=generator, device=device, dtype=torch.float32)
    x = x * getattr(scheduler, "init_noise_sigma", 1.0)
    mis_steps = int(num_steps * guidance.fraction)  # the released code: int(total_steps * mis)
    inputs = [cond, *instance_conds]
    states = [scheduler] + [copy.deepcopy(scheduler) for _ in instance_conds]
    xs = [x] * len(inputs)
    for i, t in enumerate(scheduler.timesteps):
        if i < mis_steps:
            xs = [
                _step(s, guidance, denoise, xj, t, c, uncond, generator)
                for s, xj, c in zip(states, xs, inputs)
            ]
            if i == mis_steps - 1:
                x = _merge(xs, instance_valid.to(device))
        else:
            x = _step(scheduler, guidance, denoise, x, t, cond, uncond, generator)
    return x


def _merge(xs: list[Tensor], valid: Tensor) -> Tensor:
    """mean(stack([x_global, x_inst_1, ...])) per row, over the global latent and valid instances."""
    stack = torch.stack(xs, dim=1)  # [B, 1 + N, ...]
    w = torch.cat([torch.ones_like(valid[:, :1]), valid[:, : len(xs) - 1]], dim=1).to(
        stack.dtype
    )  # [B, 1 + N]
    w = w.view(*w.shape, *[1] * (stack.ndim - 2))
    return (stack * w).sum(1) / w.sum(1)
