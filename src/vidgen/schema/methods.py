"""One section per method: `cfg.method` is checked by `METHOD_SECTIONS[cfg.method.name]`.

Adding a method (e.g. InstanceV): write its section next to the others,

    class InstanceVMethod(Section):
        name: Literal["instancev"]
        saug_scale: float = Field(ge=0, description="a number >= 0 (SAUG strength, Sec. 3.4)")

then `METHOD_SECTIONS["instancev"] = InstanceVMethod`. Every key of conf/method/<name>.yaml
needs a field (tests/test_config_schema.py composes every method and fails otherwise).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vidgen.schema.base import Section, Text


class FinetuneMethod(Section):
    name: Literal["finetune"]


class JDMMethod(Section):
    """conf/method/jdm.yaml (JDM Sec. 3.3, Table 5)."""

    name: Literal["jdm"]
    signal: Literal["mask", "hed", "depth"] = Field(description="mask, hed or depth (Table 5)")
    combinations: Literal["fresh", "pool"] = Field(
        description="fresh (a new region subset every step, Fig. 2) or pool (K precomputed per clip)"
    )
    subset_sampling: Literal["uniform", "size_first"] = Field(description="uniform or size_first")
    num_combinations: int = Field(ge=1, description="an integer >= 1 (K mask-caption combinations per clip)")
    max_objects_per_combination: int | None = Field(ge=1, description="an integer >= 1, or null (no cap)")
    loss_w: float = Field(ge=0, description="a number >= 0 (w of w' = w * exp(-alpha * I_bar))")
    loss_alpha: float = Field(ge=0, description="a number >= 0 (alpha)")
    dynamic_weighting: bool = Field(description="true or false (Eq. 13 CMI weighting)")
    l_diff: Literal["video", "joint"] = Field(description="video (Eq. 3 as printed) or joint")
    estimator: Literal["one_pass", "two_pass"] = Field(description="one_pass or two_pass")
    cmi_file: Text | None = Field(description="the file of `vidgen jdm cmi`, or null (the data's)")
    eval_samples: int | None = Field(ge=0, description="an integer >= 0 (prompts evaluated), or null")
    eval_prompts: Text | None = Field(description="a prompt file (one per line), or null")
    eval_steps: int | None = Field(
        ge=1, description="an integer >= 1 (sampler steps of the evaluation), or null"
    )
    eval_reference_masks: Text | None = Field(description="a folder of reference segmentations, or null")
    eval_videos: Text | None = Field(description="a folder to write the generated videos to, or null")
    mask_threshold: float = Field(description="a number (the decoded mask is RGB mean > threshold)")


class STIVInit(Section):
    from_: Text | None = Field(None, alias="from", description="a run folder (progressive init), or null")
    temporal_from: Text | None = Field(
        None, description="a run folder whose temporal attention is used, or null"
    )


class STIVMethod(Section):
    """conf/method/stiv.yaml (STIV Sec. 2, A.1, D); `arch` is checked by STIVDiT's signature."""

    name: Literal["stiv"]
    task: Literal["t2i", "t2v"] = Field(description="t2i or t2v")
    objective: Literal["flow", "ddpm_eps"] = Field(
        description="flow (Eq. 1-2) or ddpm_eps (Table 2 baseline)"
    )
    arch: dict = Field(description="STIVDiT constructor overrides, e.g. {qk_norm: false}")
    spatial_mask_ratio: float = Field(ge=0, lt=1, description="a number in [0, 1) (MaskDiT)")
    temporal_mask_ratio: float = Field(ge=0, lt=1, description="a number in [0, 1)")
    mask_steps: int | None = Field(ge=0, description="an integer >= 0, or null (masked throughout)")
    mae_loss_weight: float = Field(ge=0, description="a number >= 0")
    cfg_renorm: bool = Field(description="true or false (Sec. D)")
    renorm_granularity: Literal["sample", "token"] = Field(description="sample or token")
    init: STIVInit = Field(description="{from: RUN_DIR, temporal_from: RUN_DIR}")
    # issue 15 (STIV part 2)
    condition_frames: list[int] | Text = Field(
        description='a list of latent frame indices (e.g. [0]) or "stride:N" (every N-th frame)'
    )
    frame_replacement: bool = Field(description="true or false (Table 5 FR)")
    image_dropout: float = Field(ge=0, le=1, description="a number in [0, 1] (Sec. E: 0.08)")
    guidance_drop: Literal["joint", "text", "image"] = Field(description="joint, text or image (JIT-CFG)")


class InstanceVClipModels(Section):
    clip_b: Text | None = Field(description="a local CLIP ViT-B/32 folder, or null (skipped)")
    clip_l: Text | None = Field(description="a local CLIP ViT-L/14 folder, or null (skipped)")


