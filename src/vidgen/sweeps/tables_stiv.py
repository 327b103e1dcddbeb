"""STIV (part 1) tables joined to their sweeps: Tables 2, 3, 4, 16 and 17 (see tables.py for the format).

None of their metrics is computed during training: GenEval, DSG, ImageReward, COCO FID, VBench and
MSR-VTT FVD come from external evaluators, imported per run from ``<run.dir>/external/<tool>.json``.
"""

from __future__ import annotations

from vidgen.sweeps.tables import VBENCH_HOW, Metric, TableSpec

T2I_HOW = (
    "sample the run's T2I checkpoint on the benchmark's prompts with `vidgen sample`, score the images with {tool} "
    "and write <run.dir>/external/{key}.json (docs/sweeps.md, 'External metrics')"
)


def _ext(paper: str, tool: str, key: str, name: str, scale: float = 1.0, digits: int = 3) -> Metric:
    return Metric(
        paper,
        f"{key}/{name}",
        scale=scale,
        evaluator=tool,
        how=T2I_HOW.format(tool=tool, key=key),
        digits=digits,
    )


def _vbench(paper: str, dim: str) -> Metric:
    return Metric(paper, f"vbench/{dim}", scale=100.0, evaluator="VBench", how=VBENCH_HOW, digits=2)


_FVD = Metric(
    "MSRVTT FVD",
    "fvd/msrvtt",
    evaluator="FVD (MSR-VTT)",
    digits=2,
    how="compute FVD of the run's samples on MSR-VTT prompts against the MSR-VTT test videos and write "
    '<run.dir>/external/fvd.json with {"metrics": {"msrvtt": ...}}',
)
_VBENCH_QST = (
    _vbench("VBench Quality", "quality_score"),
    _vbench("VBench Semantic", "semantic_score"),
    _vbench("VBench Total", "total_score"),
)
_DIMS = {
    "Subject Cons.": "subject_consistency",
    "Background Cons.": "background_consistency",
    "Temporal Flickering": "temporal_flickering",
    "Motion Smoothness": "motion_smoothness",
    "Dynamic Degree": "dynamic_degree",
    "Aesthetic Quality": "aesthetic_quality",
    "Imaging Quality": "imaging_quality",
    "Object Class": "object_class",
    "Multiple Objects": "multiple_objects",
    "Human Action": "human_action",
    "Color": "color",
    "Spatial Relationship": "spatial_relationship",
    "Scene": "scene",
    "App. Style": "appearance_style",
    "Temp. Style": "temporal_style",
    "Overall Cons.": "overall_consistency",
}
_T2_ROWS = [
    ("00_baseline", "Baseline"),
    ("01_qk_norm", "+ QK norm"),
    ("02_sandwich_norm", "+ Sandwich norm"),
    ("03_cond_norm", "+ Cond. norm"),
    ("04_lr_2e-4", "+ LR to 2E-4"),
    ("05_flow", "+ Flow"),
    ("06_renorm", "+ Renorm"),
    ("07_adafactor", "+ AdaFactor"),
    ("08_maskdit", "+ MaskDiT"),
    ("09_shared_adaln", "+ Shared AdaLN"),
    ("10_micro_cond", "+ Micro cond."),
    ("11_rope", "+ RoPE"),
    ("12_internal_vae", "+ Internal VAE"),
    ("13_internal_clip", "+ Internal CLIP"),
    ("14_synth_captions", "+ Synth. captions"),
]
_INIT_512 = {
    "stiv/table4_scratch": "Scratch",
    "stiv/table4_t2v_256": "T2V-256",
    "stiv/table4_t2i_512": "T2I-512",
    "stiv/table4_both": "Both",
}
_INIT_NOTE = (
    "Each row's final stage runs the steps that the paper's Table 14/15 stage FLOPs buy at our per-step "
    "FLOPs (benchmarks/stiv_memory_flops.py); the earlier stages' run folders come from environment "
    "variables named in the variant files.",
)

