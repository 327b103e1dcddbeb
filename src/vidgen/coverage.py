"""`vidgen tables [--json | --md [--out PATH]] [--root DIR]`: every table and figure ablation of the five papers and how far
this repository reproduces it.

One entry per table of the packaged reference (src/vidgen/reference/*.yaml; 46 tables + 7 figures).
Everything but the "why" sentences is derived from the repository at call time:

- sweep: ``sweeps/<paper>/<table>_*.yaml`` under ``--root`` (default: the checkout holding this package);
- rows runnable here: rows whose ``exp`` / ``variant`` config files exist (``vidgen.config.group_options``);
- metric source per column: the sweep's table link (``vidgen.sweeps.tables``): ``computed`` by vidgen
  (training, ``vidgen profile``, ``vidgen eval``), ``adapter`` (an external benchmark imported by
  ``vidgen eval import``), or ``not reproducible`` (human studies, closed models, internal data);
- level: ``none`` < ``sweep exists`` < ``runs at smoke size`` (every row's configs exist) <
  ``compute reproduced exactly`` / ``effect shown on shapes world`` (a result file in benchmarks/results/
  that the table's EVIDENCE entry names exists).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vidgen.reference import list_papers, load_paper

REPO_ROOT = Path(__file__).resolve().parents[2]
LEVELS = (
    "none",
    "sweep exists",
    "runs at smoke size",
    "compute reproduced exactly",
    "effect shown on shapes world",
)
ADAPTERS = ("VBench", "T2V-CompBench", "GenEval", "DSG", "ImageReward", "VideoPhy")
# Result files that show a table's compute columns at real size, or its effect on the shapes world.
EVIDENCE: dict[tuple[str, str], tuple[str, str]] = {
    ("jdm", "table3"): ("effect shown on shapes world", "benchmarks/results/jdm_mask_iou.json"),
    ("jdm", "table6"): ("compute reproduced exactly", "benchmarks/results/jdm_overhead.json"),
    ("instancev", "table1"): ("compute reproduced exactly", "benchmarks/results/instancev_overhead.json"),
    ("instancev", "table3"): ("effect shown on shapes world", "benchmarks/results/instancev_layout_iou.json"),
    ("stiv", "table14"): ("compute reproduced exactly", "benchmarks/results/stiv_memory_flops.json"),
}
# Why a table has no sweep / cannot be reproduced here (the rest is derived).
NOT_REPRODUCIBLE = {
    ("jdm", "table4"): "user study (20 participants)",
    ("stiv", "fig4"): "human evaluation",
    ("stiv", "table10"): "data ablation on Apple's internal Panda-30M / Panda-10M filtering",
    ("stiv", "table11"): "caption ablation with Apple's internal captioner",
    ("instancev", "table4"): "compares closed and open models on a benchmark with human-rated columns",
    ("instancev", "table5"): "compares closed and open models on a benchmark with human-rated columns",
}
# Rows of a swept table that the sweep does not run, and why; "closed" rows cannot be reproduced anywhere.
CLOSED = "closed model: no released weights"
NO_CODE = "no released code (the paper's row is its own theoretical analysis)"
PUBLISHED = "a published model the paper quotes; not a row of the sweep"
PAPER_ONLY_ROWS: dict[tuple[str, str, str], tuple[str, str]] = {
    **{("jdm", "table1", m): ("not reproducible", CLOSED) for m in ("Sora", "Gen-3", "Kling")},
    ("jdm", "table2", "Gen-3"): ("not reproducible", CLOSED),
    ("instancev", "table1", "InstanceGen"): ("not reproducible", NO_CODE),
    ("ingredients", "table2", "Box-supervised router"): (
        "n/c",
        "a stage-2 row (sweep ingredients/table2_stage2)",
    ),
}
WHY_BY_KIND = {
    "comparison": "quotes published models (own rows: `vidgen eval exp=NAME backbone.weights=DIR`)",
    "config": "a configuration table: `vidgen backbones` lists the implemented sizes",
    "overhead": "overhead: `vidgen profile` / benchmarks/ measure it",
    "data": "a data ablation on the paper's data set",
    "ablation": "no sweep yet",
}


@dataclass
class Entry:
    paper: str
    table: str
    kind: str
    caption: str
    sweep: str | None
    why_no_sweep: str
    rows: int  # rows in the paper's table
    rows_runnable: int  # rows of the sweep whose configs exist here
    metric_sources: dict[str, str] = field(
        default_factory=dict
    )  # column -> computed | adapter | not reproducible
    levels: list[str] = field(default_factory=list)
    paper_only_rows: dict[str, str] = field(default_factory=dict)  # row label -> "<source>: why"

    @property
    def level(self) -> str:
        return self.levels[-1] if self.levels else "none"


# A column of a table without a sweep, by its name (lower-case substrings; first match wins).
_BY_NAME = (
    (("human eval", "baseline", "indecision", "jdm"), "not reproducible"),
    (("acc^", "clip^local"), "computed"),  # InstanceDiffusion's attribute accuracy / local CLIP, not VBench's Color
    (
        (
            "vbench",
            "quality",
            "semantic",
            "total",
            "final",
            "i2v",
            "geneval",
            "dsg",
            "imagereward",
            "pc",
            "sa",
            "avg",
            "cons",
            "flick",
            "smooth",
            "dyn",
            "aesth",
            "imaging",
            "object",
            "color",
            "scene",
            "action",
            "spatial",
            "style",
            "visual",
            "alignment",
            "factual",
            "multi-view",
        ),
        "adapter",
    ),
)


def _source_by_name(name: str, kind: str) -> str:
    low = name.lower()
    if kind in ("overhead", "config"):  # parameters, FLOPs, time, sizes: vidgen profile / backbones
        return "computed"
    for keys, source in _BY_NAME:
        if any(k in low for k in keys):
            return source
    return "computed"


def _source(evaluator: str) -> str:
    if any(name.lower() in evaluator.lower() for name in ADAPTERS):
        return "adapter"
    return "computed"


def metric_source(metric) -> str:
    """Where a swept column's numbers come from: ``computed`` (vidgen) or ``adapter`` (an external
    benchmark imported by ``vidgen eval import``); ``metric`` is a ``vidgen.sweeps.tables.Metric``."""
    return _source(metric.evaluator)


def row_source(paper: str, table: str, label: str, swept: bool) -> tuple[str, str]:
    """(source, why) of a row: ``("", "")`` for a row the sweep runs; a row the sweep does not run is
    ``not reproducible`` (closed model, no code, or the whole table blocked) or ``n/c`` with the reason."""
    if blocked := NOT_REPRODUCIBLE.get((paper, table)):
        return "not reproducible", blocked
    if swept:
        return "", ""
    return PAPER_ONLY_ROWS.get((paper, table, label), ("n/c", PUBLISHED))


def _row_values(sweep, name: str) -> list[str]:
    spec = sweep.parameters.get(name, {})
    values = spec.get("values", [spec["value"]] if "value" in spec else [])
    return [str(v) for v in values]


def _runnable(sweep) -> int:
    """Rows of the sweep whose experiment and variant configs exist (what `vidgen sweep validate` composes)."""
    from vidgen.config import group_options

    exps, variants = set(group_options("exp")), set(group_options("variant")) | {"none", "null"}
    row_param = (
        sweep.spec.row_param if sweep.spec else ("variant" if "variant" in sweep.parameters else "exp")
    )
    rows = _row_values(sweep, row_param)
    fixed_exp = _row_values(sweep, "exp") if row_param != "exp" else []
    fixed_variant = _row_values(sweep, "variant") if row_param != "variant" else []
    ok = all(e in exps for e in fixed_exp) and all(v in variants for v in fixed_variant)
    known = exps if row_param == "exp" else variants if row_param == "variant" else None
    return sum(1 for r in rows if ok and (known is None or r in known))


def _entry(paper: str, table: dict, root: Path) -> Entry:
    from vidgen.sweeps.schema import load_sweep

    tid, kind = str(table["id"]), str(table.get("kind", ""))
    files = sorted((root / "sweeps" / paper).glob(f"{tid}_*.yaml"))
    metrics = [m["name"] for m in table.get("metrics", [])]
    blocked = NOT_REPRODUCIBLE.get((paper, tid))
    entry = Entry(
        paper, tid, kind, str(table.get("caption", ""))[:120], None, "", len(table.get("rows", [])), 0
    )
    if not files:
        entry.why_no_sweep = blocked or WHY_BY_KIND.get(kind, "no sweep yet")
        entry.metric_sources = {
            m: "not reproducible" if blocked else _source_by_name(m, kind) for m in metrics
        }
        return entry
    sweep = load_sweep(files[0])
    entry.sweep = files[0].relative_to(root).as_posix()
    entry.rows_runnable = _runnable(sweep)
    entry.levels.append("sweep exists")
    rows_total = len(_row_values(sweep, sweep.spec.row_param)) if sweep.spec else entry.rows_runnable
    if entry.rows_runnable and entry.rows_runnable == rows_total:
        entry.levels.append("runs at smoke size")
    if sweep.spec is not None:
        entry.metric_sources = {m.paper: metric_source(m) for m in sweep.spec.metrics}
        swept = set(sweep.spec.rows.values())
        for row in table.get("rows", []):
            if row["label"] not in swept:
                entry.paper_only_rows[row["label"]] = ": ".join(row_source(paper, tid, row["label"], False))
    level, path = EVIDENCE.get((paper, tid), ("", ""))
    if level and (root / path).is_file():
        entry.levels.append(level)
    return entry


def coverage(root: Path = REPO_ROOT) -> list[Entry]:
    return [_entry(p, t, Path(root)) for p in list_papers() for t in load_paper(p)["tables"]]


MD_MARKER = "<!-- generated by `vidgen tables --md`; do not edit, regenerate -->"
SOURCES = ("computed", "adapter", "not reproducible")


def _sources_md(entry: Entry) -> str:
    by: dict[str, list[str]] = {}
    for column, source in entry.metric_sources.items():
        by.setdefault(source, []).append(column)
    return "; ".join(f"{s}: {', '.join(by[s])}" for s in SOURCES if s in by) or "—"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(entries: list[Entry]) -> str:
    """The coverage map as a Markdown page (docs/tables.md): one table per paper, then a legend."""
    levels = {lv: sum(1 for e in entries if e.level == lv) for lv in LEVELS}
    lines = [
        MD_MARKER,
        "# Paper tables and figures: what this repository reproduces",
        "",
        f"{len(entries)} entries ({sum(1 for e in entries if e.table.startswith('fig'))} figure ablations) "
        "of the five papers' packaged reference (src/vidgen/reference/), derived from the repository by "
        "`vidgen tables --md --out docs/tables.md` (tests/test_coverage.py fails when this page is stale).",
        "",
        "Level reached: " + ", ".join(f"{n} {lv}" for lv, n in levels.items() if n) + ".",
        "",
        "Metric sources: **computed** by vidgen (training, `vidgen profile`, `vidgen eval`); **adapter**: an "
        "external benchmark run in its own environment, imported by `vidgen eval import` "
        "(docs/evaluation.md); **not reproducible** here (human studies, closed models, internal data). "
        "`vidgen report` marks every cell with the same source.",
    ]
    for paper in dict.fromkeys(e.paper for e in entries):
        lines += ["", f"## {paper}", "",
                  "| table | kind | sweep (or why none) | rows here | metric sources | level |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for e in (e for e in entries if e.paper == paper):
            sweep = f"`{e.sweep}`" if e.sweep else e.why_no_sweep
            rows = f"{e.rows_runnable}/{e.rows}"
            if e.paper_only_rows:
                rows += " (not run: " + "; ".join(f"{k}: {v}" for k, v in e.paper_only_rows.items()) + ")"
            cells = (e.table, e.kind, sweep, rows, _sources_md(e), e.level)
            lines.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(text: str, out: Path) -> None:
    """Writes the page atomically; refuses to replace a file this command did not generate."""
    from vidgen.errors import ConfigError
    from vidgen.runs import _atomic_write_text

    if out.is_file() and not out.read_text().startswith(MD_MARKER):
        raise ConfigError(f"--out {out}: exists and was not written by `vidgen tables --md`; "
                          "remove it or choose another path")  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(out, text)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    root = Path(argv[argv.index("--root") + 1]) if "--root" in argv else REPO_ROOT
    entries = coverage(root)
    if "--json" in argv:
        print(json.dumps([{**asdict(e), "level": e.level} for e in entries], indent=2))
        return 0
    if "--md" in argv:
        text = to_markdown(entries)
        if "--out" not in argv:
            print(text, end="")
            return 0
        from vidgen.errors import VidgenError

        out = Path(argv[argv.index("--out") + 1]) if argv.index("--out") + 1 < len(argv) else None
        try:
            if out is None:
                from vidgen.errors import ConfigError

                raise ConfigError("--out needs a path, e.g. --out docs/tables.md")
            write_markdown(text, out)
        except VidgenError as err:
            print(f"error: {err}", file=sys.stderr)
            return err.exit_code
        print(f"wrote {out} ({len(entries)} entries)")
        return 0
    from rich.console import Console
    from rich.table import Table

    out = Table(title=f"vidgen tables: {len(entries)} paper tables and figure ablations")
    for col in ("paper", "table", "kind", "sweep (or why none)", "rows here", "metrics", "level"):
        out.add_column(col, overflow="fold")
    for e in entries:
        sources = sorted(set(e.metric_sources.values()))
        out.add_row(e.paper, e.table, e.kind, e.sweep or e.why_no_sweep, f"{e.rows_runnable}/{e.rows}",
                    ", ".join(sources), e.level)  # fmt: skip
    Console().print(out)
    return 0