class InstanceVMethod(Section):
    """conf/method/instancev.yaml of issue 11 (InstanceV Sec. 4, Table 3); keep in step with it."""

    name: Literal["instancev"]
    imca: bool = Field(description="true or false (Eq. 4, Table 3 +IMCA)")
    stape: bool = Field(description="true or false (Eq. 6, Table 3 +STAPE)")
    saug: bool = Field(description="true or false (Eq. 7, Table 3 +SAUG)")
    saug_caption: Literal["drop", "keep"] = Field(
        "drop", description="drop or keep (the caption in SAUG's unconditional pass)"
    )
    max_instances: int = Field(ge=1, description="an integer >= 1")
    instance_text_len: int | None = Field(
        ge=1, description="an integer >= 1, or null for the data's text length"
    )
    grounding: Literal["box", "mask"] = Field(description="box or mask")
    mask_base: float | None = Field(gt=0, description="a number > 0 (Sec. 10.2, e.g. 0.1), or null")
    eval_samples: int = Field(ge=0, description="an integer >= 0")
    eval_steps: int = Field(ge=1, description="an integer >= 1")
    clip_models: InstanceVClipModels = Field(description="{clip_b: FOLDER|null, clip_l: FOLDER|null}")


class IngredientsInit(Section):
    from_: Text | None = Field(None, alias="from", description="stage 1's run folder (or a .ckpt), or null")
    dit: Literal["i2v", "t2v"] = Field("i2v", description="i2v or t2v (Table 2 initialisation)")
    t2v_weights: Text | None = Field(None, description="a CogVideoX-5B folder (init.dit=t2v), or null")


class IngredientsFaces(Section):
    size: Literal["real", "tiny"] = Field(description="real (local weights) or tiny (random-init twins)")
    recognition: Text | None = Field(description="a folder holding antelopev2's glintr100.onnx, or null")
    clip: Text | None = Field(description="a folder with the EVA02-CLIP-L-14-336 vision tower, or null")
    detector: Text | None = Field(description="a folder with SCRFD (antelopev2), or null (aligned crops)")


class IngredientsMethod(Section):
    """conf/method/ingredients.yaml (Ingredients Sec. 3-4, Tables 2-3); dims are checked by the modules."""

    name: Literal["ingredients"]
    stage: Literal[1, 2] = Field(description="1 (facial embedding alignment) or 2 (router fine-tuning)")
    init: IngredientsInit = Field(description="{from: RUN_DIR | null}")
    max_ids: int = Field(ge=1, description="an integer >= 1 (most reference IDs per clip)")
    faces: IngredientsFaces = Field(description="{size, recognition, clip}")
    projector: dict = Field(description="MultiScaleProjector sizes {dim, layers_per_scale, heads, ...}")
    injection: dict = Field(description="{interval: 1|2, heads, dim_head, scale, zero_init}")
    router: dict = Field(description="{mlp: bool, inner: int, sqrt_d: bool, mode: argmax|softmax}")
    routing_loss: Literal["ce", "mse", "none"] = Field(description="ce (Eq. 5), mse or none (Table 3)")
    routing_weight: float = Field(ge=0, description="a number >= 0 (lambda of Eq. 5)")
    labels: Literal["seg", "box"] = Field(description="seg or box (Table 2 router supervision)")
    lora: dict = Field(description="{rank, alpha, targets}")
    stage1_routing: Literal["router", "labels"] = Field(
        description="router (stage 1 routes with the router as built) or labels (face tokens by their ID label)"
    )
    face_dropout: bool = Field(description="true or false (stage-1 global/local/complete dropout)")
    composite: Literal["before", "after", "none"] = Field(
        description="before or after the VAE (Table 2), or none (zero image latent: diagnostic knob)"
    )
    eval_samples: int = Field(ge=0, description="an integer >= 0")
    eval_steps: int = Field(ge=0, description="an integer >= 0 (0: no generation in evaluate)")
    sampler: Literal["dpm", "cogvideox_dpm", "ddim"] = Field(
        description="dpm (DPM-Solver, Sec. 4.1), cogvideox_dpm (released code) or ddim"
    )
    tiny: dict = Field(description="section overrides used at backbone.size=tiny")