STIV_TABLES: dict[str, TableSpec] = {
    "stiv/table2_t2i_ablation": TableSpec(
        paper="stiv",
        table="table2",
        row_param="variant",
        rows={f"stiv/table2_{slug}": label for slug, label in _T2_ROWS},
        metrics=(
            Metric(
                "COCO FID",
                "fid/coco",
                evaluator="FID (COCO)",
                digits=2,
                how=T2I_HOW.format(
                    tool="an FID implementation (e.g. torchmetrics) on COCO val 30k", key="fid"
                ).replace("fid.json", 'fid.json with {"metrics": {"coco": ...}}'),
            ),
            _ext("GenEval", "GenEval", "geneval", "overall"),
            _ext("DSGEval", "DSG", "dsg", "score"),
            _ext("ImageReward", "ImageReward", "imagereward", "mean", digits=2),
        ),
        notes=(
            "Cumulative: every variant file holds the full state of its row (the 14 switches), so consecutive "
            "rows differ by exactly the row's change (tested).",
            "Rows '+ Internal VAE' / '+ Internal CLIP' / '+ Synth. captions' need shards made with an 8-channel VAE, "
            "a 1280-d text encoder and recaptioned data: the paper's internal models are not public.",
        ),
    ),
    "stiv/table3_t2v_design": TableSpec(
        paper="stiv",
        table="table3",
        row_param="variant",
        rows={
            "stiv/table3_base": "Base model",
            "stiv/table3_temp_patch_1": "w/ temp. patch=1",
            "stiv/table3_temp_patch_4": "w/ temp. patch=4",
            "stiv/table3_causal_temp_attn": "w/ causal temp attn",
            "stiv/table3_temp_mask": "+ temp. mask",
            "stiv/table3_no_spatial_mask": "- spatial mask",
        },
        metrics=_VBENCH_QST,
        notes=("The temporal masking ratio is not stated in the paper; '+ temp. mask' uses 0.5.",),
    ),
    "stiv/table4_init_512": TableSpec(
        paper="stiv",
        table="table4",
        row_param="variant",
        rows=dict(_INIT_512),
        metrics=(_FVD, *_VBENCH_QST),
        notes=_INIT_NOTE,
    ),
    "stiv/table16_init_512_dims": TableSpec(
        paper="stiv",
        table="table16",
        row_param="variant",
        rows=dict(_INIT_512),
        metrics=tuple(_vbench(k, v) for k, v in _DIMS.items()),
        notes=_INIT_NOTE,
    ),
    "stiv/table17_init_40_frames": TableSpec(
        paper="stiv",
        table="table17",
        row_param="variant",
        rows={
            "stiv/table17_t2i": "T2I",
            "stiv/table17_t2v_int": "T2V (int.)",
            "stiv/table17_t2v_ext": "T2V (ext.)",
            "stiv/table17_t2v_2x_int": "T2V 2x (int.)",
        },
        metrics=tuple(_vbench(k, v) for k, v in _DIMS.items()),
        notes=_INIT_NOTE
        + (
            "'int.' / 'ext.' are undefined in the paper; we read them as interpolated / extended "
            "temporal RoPE (method.arch.rope_temporal_scale 2 / 1).",
        ),
    ),
}

# ---------------------------------------------------------------------------------------- part 2
# VBench-I2V / VBench cells come from the evaluation adapters (`vidgen eval`, issue 16); until a run
# has them they are reported as n/c with how to obtain them.
VBENCH_I2V_HOW = (
    "generate VBench-I2V's image suite (`vidgen eval RUN suite=vbench-i2v eval.vbench_i2v.images=CROP_DIR`), score "
    "it with VBench-I2V and import the results (`vidgen eval import RUN vbench-i2v FILES...`), or write "
    "<run.dir>/external/vbench-i2v.json (docs/evaluation.md, 'VBench-I2V')"
)


def _vbench_i2v(paper: str, dim: str) -> Metric:
    return Metric(
        paper, f"vbench-i2v/{dim}", scale=100.0, evaluator="VBench-I2V", how=VBENCH_I2V_HOW, digits=2
    )


_T5_DIMS = {
    "Subj Cons": "subject_consistency",
    "Bg Cons": "background_consistency",
    "Temp Flick": "temporal_flickering",
    "Mot Smooth": "motion_smoothness",
    "Dyn Deg": "dynamic_degree",
    "Aesth Qual": "aesthetic_quality",
    "Img Qual": "imaging_quality",
    "I2V Subj": "i2v_subject",
    "I2V Bg": "i2v_background",
    "Cam Mot": "camera_motion",
    "I2V Avg Scores": "i2v_average",
    "Avg Scores": "average",
}
_T7_DIMS = ("Dyn Deg", "Mot Smooth", "Temp Flick", "Bg Cons")


