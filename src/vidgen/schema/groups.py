"""Sections of the groups whose keys depend on the chosen option: data, optim, schedule, strategy.

`GROUP_SECTIONS[group][name]` checks `cfg.<group>` when `cfg.<group>.name == name`. A new option
(conf/<group>/<name>.yaml) adds its section here; methods are in `methods.py`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from vidgen.schema.base import Section, Text

# -- data ---------------------------------------------------------------------------------------


class ShapesData(Section):
    name: Literal["shapes"]
    num_clips: int = Field(ge=1, description="an integer >= 1")
    frames: int | None = Field(ge=1, description="an integer >= 1, or null for the backbone's")
    height: int | None = Field(ge=1, description="an integer >= 1, or null for the backbone's")
    width: int | None = Field(ge=1, description="an integer >= 1, or null for the backbone's")
    max_instances: int = Field(ge=0, description="an integer >= 0")
    seed: int = Field(ge=0, description="an integer >= 0")
    num_workers: int = Field(ge=0, description="an integer >= 0 (DataLoader worker processes)")
    # issue 18 (demo): faces in the shapes world; optional until conf/data/shapes.yaml sets them
    face_prob: float | None = Field(None, ge=0, le=1, description="a probability in [0, 1]")
    min_faces: int | None = Field(None, ge=0, description="an integer >= 0")
    small_overlap: bool = Field(
        False,
        description="true or false (a small instance on a large one in every clip; needs max_instances 2-6)",
    )
    background_ramp: float = Field(
        0.0, ge=0, le=0.5, description="a number in [0, 0.5] (0: flat backgrounds; >0: a position ramp)"
    )


class ShardsData(Section):
    name: Literal["shards"]
    root: Text = Field(description="the --out folder of `vidgen precompute`")
    num_clips: int | None = Field(
        None, ge=1, description="an integer >= 1 (train on the first N samples), or null for all"
    )
    frames: int | None = Field(
        None, ge=1, description="an integer >= 1 (frames `vidgen sample` generates), or null"
    )
    height: int | None = Field(None, ge=1, description="an integer >= 1 (pixel height of samples), or null")
    width: int | None = Field(None, ge=1, description="an integer >= 1 (pixel width of samples), or null")
    text_encoder: Text | None = Field(description="a local text-encoder folder, or null")
    vae: Text | None = Field(description="a local VAE folder, or null")
    max_instances: int = Field(ge=0, description="an integer >= 0")
    seed: int = Field(ge=0, description="an integer >= 0")
    num_workers: int | None = Field(
        ge=0, description="an integer >= 0 (DataLoader worker processes), or null for min(4, CPUs)"
    )
    check: bool = Field(description="true or false (check every sample before training)")


# -- optim --------------------------------------------------------------------------------------


class AdamW(Section):
    name: Literal["adamw"]
    lr: float = Field(gt=0, description="a learning rate > 0, e.g. 1e-4")
    weight_decay: float = Field(ge=0, description="a number >= 0")
    betas: list[float] = Field(
        min_length=2, max_length=2, description="two numbers in [0, 1), e.g. [0.9,0.95]"
    )
    eps: float = Field(gt=0, description="a number > 0, e.g. 1e-8")
    no_decay_norm_bias: bool | None = Field(None, description="true or false")
    fused: bool | None = Field(None, description="true or false")

    @field_validator("betas")
    @classmethod
    def _betas(cls, betas: list[float]) -> list[float]:
        if not all(0 <= b < 1 for b in betas):
            raise ValueError("each beta must be in [0, 1)")
        return betas


class Adafactor(Section):
    name: Literal["adafactor"]
    lr: float = Field(gt=0, description="a learning rate > 0, e.g. 1e-4")
    weight_decay: float = Field(ge=0, description="a number >= 0")
    no_decay_norm_bias: bool | None = Field(None, description="true or false")
    beta1: float | None = Field(None, ge=0, lt=1, description="a number in [0, 1), or null (no first moment)")
    clip_threshold: float | None = Field(None, gt=0, description="a number > 0")
    decay_rate: float | None = Field(None, description="a number, e.g. -0.8")
    eps: list[float] | None = Field(
        None, min_length=2, max_length=2, description="two numbers, e.g. [1e-30,1e-3]"
    )


# -- schedule -----------------------------------------------------------------------------------

_WARMUP = Field(None, ge=0, description="an integer >= 0 (warm-up steps)")


class Constant(Section):
    name: Literal["constant"]
    warmup_steps: int | None = _WARMUP


class ConstantWithWarmup(Section):
    name: Literal["constant_with_warmup"]
    warmup_steps: int = Field(ge=0, description="an integer >= 0 (warm-up steps)")


class CosineWithRestarts(Section):
    name: Literal["cosine_with_restarts"]
    warmup_steps: int = Field(ge=0, description="an integer >= 0 (warm-up steps)")
    num_cycles: int = Field(ge=1, description="an integer >= 1")


class OneCycle(Section):
    name: Literal["onecycle"]
    warmup_steps: int | None = _WARMUP
    pct_start: float = Field(gt=0, lt=1, description="a fraction in (0, 1), e.g. 0.3")
    div_factor: float = Field(gt=0, description="a number > 0, e.g. 25")
    final_div_factor: float = Field(gt=0, description="a number > 0, e.g. 1e4")
    anneal_strategy: Literal["cos", "linear"] | None = Field(None, description="cos or linear")
    cycle_momentum: bool | None = Field(None, description="true or false")


class _Knots(Section):
    warmup_steps: int | None = _WARMUP
    knots: list[list[float]] = Field(
        description="[[step, lr], ...] with increasing steps, e.g. [[0,1e-5],[1000,5e-4]]"
    )

    @field_validator("knots")
    @classmethod
    def _knots(cls, knots: list[list[float]]) -> list[list[float]]:
        if not knots or any(len(k) != 2 or k[0] != int(k[0]) or k[1] < 0 for k in knots):
            raise ValueError("must be a non-empty list of [integer step, lr >= 0] pairs")
        if any(b[0] <= a[0] for a, b in zip(knots, knots[1:])):
            raise ValueError("steps must increase")
        return knots


class PiecewiseLinear(_Knots):
    name: Literal["piecewise_linear"]


class InstanceVStaged(_Knots):
    name: Literal["instancev_staged"]


# -- strategy -----------------------------------------------------------------------------------


class DDP(Section):
    name: Literal["ddp"]
    find_unused_parameters: bool = Field(description="true or false")


class Offload(Section):
    device: Literal["none", "cpu"] = Field(description="none or cpu")
    pin_memory: bool = Field(description="true or false")


class DeepSpeed(Section):
    name: Literal["deepspeed_zero2", "deepspeed_zero2_offload"]
    stage: Literal[2] = Field(description="2 (ZeRO stage 2)")
    overlap_comm: bool = Field(description="true or false")
    contiguous_gradients: bool = Field(description="true or false")
    reduce_scatter: bool = Field(description="true or false")
    reduce_bucket_size: int = Field(ge=1, description="an integer >= 1 (elements)")
    allgather_partitions: bool = Field(description="true or false")
    allgather_bucket_size: int = Field(ge=1, description="an integer >= 1 (elements)")
    offload_optimizer: Offload
    process_group_backend: Text | None = Field(description="a torch.distributed backend, or null (nccl)")
    steps_per_print: int | None = Field(None, ge=1, description="an integer >= 1")


GROUP_SECTIONS: dict[str, dict[str, type[Section]]] = {
    "data": {"shapes": ShapesData, "shards": ShardsData},
    "optim": {"adamw": AdamW, "adafactor": Adafactor},
    "schedule": {
        "constant": Constant,
        "constant_with_warmup": ConstantWithWarmup,
        "cosine_with_restarts": CosineWithRestarts,
        "onecycle": OneCycle,
        "piecewise_linear": PiecewiseLinear,
        "instancev_staged": InstanceVStaged,
    },
    "strategy": {"ddp": DDP, "deepspeed_zero2": DeepSpeed, "deepspeed_zero2_offload": DeepSpeed},
}
