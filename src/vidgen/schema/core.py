"""Sections every run has, whatever its groups: run, objective, train, sample, backbone, logger, trainer.

The root model, `VidgenConfig`, lists the top-level keys; the group sections whose keys depend on
the chosen option (method, data, optim, schedule, strategy) are in `groups.py` and `methods.py`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from vidgen.schema.base import Section, Text
from vidgen.schema.trainer import PASS_THROUGH, PRECISIONS


class Run(Section):
    root: Text = Field(description="a folder; runs go to <run.root>/<exp>/<run.name>")
    name: Text | None = Field(description="a folder name, or null to derive it from the overrides")
    dir: Text | None = Field(description="a folder path, or null for <run.root>/<exp>/<run.name>")
    # issue 8a (vidgen.run_config): optional until conf/train.yaml sets it
    accept_config_changes: bool | None = Field(None, description="true or false (resume with changed keys)")


class Objective(Section):
    """Keyword arguments of vidgen.diffusion.make_objective (the backbone fixes kind and scheduler)."""

    timestep_sampling: Literal["uniform", "logit_normal", "mode"] = Field(
        description="uniform, logit_normal or mode"
    )
    loss_weighting: Literal["none", "min_snr"] = Field(description="none or min_snr")
    logit_mean: float | None = Field(None, description="a number (logit_normal sampling), e.g. 0.0")
    logit_std: float | None = Field(None, gt=0, description="a number > 0 (logit_normal sampling), e.g. 1.0")
    mode_scale: float | None = Field(None, description="a number (mode sampling), e.g. 1.29")
    min_snr_gamma: float | None = Field(None, gt=0, description="a number > 0 (min_snr weighting), e.g. 5.0")
    shift: float | None = Field(None, gt=0, description="a number > 0 (flow objectives' timestep shift)")


class Ema(Section):
    enabled: bool = Field(description="true or false")
    decay: float = Field(gt=0, lt=1, description="a number in (0, 1), e.g. 0.9999")
    update_every: int = Field(ge=1, description="an integer >= 1 (optimizer steps between EMA updates)")


class Train(Section):
    global_batch_size: int = Field(ge=1, description="an integer >= 1 (samples per optimizer step)")
    micro_batch_size: int | None = Field(
        ge=1,
        description="an integer >= 1 (samples per forward pass and rank), or null to split the global batch",
    )
    max_steps: int = Field(
        ge=0, description="an integer >= 0 (optimizer steps; 0 = evaluate only), e.g. 1000"
    )
    grad_clip: float = Field(ge=0, description="a number >= 0 (max gradient norm; 0 disables clipping)")
    cfg_dropout: float = Field(ge=0, le=1, description="a probability in [0, 1], e.g. 0.1")
    checkpoint_every: int = Field(ge=1, description="an integer >= 1 (steps between periodic checkpoints)")
    log_every: int = Field(ge=1, description="an integer >= 1 (steps between logged rows)")
    eval_every: int = Field(
        ge=0, description="an integer >= 0 (steps between evaluations; 0 = only at the end)"
    )
    eval_at_end: bool = Field(description="true or false")
    ema: Ema


class Sample(Section):
    ckpt: Text | None = Field(description="a checkpoint path, or null for the run folder's last.ckpt")
    prompt: Text = Field(description="the text prompt")
    negative_prompt: Text = Field(description='the negative prompt ("" for none)')
    out: Text | None = Field(description="an output .mp4 path, or null for <run.dir>/samples/")
    overwrite: bool | None = Field(
        None, description="true or false (replace an existing out= file)"
    )  # issue 8a
    steps: int = Field(ge=1, description="an integer >= 1 (sampler steps), e.g. 50")
    guidance: Text = Field(description="a registered guidance name, e.g. cfg")
    guidance_scale: float = Field(ge=0, description="a number >= 0, e.g. 6.0")
    seed: int = Field(ge=0, description="an integer >= 0")
    instances: Text | None = Field(None, description="a layout .json path (instance prompts + boxes), or null")
    draw_layout: bool = Field(False, description="true or false (draw the layout's boxes over the clip)")
    ids: list[Text] | None = Field(None, description="a list of reference face images [a.png, b.png], or null")
    routing_maps: bool = Field(False, description="true or false (with ids=: <clip>.routing.png)")
    # issue 15: conditioning frames (STIV TI2V / V2V / TUP)
    image: Text | None = Field(None, description="an image file of the video's size, or null")
    video: Text | None = Field(None, description="a video file of the video's size, or null")
    upsampler: Text | None = Field(None, description="a STIV-TUP run folder or checkpoint, or null")


class Backbone(Section):
    # The name is checked by get_backbone (importing the registry here would import torch/diffusers).
    name: Text = Field(description="a registered backbone (vidgen backbones)")
    size: Literal["real", "tiny"] = Field(description="real or tiny")
    weights: Text | None = Field(
        description="a local diffusers folder (or its transformer/ or unet/ subfolder), or null"
    )
    init: Literal["pretrained", "random"] = Field(description="pretrained or random")
    gradient_checkpointing: bool = Field(description="true or false")
    # issue 18 (demo): constructor kwargs over the tiny config; optional until conf/backbone/ sets it
    tiny_config: dict[str, Any] | None = Field(None, description="a mapping of constructor kwargs, e.g. {}")


class Wandb(Section):
    enabled: bool = Field(description="true or false")
    online: bool = Field(description="true or false (false: offline, `wandb sync` later)")
    project: Text = Field(description="a W&B project name")
    entity: Text | None = Field(description="a W&B entity, or null for the default")
    tags: list[Text] = Field(description="a list of tags, e.g. [a,b]")


class Logger(Section):
    wandb: Wandb


class Trainer(Section):
    """`trainer.*`: what vidgen reads, plus the Lightning Trainer arguments it passes through
    unchanged (`vidgen.schema.trainer.PASS_THROUGH`, optional, set with `+trainer.KEY=VALUE`)."""

    accelerator: Literal["auto", "cpu", "gpu"] = Field(description="auto, cpu or gpu")
    devices: Any = Field(description="auto, an integer >= 1, or a list of device indices, e.g. [0,1]")
    num_nodes: int = Field(ge=1, description="an integer >= 1")
    precision: Literal[PRECISIONS] = Field(description=f"one of {', '.join(PRECISIONS)}")  # type: ignore[valid-type]
    deterministic: bool = Field(description="true or false")
    auto_requeue: bool | None = Field(
        None, description="true or false (SLURM requeue on SIGUSR1; default true)"
    )
    # Lightning Trainer arguments passed through as they are (PASS_THROUGH):
    benchmark: bool | None = Field(None, description="true or false (cudnn.benchmark)")
    detect_anomaly: bool | None = Field(None, description="true or false (torch.autograd anomaly detection)")
    profiler: Literal["simple", "advanced", "pytorch"] | None = Field(
        None, description="simple, advanced or pytorch"
    )
    sync_batchnorm: bool | None = Field(None, description="true or false")

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        if isinstance(value, list) and value and all(isinstance(v, int) and v >= 0 for v in value):
            return value
        raise ValueError("not a device setting")


assert set(PASS_THROUGH) <= set(Trainer.model_fields)


class VidgenConfig(Section):
    """The whole composed config. Group sections (dicts here) are checked by the section of their
    chosen option (`groups.GROUP_SECTIONS`, `methods.METHOD_SECTIONS`)."""

    exp_name: Text = Field(description="the experiment name (set from exp=)")
    seed: int = Field(ge=0, description="an integer >= 0")
    run: Run
    objective: Objective
    train: Train
    sample: Sample
    backbone: Backbone
    logger: Logger
    trainer: Trainer
    method: dict[str, Any]
    data: dict[str, Any]
    optim: dict[str, Any]
    schedule: dict[str, Any]
    strategy: dict[str, Any]