def _fvd(paper: str, suite: str, what: str) -> Metric:
    return Metric(
        paper,
        f"fvd/{suite}",
        evaluator=f"FVD ({what})",
        digits=1,
        how=f"compute FVD of the run's samples on {what} against its videos and write "
        f'<run.dir>/external/fvd.json with {{"metrics": {{"{suite}": ...}}}}',
    )


STIV_TABLES.update(
    {
        "stiv/table5_ti2v_components": TableSpec(
            paper="stiv",
            table="table5",
            row_param="variant",
            rows={
                "stiv/table5_ca": "CA",
                "stiv/table5_ca_lp": "CA + LP",
                "stiv/table5_fr": "FR",
                "stiv/table5_fr_ca": "FR + CA",
                "stiv/table5_fr_ca_lp": "FR + CA + LP",
            },
            metrics=tuple(_vbench_i2v(k, v) for k, v in _T5_DIMS.items()),
            notes=(
                "CA: tokens of the clean first latent frame appended to the caption for cross-attention; "
                "LP: an MLP (ratio 4) instead of one linear projection. The paper gives neither's shape.",
            ),
        ),
        "stiv/table6_multitask": TableSpec(
            paper="stiv",
            table="table6",
            row_param="variant",
            rows={
                "stiv/table6_t2v": "T2V",
                "stiv/table6_stiv": "STIV",
                "stiv/table6_stiv_jit": "STIV-JIT",
                "stiv/table6_stiv_jit_tup": "STIV-JIT-TUP",
            },
            metrics=(
                _vbench("T2V Quality", "quality_score"),
                _vbench("T2V Semantic", "semantic_score"),
                _vbench("T2V Total", "total_score"),
                _vbench_i2v("I2V I2V", "i2v_score"),
                _vbench_i2v("I2V Quality", "quality_score"),
                _vbench_i2v("I2V Total", "total_score"),
            ),
            notes=(
                "Row 'STIV-JIT-TUP' is not a training row: an evaluate-only run (train.max_steps=0) of the "
                "STIV-JIT row's checkpoint (STIV_JIT_CKPT) cascaded with a temporal-upsampler run of "
                "exp=stiv_tup_xl (STIV_TUP_RUN, trained at twice the frames); `vidgen eval` on its folder "
                "samples STIV-JIT, then the upsampler on its frames (methods/stiv/cascade.py). Under "
                "preset=smoke the row trains its own tiny STIV-JIT (the preset sets train.max_steps).",
                "VBench T2V of the STIV rows: sample without an image (c_I = none); the STIV row refuses "
                "this in `vidgen sample` (trained without image dropout) - use the benchmark's "
                "module.generate path (benchmarks/stiv_frame_replacement.py).",
            ),
        ),
        "stiv/table7_jit_motion": TableSpec(
            paper="stiv",
            table="table7",
            row_param="variant",
            rows={"stiv/table7_stiv": "STIV-M-512", "stiv/table7_stiv_jit": "STIV-M-512-JIT"},
            metrics=tuple(_vbench_i2v(k, _T5_DIMS[k]) for k in _T7_DIMS),
        ),
        "stiv/table20_v2v": TableSpec(
            paper="stiv",
            table="table20",
            row_param="variant",
            rows={"stiv/table20_t2v": "T2V", "stiv/table20_v2v": "STIV-V2V"},
            metrics=(
                _fvd("MSRVTT FVD", "msrvtt", "MSR-VTT"),
                _fvd("MovieGen FVD", "moviegen", "MovieGen Bench"),
            ),
            notes=(
                "V2V samples are conditioned on the first four frames of each reference video (video=PATH).",
            ),
        ),
        "stiv/table21_tup": TableSpec(
            paper="stiv",
            table="table21",
            row_param="variant",
            rows={"stiv/table21_no_text": "STIV-TUP, no text", "stiv/table21_text": "STIV-TUP, with text"},
            metrics=(
                Metric(
                    "MSRVTT FID",
                    "fid/msrvtt",
                    evaluator="FID (MSR-VTT)",
                    digits=1,
                    how="compute frame FID of the upsampled MSR-VTT test videos against the originals and write "
                    '<run.dir>/external/fid.json with {"metrics": {"msrvtt": ...}}',
                ),
                _fvd("MSRVTT FVD", "msrvtt", "MSR-VTT"),
            ),
            notes=(
                "'no text' is read as an upsampler trained and sampled with the empty prompt (the paper does "
                "not say whether it is a separate model).",
            ),
        ),
    }
)
