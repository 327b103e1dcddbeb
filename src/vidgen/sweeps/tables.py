"""How a sweep file joins a paper table: which parameter picks the row, and which metric is which.

A sweep file must stay a plain W&B sweep configuration: the W&B sweep schema has
`additionalProperties: false` at the top level, so an extra key (`metadata:`) makes `wandb sweep`
print "Malformed sweep config detected!". The link therefore lives here, keyed by the sweep's
`name` (`<paper>/<table>_<slug>`, e.g. `jdm/table3_mask_quality`):

- `row_param`: the sweep parameter whose values are the table's rows (a `variant` or an `exp`);
  `rows` maps each of its values to the row label in the reference YAML (src/vidgen/reference/).
- `metrics`: each column of the paper's table -> the key this project writes into summary.json /
  the W&B summary (`eval/mask_iou`, `profile/method_params`, `vbench/color` ...) and the factor
  `scale` that turns our value into the paper's unit. A metric that training does not compute
  names its `evaluator` and `how` to bring its results in (docs/sweeps.md, "External metrics").

`vidgen sweep validate` checks that the sweep's row parameter has exactly these values, that every
row and metric exists in the reference, and that every run's overrides compose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VBENCH_HOW = (
    "run VBench (https://github.com/Vchitect/VBench) on the run's samples and write "
    "<run.dir>/external/vbench.json (docs/sweeps.md, 'External metrics')"
)


@dataclass(frozen=True)
class Metric:
    paper: str  # column name in the reference table (or a figure's plotted quantity)
    key: str  # our key in summary.json / the W&B summary
    scale: float = 1.0  # ours * scale is in the paper's unit
    evaluator: str = "vidgen"  # who computes it: "vidgen" (training/profile) or an external tool
    how: str = ""  # how to obtain it when it is missing
    digits: int = 4


@dataclass(frozen=True)
class TableSpec:
    paper: str
    table: str
    row_param: str
    rows: dict[str, str]  # row_param value -> reference row label
    metrics: tuple[Metric, ...]
    source: str = "train"  # "train": vidgen.train runs; "profile": vidgen.sweeps.profile_run
    curves: tuple[str, ...] = ()  # eval.csv / history keys plotted against the step (figures)
    extra_rows: tuple[str, ...] = ()  # row labels of ours that the paper's table does not have (controls)
    notes: tuple[str, ...] = field(default_factory=tuple)  # protocol differences, shown in the report


def _vbench(paper_name: str, dim: str) -> Metric:
    return Metric(paper_name, f"vbench/{dim}", scale=100.0, evaluator="VBench", how=VBENCH_HOW, digits=2)


_T1_DIMS = {
    "Multiple Object": "multiple_objects",
    "Object Class": "object_class",
    "Color": "color",
    "Scene": "scene",
    "Human Action": "human_action",
    "Spatial Relation": "spatial_relationship",
    "Overall Consistency": "overall_consistency",
    "Appearance Style": "appearance_style",
    "Temporal Flickering": "temporal_flickering",
    "Motion Smoothness": "motion_smoothness",
    "Dynamic Degree": "dynamic_degree",
    "Aesthetic Quality": "aesthetic_quality",
    "Subject Consistency": "subject_consistency",
    "Background Consistency": "background_consistency",
    "Imaging Quality": "imaging_quality",
    "Temporal Style": "temporal_style",
}
_T5_DIMS = {
    "Mul Obj": "multiple_objects",
    "Obj Class": "object_class",
    "Color": "color",
    "Scene": "scene",
    "Human Action": "human_action",
    "Consistency": "overall_consistency",
    "Spatial Rel": "spatial_relationship",
}
T2VCOMPBENCH_HOW = (
    "run T2V-CompBench (https://github.com/KaiyueSun98/T2V-CompBench) on the run's samples and write "
    "<run.dir>/external/t2v-compbench.json with keys consistent_attribute_binding, motion_binding, "
    "action_binding (docs/sweeps.md, 'External metrics')"
)
_FT_MODELSCOPE = "ModelScope fine-tuned without JDM (control, not in the paper)"
_FT_COGVIDEOX = "CogVideoX-2B fine-tuned without JDM (control, not in the paper)"


def _t2vcompbench(paper_name: str, key: str) -> Metric:
    return Metric(paper_name, f"t2v-compbench/{key}", evaluator="T2V-CompBench", how=T2VCOMPBENCH_HOW)


_MASK = (
    Metric("IoU", "eval/mask_iou"),
    Metric("F1", "eval/mask_f1"),
    Metric("Pixel Acc", "eval/mask_pixel_acc"),
)
_GPU_TIME_HOW = (
    "forward time is measured with CUDA events only: rerun the sweep on a GPU with "
    "`-- profile.time=true` (or record benchmarks/ results with the GPU's name)"
)

TABLES: dict[str, TableSpec] = {
    "jdm/table1_vbench": TableSpec(
        paper="jdm",
        table="table1",
        row_param="exp",
        rows={
            "base_modelscope": "ModelScope",
            "jdm_modelscope": "ModelScope +JDM",
            "base_cogvideox": "CogVideoX-2B",
            "jdm_cogvideox": "CogVideoX-2B +JDM",
            "ft_modelscope": _FT_MODELSCOPE,
            "ft_cogvideox": _FT_COGVIDEOX,
        },
        extra_rows=(_FT_MODELSCOPE, _FT_COGVIDEOX),
        metrics=tuple(_vbench(k, v) for k, v in _T1_DIMS.items()),
        notes=(
            "'Without JDM' rows, as in the paper: the released base models evaluated zero-shot "
            "(base_*: train.max_steps=0). The fine-tuned rows (ft_*) are our extra control, not in the paper.",
        ),
    ),
    "jdm/table2_t2vcompbench": TableSpec(
        paper="jdm",
        table="table2",
        row_param="exp",
        rows={
            "base_modelscope": "ModelScopeT2V",
            "jdm_modelscope": "ModelScopeT2V +JDM",
            "base_cogvideox": "CogVideoX-2B",
            "jdm_cogvideox": "CogVideoX-2B +JDM",
            "ft_modelscope": _FT_MODELSCOPE,
            "ft_cogvideox": _FT_COGVIDEOX,
        },
        extra_rows=(_FT_MODELSCOPE, _FT_COGVIDEOX),
        metrics=(
            _t2vcompbench("Consist Attribute Binding", "consistent_attribute_binding"),
            _t2vcompbench("Motion Binding", "motion_binding"),
            _t2vcompbench("Action Binding", "action_binding"),
        ),
        notes=(
            "'Without JDM' rows: the released base models, zero-shot (base_*: train.max_steps=0). "
            "The fine-tuned rows (ft_*) are our extra control, not in the paper.",
        ),
    ),
    "jdm/table3_mask_quality": TableSpec(
        paper="jdm",
        table="table3",
        row_param="exp",
        rows={"jdm_modelscope": "ModelScopeT2V+JDM", "jdm_cogvideox": "CogVideoX-2B+JDM"},
        metrics=_MASK,
        notes=(
            "As the paper: the jointly generated mask vs. a segmentation of the generated video, "
            "method.eval_samples (100) prompts of method.eval_prompts, sample.steps (50) steps. The "
            "segmentation is the shapes world's exact segmenter, or on real data the folder "
            "method.eval_reference_masks written by an external segmenter (the paper: first-frame masks "
            "propagated by Grounded-SAM2) from the videos of method.eval_videos.",
        ),
    ),
    "jdm/table5_regional_signal": TableSpec(
        paper="jdm",
        table="table5",
        row_param="variant",
        rows={"jdm_mask": "JDM-Mask", "jdm_hed": "JDM-HED", "jdm_depth": "JDM-Depth"},
        metrics=tuple(_vbench(k, v) for k, v in _T5_DIMS.items()),
    ),
    "jdm/fig4_jdm_vs_finetune": TableSpec(
        paper="jdm",
        table="fig4",
        row_param="exp",
        rows={"ft_cogvideox": "Direct fine-tuning", "jdm_cogvideox": "JDM"},
        metrics=(
            _vbench("Multiple Object", "multiple_objects"),
            _vbench("Object Class", "object_class"),
            _vbench("Color", "color"),
            _vbench("Scene", "scene"),
            _vbench("Spatial Relation", "spatial_relationship"),
            _vbench("Overall Consistency", "overall_consistency"),
            Metric("Mask IoU", "eval/mask_iou", how="only JDM generates masks; direct fine-tuning has none"),
            Metric("train loss", "train/loss"),
        ),
        curves=(
            "vbench/multiple_objects",
            "vbench/object_class",
            "vbench/color",
            "vbench/scene",
            "vbench/spatial_relationship",
            "vbench/overall_consistency",
            "eval/mask_iou",
            "train/loss",
        ),
        notes=(
            "Figure only: the paper prints curves, no numbers. The base model is not stated; we use "
            "CogVideoX-2B. Evaluation every 500 steps (train.eval_every=500).",
        ),
    ),
    "jdm/table6_overhead": TableSpec(
        paper="jdm",
        table="table6",
        row_param="exp",
        rows={"jdm_cogvideox": "CogVideoX", "jdm_modelscope": "ModelScope"},
        source="profile",
        metrics=(
            Metric("Params (B) original", "profile/backbone_params", scale=1e-9),
            Metric("Params (B) JDM", "profile/method_params", scale=1e-9),
            Metric(
                "Forward time (s) original",
                "profile/backbone_fwd_ms",
                scale=1e-3,
                evaluator="vidgen profile --time (CUDA)",
                how=_GPU_TIME_HOW,
            ),
            Metric(
                "Forward time (s) JDM",
                "profile/method_fwd_ms",
                scale=1e-3,
                evaluator="vidgen profile --time (CUDA)",
                how=_GPU_TIME_HOW,
            ),
        ),
        notes=(
            "Produced by `vidgen profile` (meta-device parameter and FLOP counts at the paper's resolution, "
            "batch 1), not by training; forward times need a GPU (paper: one A100).",
        ),
    ),
}


from vidgen.sweeps.tables_instancev import TABLES as _INSTANCEV  # noqa: E402  (imports the classes above)

TABLES.update(_INSTANCEV)


def table_spec(sweep_name: str) -> TableSpec | None:
    return TABLES.get(sweep_name)


# Papers' tables kept in their own modules (imported last: they use Metric / TableSpec above).
from vidgen.sweeps.tables_stiv import STIV_TABLES  # noqa: E402

TABLES.update(STIV_TABLES)

from vidgen.sweeps.tables_ingredients import INGREDIENTS_TABLES  # noqa: E402

TABLES.update(INGREDIENTS_TABLES)

from vidgen.sweeps.tables_instancediffusion import TABLES as _INSTANCEDIFFUSION  # noqa: E402

TABLES.update(_INSTANCEDIFFUSION)
