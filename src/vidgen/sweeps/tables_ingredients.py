"""Ingredients' table links (see ``vidgen.sweeps.tables``): Tables 2 and 3, stage-2 rows chained on stage 1."""

from __future__ import annotations

from vidgen.sweeps.tables import Metric, TableSpec

_FACE_HOW = (
    "vidgen eval RUN eval.metrics=face_sim eval.face_sim.recognition=ANTELOPEV2_DIR eval.face_sim.detector=ANTELOPEV2_DIR "
    "(detected faces greedily matched to the references by ArcFace cosine, minimum over matches; on the shapes "
    "world without the folders: the matched right-ID pixel share), "
    "or write <run.dir>/external/faces.json (docs/evaluation.md)"
)
_SHAPES_FACES = (
    "On the shapes world Face Sim. is the share of detected face pixels carrying their greedily matched "
    "reference's identity (vidgen eval eval.metrics=face_sim without eval.face_sim.recognition), not an ArcFace cosine."
)
_GENERAL_HOW = (
    "vidgen eval RUN suite=shapes eval.metrics=clip_score,face_fid eval.clip=CLIP_B32_DIR "
    "eval.fid.inception=INCEPTION.pt [eval.face_sim.detector=ANTELOPEV2_DIR] "
    "eval.keys=clip_score:general/clip_t,face_fid:general/face_fid (or write <run.dir>/external/general.json)"
)


def _metrics(clip: str) -> tuple[Metric, ...]:
    return (
        Metric(
            "Face Sim. (%)",
            "faces/face_sim",
            scale=100.0,
            evaluator="FaceSim (local ArcFace)",
            how=_FACE_HOW,
            digits=1,
        ),
        Metric(
            clip,
            "general/clip_t",
            scale=100.0,
            evaluator="CLIPScore (local CLIP)",
            how=_GENERAL_HOW,
            digits=1,
        ),
        Metric(
            "FID",
            "general/face_fid",
            evaluator="face-region FID (local InceptionV3)",
            how=_GENERAL_HOW,
            digits=1,
        ),
    )


_CHAIN = (
    "Stage-2 rows start from stage-1 run folders named by environment variables in the variant files "
    "(INGREDIENTS_STAGE1_RUN, INGREDIENTS_STAGE1_T2V_RUN, INGREDIENTS_STAGE1_VAE_AFTER_RUN): run the stage-1 "
    "sweep first.",
)

INGREDIENTS_TABLES: dict[str, TableSpec] = {
    "ingredients/table2_stage1": TableSpec(
        paper="ingredients",
        table="table2",
        row_param="variant",
        rows={
            "ingredients/table2_default": "Default (I2V + Seg. + Before)",
            "ingredients/table2_t2v_init": "T2V init",
            "ingredients/table2_vae_after": "VAE features concatenated after",
        },
        metrics=_metrics("CLIP-T (%)"),
        notes=(
            "Stage 1 only (facial embedding alignment); the table's numbers are the stage-2 sweep's.",
            *_CHAIN,
            _SHAPES_FACES,
        ),
    ),
    "ingredients/table2_stage2": TableSpec(
        paper="ingredients",
        table="table2",
        row_param="variant",
        rows={
            "ingredients/table2_default": "Default (I2V + Seg. + Before)",
            "ingredients/table2_t2v_init_stage2": "T2V init",
            "ingredients/table2_vae_after_stage2": "VAE features concatenated after",
            "ingredients/table2_box": "Box-supervised router",
        },
        metrics=_metrics("CLIP-T (%)"),
        curves=("eval/routing_accuracy",),
        notes=(*_CHAIN, _SHAPES_FACES),
    ),
    "ingredients/table3_routing_loss": TableSpec(
        paper="ingredients",
        table="table3",
        row_param="variant",
        rows={
            "ingredients/table3_ce": "w/ L_route",
            "ingredients/table3_mse": "w/ L_mse",
            "ingredients/table3_none": "w/o L_route",
        },
        metrics=_metrics("CLIPScore (%)"),
        curves=("eval/routing_accuracy",),
        notes=(*_CHAIN[:1], _SHAPES_FACES),
    ),
}
