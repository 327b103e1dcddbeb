"""One import path for every external benchmark: result files -> the benchmark's aggregation -> metrics.json.

Result formats (what each benchmark's own scripts write, or one JSON object per line):

- vbench / vbench-i2v: ``<name>_eval_results.json`` of ``vbench evaluate`` ({dim: [score, [...]]}).
- t2v-compbench: one JSON object per video, ``{"category": "consistent_attribute_binding", "score": s}``;
  a category's score is the mean over its videos (T2V-CompBench's per-category average).
- geneval: ``results.jsonl`` of GenEval's ``evaluate_images.py`` (``{"tag": task, "correct": bool}``);
  a task's accuracy is the mean over its images, ``overall`` the mean over tasks (``summary_scores.py``).
- dsg: one object per prompt, ``{"score": s}`` (the fraction of its questions answered "yes" after the
  dependency rule); ``score`` is the mean over prompts.
- imagereward: one object per image, ``{"reward": r}``; ``mean`` is the mean reward.
- videophy: one object per video, ``{"sa": p, "pc": p}`` (VideoCon-Physics probabilities);
  SA / PC = percent of videos scored >= 0.5, ``avg`` = (SA + PC) / 2.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from vidgen.errors import DataError
from vidgen.eval.adapters import vbench
from vidgen.eval.results import write_suite


def _jsonl(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        try:
            text = Path(path).read_text()
            rows += [json.loads(line) for line in text.splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a JSON-lines result file ({exc})") from None
    if not rows:
        raise DataError(f"{', '.join(map(str, paths))}: no results in the file(s)")
    return rows


def _field(rows: list[dict], name: str, paths: list[Path]) -> list:
    try:
        return [row[name] for row in rows]
    except (KeyError, TypeError):
        raise DataError(f"{paths[0]}: every line needs a {name!r} field") from None


def _t2v_compbench(paths: list[Path]) -> dict[str, float]:
    rows = _jsonl(paths)
    by_cat: dict[str, list[float]] = {}
    for cat, score in zip(_field(rows, "category", paths), _field(rows, "score", paths)):
        by_cat.setdefault(str(cat), []).append(float(score))
    return {cat: statistics.fmean(v) for cat, v in by_cat.items()}


def _geneval(paths: list[Path]) -> dict[str, float]:
    rows = _jsonl(paths)
    by_tag: dict[str, list[float]] = {}
    for tag, ok in zip(_field(rows, "tag", paths), _field(rows, "correct", paths)):
        by_tag.setdefault(str(tag), []).append(float(bool(ok)))
    tasks = {tag: statistics.fmean(v) for tag, v in by_tag.items()}
    return {**tasks, "overall": statistics.fmean(tasks.values())}


def _mean_of(field: str, name: str) -> Callable[[list[Path]], dict[str, float]]:
    def read(paths: list[Path]) -> dict[str, float]:
        return {name: statistics.fmean(float(v) for v in _field(_jsonl(paths), field, paths))}

    return read


def _videophy(paths: list[Path]) -> dict[str, float]:
    rows = _jsonl(paths)
    sa = 100 * statistics.fmean(float(v) >= 0.5 for v in _field(rows, "sa", paths))
    pc = 100 * statistics.fmean(float(v) >= 0.5 for v in _field(rows, "pc", paths))
    return {"sa": sa, "pc": pc, "avg": (sa + pc) / 2}


@dataclass(frozen=True)
class Benchmark:
    name: str  # also the key prefix in metrics.json (``vbench/color``)
    read: Callable[[list[Path]], dict[str, float]]  # result files -> the benchmark's scores
    url: str


BENCHMARKS: dict[str, Benchmark] = {
    "vbench": Benchmark(
        "vbench", lambda p: vbench.vbench_scores(vbench.read_vbench_results(p)), "github.com/Vchitect/VBench"
    ),
    "vbench-i2v": Benchmark(
        "vbench-i2v",
        lambda p: vbench.vbench_i2v_scores(vbench.read_vbench_results(p)),
        "github.com/Vchitect/VBench/tree/master/vbench2_beta_i2v",
    ),
    "t2v-compbench": Benchmark("t2v-compbench", _t2v_compbench, "github.com/KaiyueSun98/T2V-CompBench"),
    "geneval": Benchmark("geneval", _geneval, "github.com/djghosh13/geneval"),
    "dsg": Benchmark("dsg", _mean_of("score", "score"), "github.com/j-min/DSG"),
    "imagereward": Benchmark("imagereward", _mean_of("reward", "mean"), "github.com/THUDM/ImageReward"),
    "videophy": Benchmark("videophy", _videophy, "github.com/Hritikbansal/videophy"),
}


def import_results(
    run_dir: Path, benchmark: str, files: list[Path], suite: str | None = None
) -> dict[str, float]:
    """Reads ``files``, aggregates as the benchmark does, merges into ``eval/<suite>/metrics.json``."""
    if benchmark not in BENCHMARKS:
        raise DataError(f"--benchmark {benchmark}: unknown; choose from {', '.join(BENCHMARKS)}")
    if missing := [str(f) for f in files if not Path(f).is_file()]:
        raise DataError(f"result file(s) not found: {', '.join(missing)}")
    bench = BENCHMARKS[benchmark]
    scores = {f"{bench.name}/{k}": v for k, v in bench.read([Path(f) for f in files]).items()}
    info = {
        "files": [str(f) for f in files],
        "imported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_suite(run_dir, suite or benchmark, scores, bench.name, info)
    return scores