class GLIGENMethod(Section):
    """conf/method/gligen.yaml of issue 14 (GLIGEN, official-code-facts A)."""

    name: Literal["gligen"]
    max_boxes: int = Field(ge=1, le=30, description="an integer in [1, 30] (grounding slots)")
    phrase_pool: Literal["eos", "mean"] = Field(description="eos (CLIP pooled) or mean")
    token_dim: int | None = Field(ge=1, description="an integer >= 1, or null (768 real / tiny text width)")
    video_attention: Literal["frame", "joint"] = Field(description="frame (per latent frame) or joint (Wan)")
    visual_position: Literal["none", "sincos"] = Field(description="none (GLIGEN) or sincos (knob, sd1.5)")
    grounding_dropout: float = Field(ge=0, le=1, description="a number in [0, 1] (0.1: 10 % null grounding)")
    scheduled_tau: float = Field(ge=0, le=1, description="a number in [0, 1] (grounded share of steps)")
    eval_samples: int = Field(ge=0, description="an integer >= 0")
    eval_steps: int = Field(ge=1, description="an integer >= 1")


Format = Literal["box", "point", "scribble", "polygon", "seg"]


class InstanceDiffusionTiny(Section):
    token_dim: int | None = Field(None, ge=1, description="an integer >= 1")
    tokenizer_hidden: int | None = Field(None, ge=1, description="an integer >= 1")
    seg_resolution: int | None = Field(None, ge=32, description="an integer >= 32")


class InstanceDiffusionFreeU(Section):
    b1: float = Field(description="a number (FreeU backbone factor, stage 1)")
    b2: float = Field(description="a number (stage 2)")
    s1: float = Field(description="a number (FreeU skip factor, stage 1)")
    s2: float = Field(description="a number (stage 2)")


class InstanceDiffusionMethod(Section):
    """conf/method/instancediffusion.yaml (issue 14; InstanceDiffusion Tables 4-6)."""

    name: Literal["instancediffusion"]
    max_instances: int = Field(ge=1, description="an integer >= 1 (instance slots, 30)")
    token_dim: int = Field(ge=1, description="an integer >= 1 (grounding-token width, 768)")
    tokenizer_hidden: int = Field(ge=1, description="an integer >= 1 (tokenizer MLP width, 3072)")
    fourier_freqs: int = Field(ge=1, description="an integer >= 1 (16)")
    scribble_points: int = Field(ge=1, description="an integer >= 1 (20)")
    polygon_boundary_points: int = Field(ge=1, description="an integer >= 1 (128)")
    polygon_inside_points: int = Field(ge=0, description="an integer >= 0 (128; 0 = Table 6c polygons)")
    fusion: Literal["format_aware", "joint"] = Field(description="format_aware or joint (Table 5)")
    seg_tokens: int = Field(ge=0, description="0 or a square number (64; 0 = Table 6b w/o extra tokens)")
    seg_resolution: int = Field(ge=32, description="an integer >= 32 (512)")
    seg_encoder: Text | None = Field(description="a local ConvNeXt folder, or null (random init)")
    format_drop: float = Field(ge=0, le=1, description="a number in [0, 1] (0.1)")
    grounding_drop: float = Field(ge=0, le=1, description="a number in [0, 1] (0.1)")
    train_formats: list[Format] = Field(
        min_length=1, description="a list of box, point, scribble, polygon, seg"
    )
    inference_formats: list[Format] = Field(
        min_length=1, description="a list of box, point, scribble, polygon, seg"
    )
    mask_attn: bool = Field(description="true or false (Eq. 2 MaskAttn, Table 5)")
    mask_attn_containers: bool = Field(description="true or false")
    skip_feature: Literal["scaleu", "freeu", "none"] = Field(
        description="scaleu, freeu or none (Tables 5, 6a)"
    )
    scaleu_skip: Literal["channel", "scalar"] = Field(description="channel (paper) or scalar (released code)")
    scaleu_threshold: int = Field(ge=1, description="an integer >= 1 (1)")
    freeu: InstanceDiffusionFreeU = Field(description="{b1, b2, s1, s2}")
    instance_captions: bool = Field(description="true or false (Table 5 Inst. Cap.)")
    mis: float = Field(ge=0, le=1, description="a number in [0, 1] (0.36; 0 = Table 5 w/o MIS)")
    phrase_pool: Literal["eos", "mean"] = Field(description="eos or mean")
    tiny: InstanceDiffusionTiny = Field(description="{token_dim, tokenizer_hidden, seg_resolution}")
    eval_samples: int = Field(ge=0, description="an integer >= 0")
    eval_steps: int = Field(ge=1, description="an integer >= 1")


METHOD_SECTIONS: dict[str, type[Section]] = {
    "finetune": FinetuneMethod,
    "jdm": JDMMethod,
    "instancev": InstanceVMethod,  # issue 11
    "stiv": STIVMethod,  # issue 12
    "ingredients": IngredientsMethod,  # issue 13
    "gligen": GLIGENMethod,  # issue 14
    "instancediffusion": InstanceDiffusionMethod,  # issue 14
}
