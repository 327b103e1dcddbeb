"""Join collected runs to a paper table's rows: ours (mean ± std over seeds) beside the paper's value.

Every cell carries its provenance, from the same source of truth as `vidgen tables`
(``vidgen.coverage.metric_source`` / ``row_source``): ``computed`` (a vidgen metric of this run),
``adapter`` (an external benchmark's result imported by ``vidgen eval import``), ``not reproducible``
(a closed model's row, no released code) or ``n/c`` (not computed yet). The paper's rows that the
sweep does not run are listed too (``Row.paper_only``), with the reason.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from vidgen.coverage import metric_source, row_source
from vidgen.reference import get_table
from vidgen.report.collect import RunResult
from vidgen.sweeps.schema import Sweep
from vidgen.sweeps.tables import Metric, TableSpec


@dataclass
class Cell:
    metric: Metric
    paper: float | None
    values: list[float] = field(default_factory=list)  # ours, one per completed run (seed), in paper units
    state: str = "ok"  # ok | not-computed | failed | missing | not-reproducible
    reason: str = ""
    best: bool = False
    paper_best: bool = False
    comparable: bool = True  # False: the row did not run at the paper's scale, Δ is left out
    source: str = "n/c"  # computed | adapter | not reproducible | n/c (vidgen.coverage's taxonomy)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def diff(self) -> float | None:
        return self.mean - self.paper if self.mean is not None and self.paper is not None else None


@dataclass
class Row:
    value: str  # the row parameter's value (variant / exp)
    label: str
    change: str
    runs: list[RunResult]
    cells: list[Cell]
    paper_only: bool = False  # a row of the paper's table that the sweep does not run

    @property
    def status(self) -> str:
        if self.paper_only:
            return "paper only"
        if not self.runs:
            return "missing"
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))

    @property
    def scale(self) -> str:
        """The scale(s) the row's runs trained at, e.g. `tiny · 8 steps · shapes` ("—": no run)."""
        if not self.runs:
            return "—"
        return "; ".join(dict.fromkeys(str(r.scale) if r.scale else "?" for r in self.runs))

    @property
    def paper_scale(self) -> bool:
        """Every run of the row trained at the paper's scale (real backbone, real data)."""
        return bool(self.runs) and all(r.scale is not None and r.scale.paper_scale for r in self.runs)


@dataclass
class Report:
    sweep: Sweep | None  # None: a table without a sweep (vidgen demo: html_table only)
    spec: TableSpec
    caption: str
    kind: str
    rows: list[Row]
    directions: dict[str, str]
    ref_notes: str = ""


def _direction(spec: TableSpec, ref: dict, metric: Metric) -> str:
    for m in ref.get("metrics", []):
        if m["name"] == metric.paper:
            return m.get("direction", "none")
    return "down" if "loss" in metric.key else "up"


def _paper_only_rows(spec: TableSpec, ref: dict) -> list[Row]:
    """The paper's rows the sweep does not run: its values, our cells marked with the reason."""
    swept = set(spec.rows.values())
    out = []
    for ref_row in ref["rows"]:
        if ref_row["label"] in swept:
            continue
        source, why = row_source(spec.paper, spec.table, ref_row["label"], swept=False)
        cells = []
        for metric in spec.metrics:
            paper = ref_row.get("values", {}).get(metric.paper)
            state = "not-reproducible" if source == "not reproducible" else "not-computed"
            cells.append(Cell(metric, float(paper) if paper is not None else None, state=state, reason=why,
                              comparable=False, source=source))  # fmt: skip
        out.append(Row("—", ref_row["label"], str(ref_row.get("change", "")), [], cells, paper_only=True))
    return out


def build(sweep: Sweep, runs: list[RunResult]) -> Report:
    spec = sweep.spec
    if spec is None:
        raise ValueError(f"{sweep.name}: no table link")
    ref = get_table(spec.paper, spec.table)
    ref_rows = {r["label"]: r for r in ref["rows"]}
    rows = []
    for value, label in spec.rows.items():
        ref_row = ref_rows.get(label, {})
        mine = [r for r in runs if str(r.params.get(spec.row_param)) == value]
        completed = [r for r in mine if r.status == "completed"]
        cells = []
        for metric in spec.metrics:
            paper = ref_row.get("values", {}).get(metric.paper)
            cell = Cell(metric, float(paper) if paper is not None else None)
            cell.values = [
                float(r.summary[metric.key]) * metric.scale
                for r in completed
                if isinstance(r.summary.get(metric.key), (int, float))
            ]
            if not cell.values:
                if not mine:
                    cell.state, cell.reason = "missing", "no run for this row"
                elif not completed:
                    errors = "; ".join(sorted({r.error for r in mine if r.error}))[:300]
                    cell.state = "failed"
                    cell.reason = f"run {', '.join(sorted({r.status for r in mine}))}" + (
                        f": {errors}" if errors else ""
                    )
                elif metric.evaluator != "vidgen":
                    cell.state, cell.reason = "not-computed", f"computed by {metric.evaluator}: {metric.how}"
                else:
                    cell.state = "not-computed"
                    cell.reason = metric.how or f"the runs did not log {metric.key}"
            cell.source = metric_source(metric) if cell.values else "n/c"
            cells.append(cell)
        row = Row(value, label, str(ref_row.get("change", "")), mine, cells)
        for cell in cells:
            cell.comparable = row.paper_scale
        rows.append(row)
    rows += _paper_only_rows(spec, ref)
    directions = {m.paper: _direction(spec, ref, m) for m in spec.metrics}
    for j, metric in enumerate(spec.metrics):
        d = directions[metric.paper]
        if d not in ("up", "down"):
            continue
        pick = max if d == "up" else min
        ours = [(row.cells[j].mean, i) for i, row in enumerate(rows) if row.cells[j].mean is not None]
        if len(ours) > 1:
            best = pick(v for v, _ in ours)
            for v, i in ours:
                rows[i].cells[j].best = v == best
        papers = [(row.cells[j].paper, i) for i, row in enumerate(rows) if row.cells[j].paper is not None]
        if len(papers) > 1:
            best = pick(v for v, _ in papers)
            for v, i in papers:
                rows[i].cells[j].paper_best = v == best
    return Report(
        sweep, spec, ref.get("caption", ""), ref.get("kind", ""), rows, directions, str(ref.get("notes", ""))
    )
