"""Render a `Report` as Markdown, LaTeX and self-contained HTML (PNG figures embedded as base64).

Cell format, everywhere: `ours / paper (Δ ours−paper)`; ours is `mean ± std (n=k)` when several
seeds ran. The best of each column is bold (ours and the paper's separately, by the metric's
direction in the reference). A value that could not be shown is a mark with a numbered reason:
`n/c` not computed (names the evaluator and how to import it), `failed`, `missing` (no run),
`n/r` not reproducible (a paper row this project cannot run, e.g. a closed model). A value carries a
superscript of its provenance (`SOURCE_MARKS`: c computed by vidgen, a imported by an adapter), the
taxonomy of `vidgen tables`; the JSON format gives it per cell as `source`.

`view()` turns a Report into plain strings and flags (the cell values come from
`vidgen.report.table.build`); the Jinja2 templates in `templates/` only lay them out.
"""

from __future__ import annotations

import base64
import io
import re
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from vidgen.report.collect import curve_key
from vidgen.report.table import Cell, Report
from vidgen.runs import _atomic_write_text

MARKS = {"not-computed": "n/c", "failed": "failed", "missing": "missing", "not-reproducible": "n/r"}
SOURCE_MARKS = {"computed": "c", "adapter": "a"}  # the superscript after a value
SOURCE_LEGEND = (
    "source of ours: c computed by vidgen on this run; a imported from an external benchmark "
    "(vidgen eval import); n/r not reproducible here; n/c not computed yet (see the notes)."
)
SCALE_NOTE = (
    "Δ only for rows trained at the paper's scale (real backbone on real data); "
    "scale: backbone · steps trained · data."
)


def _fmt(x: float | None, digits: int) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _ours(cell: Cell) -> str:
    d = cell.metric.digits
    if cell.mean is None:
        return MARKS.get(cell.state, cell.state)
    text = _fmt(cell.mean, d)
    if cell.std is not None:
        text += f" ± {_fmt(cell.std, d)}"
    if len(cell.values) > 1:
        text += f" (n={len(cell.values)})"
    return text


def _diff(cell: Cell) -> str:
    if cell.diff is None:
        return ""
    return f"{round(cell.diff, cell.metric.digits) + 0.0:+.{cell.metric.digits}f}"  # + 0.0: no "-0.0000"


def _note_key(row, cell: Cell) -> str:
    """Not computed: one note per metric; the paper's own rows: one note per reason; failed / missing:
    one note per row."""
    if row.paper_only:
        return f"{MARKS.get(cell.state, cell.state)} — {cell.reason}"
    if cell.state == "not-computed":
        return f"{cell.metric.paper}: n/c — {cell.reason}"
    return f"{row.label}: {MARKS.get(cell.state, cell.state)} — {cell.reason}"


def _notes(report: Report) -> list[str]:
    """Numbered reasons for the marks, deduplicated."""
    seen: list[str] = []
    for row in report.rows:
        for cell in row.cells:
            if cell.mean is None and cell.reason and (key := _note_key(row, cell)) not in seen:
                seen.append(key)
    return seen


def _reason_index(report: Report, row, cell: Cell) -> int | None:
    notes = _notes(report)
    key = _note_key(row, cell)
    return notes.index(key) + 1 if cell.mean is None and key in notes else None


def _footer_lines(report: Report, meta: dict) -> list[str]:
    lines = [
        f"sweep: {report.sweep.name} ({report.sweep.path})",
        f"reference: {report.spec.paper}/{report.spec.table} (vidgen/reference/{report.spec.paper}.yaml)",
        f"generated: {meta.get('generated', '')} at commit {meta.get('commit', 'unknown')}",
        f"source: {meta.get('source', '')}",
    ]
    for row in report.rows:
        for r in row.runs:
            lines.append(
                f"run [{row.label}] {' '.join(f'{k}={v}' for k, v in r.params.items())}: {r.status}; "
                f"config {r.config_hash or '?'}; commit {r.commit or '?'}; "
                f"{r.started or '?'} → {r.finished or '?'}; {r.ref}"
            )
        if not row.runs:
            lines.append(f"run [{row.label}]: none found")
    return lines


def _arrow(report: Report, metric: str) -> str:
    return {"up": "↑", "down": "↓"}.get(report.directions.get(metric, ""), "")


