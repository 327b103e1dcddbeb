"""InstanceV's table links (see ``vidgen.sweeps.tables``): Tables 1, 2, 3 and Fig. 5."""

from __future__ import annotations

from vidgen.sweeps.tables import _GPU_TIME_HOW, VBENCH_HOW, Metric, TableSpec

_CLIP_HOW = (
    "instance CLIP-Score needs local CLIP ViT-B/32 / ViT-L/14 folders: vidgen eval RUN eval.metrics=instance_clip "
    "eval.instance_clip.clip_b=PATH eval.instance_clip.clip_l=PATH (shapes world), or train with "
    "method.clip_models.clip_b=PATH method.clip_models.clip_l=PATH, or write <run.dir>/external/instancebench.json"
)
_GENERAL_HOW = (
    "vidgen eval RUN suite=shapes eval.metrics=fvd,clip_score eval.fvd.i3d=I3D.pt eval.clip=CLIP_DIR "
    "eval.keys=fvd:general/fvd,clip_score:general/clip_b (or write <run.dir>/external/general.json)"
)
_TEMPORAL = Metric("Temporal", "vbench/motion_smoothness", evaluator="VBench", how=VBENCH_HOW)
_SHAPES_NOTE = (
    "Instance IoU: ours detects each instance by its prompt with the shapes world's exact detector (boxes "
    "matched by label), the paper with a detector on real videos; on real data bring detections in externally."
)


def _clip(paper: str, key: str) -> Metric:
    return Metric(paper, key, evaluator="InstanceBench CLIP", how=_CLIP_HOW)


TABLES: dict[str, TableSpec] = {
    "instancev/table1_overhead": TableSpec(
        paper="instancev",
        table="table1",
        row_param="exp",
        rows={
            "instancev_wan": "InstanceV (ours)",
            "gligen_sd15": "GLIGEN",  # issue 14: GLIGEN on its own SD1.5 U-Net
            "gligen_wan": "GLIGEN on Wan2.1-1.3B",
            "instancediffusion_sd15": "InstanceDiffusion",  # issue 14: on its own SD1.5 U-Net
            "instancediffusion_wan": "InstanceDiffusion on Wan2.1-1.3B",
        },
        extra_rows=("GLIGEN on Wan2.1-1.3B", "InstanceDiffusion on Wan2.1-1.3B"),
        source="profile",
        metrics=(
            Metric("FLOPS %", "profile/fwd_flops_pct", digits=2),
            Metric("Params %", "profile/params_pct", digits=2),
            Metric(
                "Time Cost %",
                "profile/fwd_time_pct",
                evaluator="vidgen profile --time (CUDA)",
                how=_GPU_TIME_HOW,
                digits=2,
            ),
        ),
        notes=(
            "Ours projects the instance tokens to keys / values once per forward and shares them over the "
            "21 latent frames; projecting them per frame adds 5.12 pp of FLOPs (benchmarks/instancev_overhead.py).",
            "GLIGEN on SD1.5 (512x512): +24.33 % params (paper +26.13 %), +41.53 % FLOPs; on Wan2.1-1.3B per "
            "frame +82.55 % / +29.82 %, with method.video_attention=joint +82.55 % / +98.97 % (paper +102.79 %): "
            "the paper's FLOPs match a joint gated attention on Wan, its params GLIGEN's SD U-Net "
            "(docs/methods/gligen.md).",
            "InstanceDiffusion on SD1.5 (512x512, 5 instances): the released seg branch feeds 64 x 3072 (a reshape "
            "of ConvNeXt-T's 768 x 16 x 16) to its MLP, ours 64 pooled x 768: 7.2M fewer parameters "
            "(docs/methods/instancediffusion.md).",
            "InstanceDiffusion on Wan2.1-1.3B (81x480x832, 5 instances, fusion per latent frame, no ScaleU: a DiT "
            "has no U-Net decoder): +96.06 % params, +31.68 % FLOPs; the paper's +42.94 % params match the SD1.5 "
            "port (+42.08 %), neither backbone's single forward reaches its +121.82 % FLOPs "
            "(docs/methods/instancediffusion.md).",
        ),
    ),
    "instancev/table2_instancebench": TableSpec(
        paper="instancev",
        table="table2",
        row_param="exp",
        rows={"instancev_wan": "InstanceV 480P", "instancev_wan14b": "InstanceV 720P"},
        metrics=(
            Metric("FVD", "general/fvd", evaluator="FVD (local I3D)", how=_GENERAL_HOW, digits=2),
            _TEMPORAL,
            Metric("CLIP-B", "general/clip_b", evaluator="CLIP-Score (local CLIP)", how=_GENERAL_HOW),
            Metric("CLIP-L", "general/clip_l", evaluator="CLIP-Score (local CLIP)", how=_GENERAL_HOW),
            Metric("AW IoU%", "eval/layout_iou_aw"),
            _clip("AW CLIP-B", "eval/instancebench/clip_b_aw"),
            _clip("AW CLIP-L", "eval/instancebench/clip_l_aw"),
            Metric("Mean IoU%", "eval/layout_iou"),
            _clip("Mean CLIP-B", "eval/instancebench/clip_b"),
            _clip("Mean CLIP-L", "eval/instancebench/clip_l"),
        ),
        notes=(_SHAPES_NOTE, "IoU columns are fractions, as printed in the paper."),
    ),
    "instancev/table3_ablation": TableSpec(
        paper="instancev",
        table="table3",
        row_param="variant",
        rows={
            "instancev/backbone": "Backbone",
            "instancev/imca": "+IMCA",
            "instancev/imca_stape": "+IMCA +STAPE",
            "instancev/full": "+IMCA +STAPE +SAUG (full InstanceV)",
        },
        metrics=(
            _TEMPORAL,
            Metric("AW IoU%", "eval/layout_iou_aw"),
            _clip("AW CLIP-B%", "eval/instancebench/clip_b_aw"),
            _clip("AW CLIP-L%", "eval/instancebench/clip_l_aw"),
        ),
        notes=(
            _SHAPES_NOTE,
            "The Backbone row trains nothing (train.max_steps=0, evaluate only; under preset=smoke its steps change nothing).",
        ),
    ),
    "instancev/fig5_cfg_scale": TableSpec(
        paper="instancev",
        table="fig5",
        row_param="variant",
        rows={"instancev/cfg5": "CFG 5 (default)", "instancev/cfg6": "CFG 6", "instancev/cfg7": "CFG 7"},
        metrics=(Metric("AW IoU", "eval/layout_iou_aw"), Metric("Mean IoU", "eval/layout_iou")),
        notes=("Figure only: the paper shows frames, no numbers; we report layout IoU per CFG scale.",),
    ),
}
