"""InstanceDiffusion's table links (see ``vidgen.sweeps.tables``): Tables 4, 5, 6a-6d, and its InstanceV Table 1 row."""

from __future__ import annotations

from vidgen.sweeps.tables import Metric, TableSpec

_FID_HOW = "FID of the run's samples against real images from local Inception weights; write <run.dir>/external/general.json"
_DETECTOR_NOTE = (
    "AP / PiM / Acc^color: ours detects each instance by its colour with the shapes world's exact detector and "
    "scores it with pycocotools' COCO AP; the paper uses YOLOv8m-Det / -Seg on COCO val and a colour classifier."
)


def _pct(paper: str, key: str) -> Metric:
    return Metric(paper, key, scale=100.0, digits=1)


_AP50_MASK = _pct("AP50^mask", "eval/mask_ap50")


def _ablation(table: str, rows: dict[str, str], metrics: tuple[Metric, ...], *notes: str) -> TableSpec:
    return TableSpec(
        paper="instancediffusion",
        table=table,
        row_param="variant",
        rows={f"instancediffusion/{k}": v for k, v in rows.items()},
        metrics=metrics,
        notes=(_DETECTOR_NOTE, *notes),
    )


TABLES: dict[str, TableSpec] = {
    "instancediffusion/table4_location_formats": _ablation(
        "table4",
        {
            "table4_point": "point only",
            "table4_point_box": "point + box",
            "table4_point_box_mask": "point + box + mask",
        },
        (
            _pct("PiM", "eval/pim"),
            _pct("AP^box", "eval/box_ap"),
            _pct("AP50^box", "eval/box_ap50"),
            _pct("AP^mask", "eval/mask_ap"),
            _AP50_MASK,
        ),
        "The paper evaluates one trained model per row set; ours trains each row with the same seed and recipe, "
        "so the rows share identical weights and differ only in method.inference_formats.",
    ),
    "instancediffusion/table5_components": _ablation(
        "table5",
        {
            "table5_default": "#1 default",
            "table5_no_fa_fusion": "#2 w/o FA fusion",
            "table5_no_maskattn": "#3 w/o MaskAttn",
            "table5_no_scaleu": "#4 w/o ScaleU",
            "table5_no_inst_cap": "#5 w/o Inst. Cap.",
            "table5_no_mis": "#6 w/o MIS",
        },
        (
            _AP50_MASK,
            _pct("Acc^color", "eval/colour_acc"),
            Metric("FID", "general/fid", evaluator="FID (local Inception)", how=_FID_HOW, digits=1),
        ),
    ),
    "instancediffusion/table6a_scaleu": _ablation(
        "table6a",
        {"table6a_freeu": "FreeU", "table6a_scaleu": "ScaleU"},
        (_pct("AP50^box", "eval/box_ap50"),),
    ),
    "instancediffusion/table6b_extra_tokens": _ablation(
        "table6b",
        {"table6b_no_extra_tokens": "w/o extra tokens", "table6b_extra_tokens": "w/ extra tokens"},
        (_AP50_MASK,),
    ),
    "instancediffusion/table6c_mask_parameterization": _ablation(
        "table6c", {"table6c_polygons": "polygons", "table6c_inside": "+inside"}, (_AP50_MASK,)
    ),
    "instancediffusion/table6d_points_per_mask": _ablation(
        "table6d",
        {f"table6d_points_{n}": f"{n} points" for n in (64, 128, 256, 512)},
        (_AP50_MASK,),
    ),
}
