"""Training FLOPs per stage of the progressive recipe (STIV App. J, Tables 14-15; unit 10^21).

Per stage: ``3 x forward FLOPs of one sample x batch x steps`` (forward + backward ~ 3 forwards),
the forward counted by ``torch.utils.flop_counter`` on the meta device for the stage's model, with
MaskDiT's kept tokens (App. J counts "the reduction in an effective number of tokens due to
masking") and only the DiT (the paper: "spatial-temporal computation in the transformer"; no VAE
or text encoder). Steps and batch are the ones the paper states (A.1: T2I 400k x 4096, T2V
400k x 1024); the paper does not give the steps of the controlled-FLOP stages of Tables 14-15, so
``implied_steps`` says how many steps of ours each printed number stands for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidgen.backbones import get_backbone
from vidgen.backbones.profiling import forward_flops
from vidgen.methods.stiv.masking import keep_count


@dataclass(frozen=True)
class Stage:
    task: str  # t2i | t2v
    frames: int
    resolution: int
    batch: int
    steps: int


STAGES = {
    "T2I-256": Stage("t2i", 1, 256, 4096, 400_000),
    "T2I-512": Stage("t2i", 1, 512, 4096, 400_000),
    "T2V-256": Stage("t2v", 20, 256, 1024, 400_000),
    "T2V-512": Stage("t2v", 20, 512, 1024, 400_000),
    "T2V-256-20": Stage("t2v", 20, 256, 1024, 400_000),
    "T2V-256-40": Stage("t2v", 40, 256, 1024, 400_000),
}
# Rows: the stage chain of each initialisation (Table 14: 512^2 models; Table 15: 40 frames).
TABLE14 = {
    "Scratch": ("T2V-512",),
    "T2V-256": ("T2I-256", "T2V-256", "T2V-512"),
    "T2I-512": ("T2I-256", "T2I-512", "T2V-512"),
    "Both": ("T2I-256", "T2V-256", "T2I-512", "T2V-512"),
}
TABLE15 = {
    "T2I": ("T2I-256", "T2V-256-40"),
    "T2V (int.)": ("T2I-256", "T2V-256-20", "T2V-256-40"),
    "T2V (ext.)": ("T2I-256", "T2V-256-20", "T2V-256-40"),
    "T2V 2x (int.)": ("T2I-256", "T2V-256-20", "T2V-256-40"),
}


def forward_flops_per_sample(stage: Stage, backbone: str = "stiv-xl", spatial_mask_ratio: float = 0.5) -> int:
    """Forward FLOPs of one training sample of ``stage`` (meta device, real size)."""
    spec = get_backbone(backbone)
    config = spec.config_for("real", stage.task)
    with torch.device("meta"):
        model = spec.model_cls(**config)
    c, f, h, w = spec.latent_shape(stage.frames, stage.resolution, stage.resolution)
    spatial = (h // config["patch_size"]) * (w // config["patch_size"])
    keep = keep_count(spatial, spatial_mask_ratio) if spatial_mask_ratio > 0 else None
    inputs = meta_inputs(stage, backbone, "real", keep)
    return forward_flops(model, inputs)


def stage_flops(stage: Stage, backbone: str = "stiv-xl", spatial_mask_ratio: float = 0.5) -> float:
    """Training FLOPs of a stage: 3 x forward x batch x steps."""
    return 3.0 * forward_flops_per_sample(stage, backbone, spatial_mask_ratio) * stage.batch * stage.steps


def paper_stages(table: str) -> dict[str, list[float]]:
    """The printed per-stage numbers (10^21) of Table 14 / 15, by row label."""
    from vidgen.reference import get_table

    rows = get_table("stiv", table)["rows"]
    return {
        r["label"]: [v for k, v in r["values"].items() if k.startswith("Stage") and v is not None]
        for r in rows
    }


def flops_table(table: str, backbone: str = "stiv-xl") -> list[dict]:
    """Rows of Table 14 (``table14``) or 15 (``table15``): ours per stage and total beside the paper's,
    and the steps of ours that each printed stage number corresponds to."""
    rows = TABLE14 if table == "table14" else TABLE15
    paper = paper_stages(table)
    per_stage = {
        name: stage_flops(STAGES[name], backbone) / 1e21 for name in {s for c in rows.values() for s in c}
    }
    out = []
    for row, chain in rows.items():
        ours = [round(per_stage[s], 3) for s in chain]
        printed = paper[row]
        implied = [round(v / per_stage[s] * STAGES[s].steps) for s, v in zip(chain, printed)]
        out.append(
            dict(
                row=row,
                stages=list(chain),
                ours=ours,
                ours_total=round(sum(ours), 3),
                paper=printed,
                paper_total=round(sum(printed), 2),
                implied_steps=implied,
            )
        )
    return out


def activation_bytes(model: torch.nn.Module, inputs: dict) -> int:
    """Bytes of the tensors autograd saves for the backward pass of ``model(**inputs)`` (the
    activation memory of a training step, without checkpointing); works on the meta device."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if not isinstance(t, torch.nn.Parameter):
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**inputs)
    return total


def meta_inputs(stage: Stage, backbone: str = "stiv-xl", size: str = "real", keep: int | None = None) -> dict:
    """Meta-device inputs of one sample of ``stage`` (``keep``: MaskDiT's kept spatial tokens)."""
    spec = get_backbone(backbone)
    dev = torch.device("meta")
    c, f, h, w = spec.latent_shape(stage.frames, stage.resolution, stage.resolution)
    text_len, text_dim = spec.text_len_for(size), spec.text_dim_for(size)
    inputs = dict(
        hidden_states=torch.empty(1, c, f, h, w, device=dev),
        timestep=torch.empty(1, device=dev),
        encoder_hidden_states=torch.empty(1, text_len, text_dim, device=dev),
        encoder_attention_mask=torch.ones(1, text_len, dtype=torch.bool, device=dev),
        micro={
            "original_size": torch.empty(1, 2, device=dev),
            "crop": torch.empty(1, 2, device=dev),
            "stride": torch.empty(1, device=dev),
        },
    )
    if keep is not None:
        inputs["keep_spatial"] = torch.arange(keep, device=dev)[None]
    return inputs
