"""Collect a sweep's runs: local run folders, W&B offline run files, or the W&B API.

Every source yields `RunResult`s with the same fields, so the join and the rendering never know
where a run came from:

- local (`--runs DIR`): folders below DIR holding `sweep.json` written by `vidgen sweep run`
  for this sweep; status and values from `summary.json`, curves from `eval.csv` + `metrics.csv`.
- W&B offline (`--wandb DIR`, DIR an existing folder): every `run-*.wandb` below DIR, read by
  `vidgen.report.wandb_offline`; a run belongs to the sweep when its config has
  `vidgen_sweep: <sweep name>` (set by the local runner) or carries all the sweep's parameters.
- W&B API (`--wandb ENTITY/PROJECT`): runs of that project whose sweep has this name, or whose
  config says `vidgen_sweep: <name>` (local runs synced with `wandb sync`).

External metrics (VBench ...) are merged from `<run.dir>/external/<evaluator>.json`:

    {"evaluator": "VBench", "version": "0.1.5", "date": "2025-05-01",
     "metrics": {"multiple_objects": 0.7234, "color": 0.8260},
     "curve": [{"step": 500, "multiple_objects": 0.65}, ...]}          # optional (figures)

Keys land as `<evaluator lower-case>/<name>` (e.g. `vbench/multiple_objects`), values as the
evaluator reports them (VBench: fractions; the table link scales them to the paper's percent).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from vidgen.errors import ConfigError
from vidgen.eval.callback import read_eval
from vidgen.eval.results import read_eval_metrics
from vidgen.runs import read_metrics, read_summary
from vidgen.sweeps.agent import SWEEP_KEY
from vidgen.sweeps.schema import Sweep


@dataclass
class RunResult:
    source: str  # "local" | "wandb-offline" | "wandb"
    ref: str  # run folder or W&B path
    params: dict[str, Any]
    status: str  # completed | failed | interrupted | running | missing
    summary: dict[str, Any] = field(default_factory=dict)
    curves: list[dict[str, float]] = field(default_factory=list)  # rows with "step"
    config_hash: str = ""
    started: str = ""
    finished: str = ""
    commit: str = ""
    error: str = ""
    scale: Scale | None = None  # None: the run's config was not found


# data groups that are synthetic: a row trained on them is not at the paper's scale
SYNTHETIC_DATA = ("shapes",)


@dataclass(frozen=True)
class Scale:
    """What a run was trained at: backbone size (tiny | real), optimizer steps, data group."""

    backbone: str = "?"
    steps: int | None = None
    data: str = "?"

    @property
    def paper_scale(self) -> bool:
        """Comparable to the paper: the real backbone on real data (steps are shown, not compared)."""
        return self.backbone == "real" and self.data not in ("?", *SYNTHETIC_DATA)

    def __str__(self) -> str:
        steps = "? steps" if self.steps is None else f"{self.steps} steps"
        return f"{self.backbone} · {steps} · {self.data}"


def run_scale(config: dict[str, Any], curves: list[dict[str, float]] = ()) -> Scale | None:
    """A run's Scale from its resolved config (run folder config.yaml or the W&B run config).

    Steps: the last step the run logged (metrics.csv / W&B history), else `train.max_steps`.
    """
    if not config:
        return None
    size, data, max_steps = (_lookup(config, k) for k in ("backbone.size", "data.name", "train.max_steps"))
    logged = [int(c["step"]) for c in curves if "step" in c]
    steps = max(logged) if logged else (int(max_steps) if isinstance(max_steps, (int, float)) else None)
    return Scale(str(size) if size else "?", steps, str(data) if data else "?")


def config_hash(config: dict[str, Any]) -> str:
    """Hash of the resolved config without the run's location (same settings -> same hash)."""
    cfg = {k: v for k, v in config.items() if k not in ("run", "_wandb", SWEEP_KEY)}
    return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _iso(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds") if ts else ""


def read_external(run_dir: Path) -> tuple[dict[str, float], list[dict[str, float]]]:
    metrics: dict[str, float] = {}
    curves: list[dict[str, float]] = []
    folder = Path(run_dir) / "external"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            prefix = str(data.get("evaluator", path.stem)).lower()
            metrics.update({f"{prefix}/{k}": float(v) for k, v in data.get("metrics", {}).items()})
            for row in data.get("curve", []):
                curves.append({"step": float(row["step"]),
                               **{f"{prefix}/{k}": float(v) for k, v in row.items() if k != "step"}})
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ConfigError(f"{path}: not an external-metrics file ({err}); expected "
                              '{"evaluator": "VBench", "metrics": {"<name>": value, ...}} '
                              "(docs/sweeps.md, 'External metrics')") from None
    return metrics, curves


def curve_key(key: str) -> bool:
    """Plotted per row: the training loss (and its terms) and every evaluation metric."""
    return key.startswith(("train/loss", "eval/"))


def _merge_curves(*sources: list[dict[str, float]]) -> list[dict[str, float]]:
    by_step: dict[float, dict[str, float]] = {}
    for rows in sources:
        for row in rows:
            if "step" in row:
                by_step.setdefault(row["step"], {"step": row["step"]}).update(row)
    return [by_step[s] for s in sorted(by_step)]


def collect_local(runs_dir: str | Path, sweep: Sweep) -> list[RunResult]:
    root = Path(runs_dir)
    if not root.is_dir():
        raise ConfigError(f"--runs {root}: no such folder (the run.root the sweep ran with)")
    results = []
    for marker in sorted(root.rglob("sweep.json")):
        try:
            record = json.loads(marker.read_text())
        except ValueError:
            continue
        if record.get("sweep") != sweep.name:
            continue
        run_dir = marker.parent
        summary = read_summary(run_dir)
        status = summary.get("status") or ("failed" if record.get("returncode") not in (None, 0) else
                                           "running" if "returncode" not in record else "missing")
        error = summary.get("error", "")
        if not error and record.get("returncode") not in (None, 0):
            error = f"exit code {record['returncode']} before training started (see {run_dir / 'agent.log'})"
        external, ext_curves = read_external(run_dir)
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() \
            else {}
        metrics = [{k: v for k, v in r.items() if k == "step" or curve_key(k)} for r in read_metrics(run_dir)]
        summary_path = run_dir / "summary.json"
        results.append(RunResult(
            source="local",
            ref=str(run_dir),
            params=dict(record.get("params", {})),
            status=str(status),
            summary={**summary, **read_eval_metrics(run_dir), **external},  # + eval/<suite>/metrics.json
            curves=_merge_curves(metrics, [{(k if k == "step" else f"eval/{k}"): v for k, v in r.items()}
                                           for r in read_eval(run_dir)], ext_curves),
            config_hash=config_hash(config) if config else "",
            started=record.get("started", ""),
            finished=record.get("finished", "") or (_iso(summary_path.stat().st_mtime) if summary_path.is_file()
                                                    else ""),
            commit=record.get("commit", ""),
            error=str(error),
            scale=run_scale(config, metrics),
        ))
    return results


def _belongs(config: dict[str, Any], sweep: Sweep, wandb_sweep_name: str | None = None) -> bool:
    if wandb_sweep_name is not None:
        return wandb_sweep_name == sweep.name
    if SWEEP_KEY in config:
        return config[SWEEP_KEY] == sweep.name
    return False


def _lookup(config: dict[str, Any], key: str) -> Any:
    if key in config:
        return config[key]
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _params(config: dict[str, Any], sweep: Sweep) -> dict[str, Any]:
    return {k: _lookup(config, k) for k in sweep.parameters}


def _wandb_status(state: str, summary: dict[str, Any], config: dict[str, Any]) -> str:
    if state != "finished":
        return {"running": "running", "crashed": "failed", "failed": "failed", "killed": "interrupted"}.get(
            state, "failed")
    return "completed"


def collect_wandb_offline(root: str | Path, sweep: Sweep) -> list[RunResult]:
    from vidgen.report.wandb_offline import find_runs, read_run

    results = []
    latest: dict[str, RunResult] = {}
    for path in find_runs(root):
        run = read_run(path)
        if not _belongs(run.config, sweep):
            continue
        curves = [{"step": float(h.get("trainer/global_step", h.get("_step", 0))),
                   **{k: v for k, v in h.items() if isinstance(v, (int, float)) and not k.startswith("_")}}
                  for h in run.history]
        result = RunResult(
            source="wandb-offline",
            ref=f"{run.project}/{run.run_id} ({path})",
            params=_params(run.config, sweep),
            status=_wandb_status(run.state, run.summary, run.config),
            summary={k: v for k, v in run.summary.items() if not k.startswith("_")},
            curves=_merge_curves(curves),
            config_hash=config_hash(run.config),
            started=_iso(run.started),
            finished=_iso(os.path.getmtime(path)),
            commit=run.commit[:12],
            scale=run_scale(run.config, curves),
        )
        # a resumed run writes one file per (re)start under the same id: keep the latest
        if run.run_id not in latest or latest[run.run_id].finished <= result.finished:
            latest[run.run_id] = result
    results.extend(latest.values())
    return results


def collect_wandb_api(path: str, sweep: Sweep) -> list[RunResult]:  # pragma: no cover - needs a server
    import wandb

    api = wandb.Api()
    results = []
    for run in api.runs(path):
        config = dict(run.config)
        sweep_name = (run.sweep.config or {}).get("name") if run.sweep is not None else None
        if not _belongs(config, sweep, sweep_name):
            continue
        history = [dict(r) for r in run.scan_history()]
        curves = [{"step": float(h.get("trainer/global_step", h.get("_step", 0))),
                   **{k: v for k, v in h.items() if isinstance(v, (int, float)) and not k.startswith("_")}}
                  for h in history]
        summary = {k: v for k, v in dict(run.summary).items() if not k.startswith("_")}
        results.append(RunResult(
            source="wandb",
            ref=f"{path}/{run.id}",
            params=_params(config, sweep),
            status=_wandb_status(run.state, summary, config),
            summary=summary,
            curves=_merge_curves(curves),
            config_hash=config_hash(config),
            started=str(run.created_at),
            finished=str(getattr(run, "heartbeat_at", "") or ""),
            commit=str((run.metadata or {}).get("git", {}).get("commit", ""))[:12],
            scale=run_scale(config, curves),
        ))
    return results


def collect(sweep: Sweep, runs: str | None = None, wandb_src: str | None = None) -> list[RunResult]:
    if wandb_src:
        if Path(wandb_src).is_dir():
            return collect_wandb_offline(wandb_src, sweep)
        if wandb_src.count("/") != 1:
            raise ConfigError(f"--wandb {wandb_src}: give ENTITY/PROJECT (or a folder with offline runs)")
        return collect_wandb_api(wandb_src, sweep)
    return collect_local(runs or "outputs", sweep)