def view(report: Report, meta: dict | None = None) -> dict[str, Any]:
    """Everything the templates show, as strings, numbers and flags (no markup)."""
    spec = report.spec
    rows = []
    for row in report.rows:
        cells = []
        for cell in row.cells:
            cells.append(
                {
                    "ours": _ours(cell),
                    "has_mean": cell.mean is not None,
                    "best": cell.best,
                    "mark": _reason_index(report, row, cell),
                    "source": cell.source,
                    "source_mark": SOURCE_MARKS.get(cell.source, "") if cell.mean is not None else "",
                    "reason": cell.reason,
                    "paper": _fmt(cell.paper, cell.metric.digits),
                    "paper_best": cell.paper_best,
                    "diff": _diff(cell) if cell.diff is not None and cell.comparable else None,
                }
            )
        rows.append(
            {
                "label": row.label,
                "value": row.value,
                "status": row.status,
                "scale": row.scale,
                "paper_scale": row.paper_scale,
                "paper_only": row.paper_only,
                "cells": cells,
            }
        )
    return {
        "paper": spec.paper.upper(),
        "table": spec.table,
        "caption": report.caption,
        "spec_notes": list(spec.notes),
        "row_param": spec.row_param,
        "metrics": [{"name": m.paper, "arrow": _arrow(report, m.paper)} for m in spec.metrics],
        "rows": rows,
        "notes": _notes(report),
        "changes": [(r.label, r.change) for r in report.rows if r.change],
        "footer": _footer_lines(report, meta) if meta is not None else [],
        "scale_note": SCALE_NOTE,
        "source_legend": SOURCE_LEGEND,
    }


@cache
def _env(fmt: str):
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vidgen.report", "templates"),
        autoescape=fmt == "html",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["tex"] = _tex
    return env


def _render(template: str, **context: Any) -> str:
    return _env(template.rsplit(".", 2)[-2]).get_template(template).render(**context)


def to_markdown(report: Report, meta: dict, figures: dict[str, str] | None = None) -> str:
    return _render("report.md.j2", **view(report, meta), figures=list((figures or {}).items()))


# ---------------------------------------------------------------- latex
_TEX = str.maketrans(
    {
        "&": r"\&",
        "%": r"\%",
        "_": r"\_",
        "#": r"\#",
        "$": r"\$",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\^{}",
        "\\": r"\textbackslash{}",
        "<": r"\textless{}",
        ">": r"\textgreater{}",
    }
)


def _tex(s: str) -> str:
    return (
        str(s)
        .translate(_TEX)
        .replace("±", r"$\pm$")
        .replace("Δ", r"$\Delta$")
        .replace("—", "--")
        .replace("↑", r"$\uparrow$")
        .replace("↓", r"$\downarrow$")
        .replace("→", r"$\rightarrow$")
        .replace("·", r"$\cdot$")
    )


def to_latex(report: Report, meta: dict) -> str:
    return _render("report.tex.j2", **view(report, meta))


