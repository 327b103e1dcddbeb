"""``<run.dir>/eval/<suite>/metrics.json``: the metrics of one evaluation suite, read by ``vidgen report``.

    {"suite": "shapes", "metrics": {"eval/clip_score": 27.1, "vbench/color": 0.82, ...},
     "sources": {"vidgen": {...}, "vbench": {"files": [...], "imported": "2026-12-02T03:50:00+00:00"}}}

Keys are those of summary.json / the sweep tables (``vbench/<dim>``, ``geneval/overall``, ...);
several sources (vidgen's own metrics, imported benchmark results) merge into one file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vidgen.errors import DataError
from vidgen.runs import _atomic_write_text

EVAL_DIR = "eval"
METRICS_FILE = "metrics.json"


def suite_dir(run_dir: Path, suite: str) -> Path:
    return Path(run_dir) / EVAL_DIR / suite


def read_suite(run_dir: Path, suite: str) -> dict[str, Any]:
    path = suite_dir(run_dir, suite) / METRICS_FILE
    if not path.is_file():
        return {"suite": suite, "metrics": {}, "sources": {}}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data.get("metrics"), dict):
            raise ValueError("no 'metrics' object")
        return data
    except ValueError as exc:
        raise DataError(
            f"{path}: not an eval metrics file ({exc}); rerun `vidgen eval` or remove it"
        ) from None


def write_suite(
    run_dir: Path, suite: str, metrics: dict[str, float], source: str, info: dict[str, Any]
) -> Path:
    """Merges ``metrics`` from ``source`` into the suite's metrics.json (written atomically)."""
    data = read_suite(run_dir, suite)
    data["metrics"].update({k: float(v) for k, v in metrics.items()})
    data.setdefault("sources", {})[source] = info
    path = suite_dir(run_dir, suite) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def read_eval_metrics(run_dir: Path) -> dict[str, float]:
    """Every suite's metrics of a run, merged (suites in name order; a later suite wins a shared key)."""
    root = Path(run_dir) / EVAL_DIR
    out: dict[str, float] = {}
    for path in sorted(root.glob(f"*/{METRICS_FILE}")) if root.is_dir() else []:
        out.update(read_suite(run_dir, path.parent.name)["metrics"])
    return out
