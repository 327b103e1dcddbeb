"""JDM Table 3 (mask quality) in `vidgen report`'s layout, with the demo's numbers as their own row.

The paper's two rows keep their printed values (ours: not run by the demo, which is not paper scale);
the row "ours (demo scale)" carries the demo's generated-mask IoU, F1 and pixel accuracy, with no
paper value to compare against.
"""

from __future__ import annotations

from vidgen.reference import get_table
from vidgen.report.collect import RunResult, Scale
from vidgen.report.render import html_table
from vidgen.report.table import Cell, Report, Row
from vidgen.sweeps.tables import table_spec

SWEEP = "jdm/table3_mask_quality"
ROW_LABEL = "ours (demo scale)"
PAPER_SCALE = (
    "paper scale (pretrained backbone, real data, GPUs) is not run by the demo: "
    "vidgen sweep run sweeps/jdm/table3_mask_quality.yaml"
)


def table3_report(metrics: dict[str, float], setting: str, run_ref: str, steps: int | None = None) -> Report:
    """`metrics` holds mask_iou, mask_f1, mask_pixel_acc (the keys of Table 3's columns without "eval/")."""
    spec = table_spec(SWEEP)
    ref = get_table(spec.paper, spec.table)
    exp_of = {label: exp for exp, label in spec.rows.items()}
    rows = []
    for ref_row in ref["rows"]:
        cells = [
            Cell(m, float(ref_row["values"][m.paper]), state="missing", reason=PAPER_SCALE)
            for m in spec.metrics
        ]
        rows.append(Row(exp_of.get(ref_row["label"], ""), ref_row["label"], "", [], cells))
    ours = [Cell(m, None, values=[float(metrics[m.key.removeprefix("eval/")])]) for m in spec.metrics]
    run = RunResult(  # the demo's scale: a tiny backbone on the shapes world (no Δ against the paper)
        source="local", ref=run_ref, params={}, status="completed", scale=Scale("tiny", steps, "shapes")
    )
    rows.append(Row(setting, ROW_LABEL, "", [run], ours))
    directions = {m["name"]: m.get("direction", "none") for m in ref.get("metrics", [])}
    for j, metric in enumerate(spec.metrics):  # bold the paper's best, as `vidgen report` does
        papers = [row.cells[j].paper for row in rows if row.cells[j].paper is not None]
        pick = {"up": max, "down": min}.get(directions.get(metric.paper, "none"))
        if pick is None or len(papers) < 2:
            continue
        for row in rows:
            row.cells[j].paper_best = row.cells[j].paper == pick(papers)
    return Report(None, spec, ref.get("caption", ""), ref.get("kind", ""), rows, directions)


def table3_html(metrics: dict[str, float], setting: str, run_ref: str, steps: int | None = None) -> str:
    return html_table(table3_report(metrics, setting, run_ref, steps))