# ---------------------------------------------------------------- figures
def figures(report: Report) -> dict[str, bytes]:
    """PNG bytes: 'bars' (ours vs paper per metric and row), 'curves' (the table's curve metrics,
    all rows on one plot) and 'curves_<row value>' (that row's loss and eval metrics over steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    swept = [
        r for r in report.rows if not r.paper_only
    ]  # the paper's own rows are in the table, not the plots
    metrics = [
        j
        for j, m in enumerate(report.spec.metrics)
        if any(r.cells[j].mean is not None or r.cells[j].paper is not None for r in swept)
    ]
    if metrics:
        n = len(metrics)
        fig, axes = plt.subplots(1, n, figsize=(max(4.0, 2.6 * n), 3.2), squeeze=False)
        for ax, j in zip(axes[0], metrics):
            labels = [r.label for r in swept]
            x = range(len(labels))
            ours = [r.cells[j].mean if r.cells[j].mean is not None else 0.0 for r in swept]
            errs = [r.cells[j].std or 0.0 for r in swept]
            paper = [r.cells[j].paper if r.cells[j].paper is not None else 0.0 for r in swept]
            ax.bar([i - 0.2 for i in x], ours, 0.4, yerr=errs, label="ours", color="#3b75af")
            ax.bar([i + 0.2 for i in x], paper, 0.4, label="paper", color="#ef8636")
            ax.set_xticks(list(x))
            ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
            ax.set_title(report.spec.metrics[j].paper, fontsize=9)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        out["bars"] = _png(fig)
        plt.close(fig)
    keys = list(report.spec.curves) or sorted(
        {k for row in report.rows for r in row.runs for c in r.curves for k in c if k.startswith("eval/")}
    )
    keys = [k for k in keys if any(k in c for row in report.rows for r in row.runs for c in r.curves)]
    if keys:
        fig, axes = plt.subplots(1, len(keys), figsize=(max(4.0, 3.2 * len(keys)), 3.0), squeeze=False)
        for ax, key in zip(axes[0], keys):
            for row in report.rows:
                for r in row.runs:
                    pts = [(c["step"], c[key]) for c in r.curves if key in c]
                    if pts:
                        seed = r.params.get("seed")
                        ax.plot(
                            *zip(*pts),
                            marker="o" if len(pts) < 30 else None,
                            markersize=3,
                            label=row.label + (f" (seed {seed})" if seed is not None else ""),
                        )
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.legend(fontsize=6)
        fig.tight_layout()
        out["curves"] = _png(fig)
        plt.close(fig)
    for row in report.rows:
        if png := _row_curves(plt, report, row):
            out["curves_" + re.sub(r"[^A-Za-z0-9._-]+", "_", row.value)] = png
    return out


def _row_curves(plt, report: Report, row) -> bytes | None:
    """One row's training curves: the loss and every evaluation metric over steps, a line per run (seed)."""
    table_keys = {m.key for m in report.spec.metrics}
    keys = sorted(
        {k for r in row.runs for c in r.curves for k in c if curve_key(k) or k in table_keys},
        key=lambda k: (not k.startswith("train/loss"), k),
    )
    if not keys:
        return None
    cols = min(4, len(keys))
    nrows = -(-len(keys) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for r in row.runs:
            pts = [(c["step"], c[key]) for c in r.curves if key in c]
            if pts:
                seed = r.params.get("seed")
                ax.plot(
                    *zip(*pts),
                    marker="o" if len(pts) < 30 else None,
                    markersize=3,
                    label=f"seed {seed}" if seed is not None else r.ref[-24:],
                )
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    fig.suptitle(f"{row.label} ({row.scale})", fontsize=10)
    fig.tight_layout()
    png = _png(fig)
    plt.close(fig)
    return png


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


# ---------------------------------------------------------------- html
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;
font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child
{text-align:left}.best{font-weight:bold}.mark{color:#b00}.paper{color:#555}.diff{color:#777;font-size:11px}
footer{margin-top:2em;font-size:11px;color:#555;overflow-wrap:anywhere}footer ul{padding-left:1.2em}
.scale{color:#777;font-size:11px}.scale.other{font-style:italic}img{max-width:100%}"""


def html_table(report: Report) -> str:
    """The table alone (rows x metrics, each cell ours / paper (Δ)), for pages that embed it."""
    return _render("table.html.j2", **view(report))


def to_html(report: Report, meta: dict, pngs: dict[str, bytes]) -> str:
    images = [(name, base64.b64encode(data).decode()) for name, data in pngs.items()]
    return _render("report.html.j2", **view(report, meta), css=_CSS, images=images)


def to_json(report: Report, meta: dict) -> str:
    """The table as data: per cell ours (mean, std, values), the paper's value, Δ and ``source``."""
    import json

    v = view(report, meta)
    rows = []
    for row, shown in zip(report.rows, v["rows"]):
        cells = [{"metric": c.metric.paper, "key": c.metric.key, "source": c.source, "state": c.state,
                  "ours": c.mean, "std": c.std, "values": c.values, "paper": c.paper,
                  "diff": c.diff if c.comparable else None, "reason": c.reason, "note": s["mark"]}
                 for c, s in zip(row.cells, shown["cells"])]  # fmt: skip
        rows.append(
            {k: shown[k] for k in ("label", "value", "status", "scale", "paper_only")} | {"cells": cells}
        )
    keep = (
        "paper",
        "table",
        "caption",
        "spec_notes",
        "row_param",
        "metrics",
        "notes",
        "footer",
        "source_legend",
    )
    return json.dumps({**{k: v[k] for k in keep}, "rows": rows}, indent=2, ensure_ascii=False) + "\n"


def write(report: Report, out_dir: str | Path, formats: list[str], meta: dict) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"generated": datetime.now(timezone.utc).isoformat(timespec="seconds"), **meta}
    stem = report.sweep.name.split("/", 1)[-1]
    written: list[Path] = []
    pngs = figures(report) if {"md", "html"} & set(formats) else {}
    png_paths = {}
    if "md" in formats:
        for name, data in pngs.items():
            path = out / f"{stem}_{name}.png"
            path.write_bytes(data)
            png_paths[name] = path.name
            written.append(path)
    renderers = {
        "md": lambda: to_markdown(report, meta, png_paths),
        "tex": lambda: to_latex(report, meta),
        "html": lambda: to_html(report, meta, pngs),
        "json": lambda: to_json(report, meta),
    }
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        _atomic_write_text(path, renderers[fmt]())
        written.append(path)
    return written
