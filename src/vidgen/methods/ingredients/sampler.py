"""The inference scheduler of Ingredients sampling (Sec. 4.1: "DPM [35] with a total of 50 sampling
steps, and a text-guidance ratio of 6.0"), chosen by ``method.sampler``.

- ``dpm`` (default, the paper's reading: [35] is DPM-Solver): diffusers' ``DPMSolverMultistepScheduler``
  (its defaults: DPM-Solver++, 2nd order, lower-order final steps) built from the backbone's
  scheduler config (v-prediction, scaled-linear betas, zero terminal SNR, trailing spacing).
  That class has no ``snr_shift_scale``; CogVideoX-5B(-I2V) uses 1.0 (no shift), so nothing is lost
  there, and any other shift is refused rather than silently dropped.
- ``cogvideox_dpm``: ``CogVideoXDPMScheduler``, what the released inference code uses
  (official-code-facts C.4); the paper does not name it.
- ``ddim``: the backbone's own scheduler (``CogVideoXDDIMScheduler``), what Ingredients sampled with
  before this knob existed.
"""

from __future__ import annotations

import inspect

import diffusers

from vidgen.diffusion import make_scheduler
from vidgen.errors import ConfigError

SAMPLERS = ("dpm", "cogvideox_dpm", "ddim")


def make_sampler(kind: str, spec):
    """A fresh inference scheduler of kind ``kind`` (see the module docstring) for backbone ``spec``."""
    config = dict(spec.scheduler_config)
    if kind == "ddim":
        return make_scheduler(spec.scheduler_cls, config)
    if kind == "cogvideox_dpm":
        return make_scheduler("CogVideoXDPMScheduler", config)
    if kind != "dpm":
        raise ConfigError(f"method.sampler={kind!r} is not valid; use one of {', '.join(SAMPLERS)}")
    shift = float(config.get("snr_shift_scale", 1.0))
    if shift != 1.0:
        raise ConfigError(
            f"method.sampler=dpm: DPMSolverMultistepScheduler has no snr_shift_scale, but {spec.name}'s "
            f"scheduler uses {shift}. Fix: method.sampler=cogvideox_dpm (keeps the shift) or ddim"
        )
    accepted = inspect.signature(diffusers.DPMSolverMultistepScheduler.__init__).parameters
    # DDIM-only keys (set_alpha_to_one, clip_sample) have no DPM-Solver counterpart
    return make_scheduler("DPMSolverMultistepScheduler", {k: v for k, v in config.items() if k in accepted})
