"""The papers' published numbers, keyed by paper, table and row.

The YAML files here are verbatim copies of ../shared/reference/*.yaml (one per paper: its tables
with rows, values, the `change:` sentence of each ablation row, and hyperparameters). They ship
with the package, so reports never read outside the installed project.

    table = get_table("jdm", "table3")       # dict: id, caption, kind, metrics, rows, notes
    row = get_row("jdm", "table3", "CogVideoX-2B+JDM")
    row["values"]["IoU"]                     # 0.7141
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from vidgen.errors import ConfigError

REFERENCE_DIR = Path(__file__).parent


def list_papers() -> list[str]:
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.yaml"))


@cache
def load_paper(paper: str) -> dict[str, Any]:
    path = REFERENCE_DIR / f"{paper}.yaml"
    if not path.is_file():
        raise ConfigError(f"no reference numbers for paper {paper!r}. Known papers: {', '.join(list_papers())}")
    return yaml.safe_load(path.read_text())


def list_tables(paper: str) -> list[str]:
    return [t["id"] for t in load_paper(paper)["tables"]]


def get_table(paper: str, table: str) -> dict[str, Any]:
    for t in load_paper(paper)["tables"]:
        if t["id"] == table:
            return t
    raise ConfigError(f"{paper}: no table {table!r} in the reference. Tables: {', '.join(list_tables(paper))}")


def get_row(paper: str, table: str, label: str) -> dict[str, Any]:
    rows = get_table(paper, table)["rows"]
    for row in rows:
        if row["label"] == label:
            return row
    raise ConfigError(
        f"{paper}/{table}: no row {label!r} in the reference. Rows: {', '.join(r['label'] for r in rows)}"
    )


def metric_direction(paper: str, table: str, metric: str) -> str:
    """'up', 'down' or 'none' (no best is marked)."""
    for m in get_table(paper, table).get("metrics", []):
        if m["name"] == metric:
            return m.get("direction", "none")
    return "none"
