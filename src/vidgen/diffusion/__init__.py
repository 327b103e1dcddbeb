"""Diffusion objectives, timestep sampling, loss weights, sampler loop and guidance.

LR schedules and optimizers live in :mod:`vidgen.optim`.
"""

from vidgen.diffusion.guidance import (
    CFG,
    Guidance,
    NoGuidance,
    list_guidance,
    make_guidance,
    register_guidance,
)
from vidgen.diffusion.objectives import (
    OBJECTIVE_KINDS,
    DDPMObjective,
    FlowObjective,
    Objective,
    instantiate_scheduler,
    make_objective,
    objective_from_spec,
)
from vidgen.diffusion.sampler import make_scheduler, sample_latents, sample_video
from vidgen.diffusion.timesteps import (
    LOSS_WEIGHTINGS,
    TIMESTEP_SAMPLINGS,
    min_snr_weight,
    sample_unit,
    shift_sigma,
)

__all__ = [
    "CFG",
    "DDPMObjective",
    "FlowObjective",
    "Guidance",
    "LOSS_WEIGHTINGS",
    "NoGuidance",
    "OBJECTIVE_KINDS",
    "Objective",
    "TIMESTEP_SAMPLINGS",
    "instantiate_scheduler",
    "list_guidance",
    "make_guidance",
    "make_objective",
    "make_scheduler",
    "min_snr_weight",
    "objective_from_spec",
    "register_guidance",
    "sample_latents",
    "sample_unit",
    "sample_video",
    "shift_sigma",
]
