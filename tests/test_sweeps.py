"""Sweep files, their schema check and expansion, and the local runner on the JDM mask-quality sweep."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from vidgen.errors import ConfigError
from vidgen.sweeps.cli import main as sweep_main
from vidgen.sweeps.schema import Sweep, expand, load_sweep, schema_errors
from vidgen.sweeps.validate import validate

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "sweeps").rglob("*.yaml"))
MASK_QUALITY = ROOT / "sweeps" / "jdm" / "table3_mask_quality.yaml"


def _sweep(config: dict) -> Sweep:
    base = {
        "name": "jdm/table5_regional_signal",
        "description": "JDM Table 5",
        "program": "src/vidgen/train.py",
        "method": "grid",
        "parameters": {"exp": {"value": "jdm_cogvideox"}, "variant": {"values": ["jdm_mask", "jdm_hed", "jdm_depth"]}},
        "command": ["${env}", "${interpreter}", "-m", "vidgen.train", "${args_no_hyphens}"],
    }
    return Sweep(Path("test.yaml"), {**base, **config})


def test_there_are_jdm_sweeps():
    names = {p.name for p in SWEEPS}
    assert any("mask_quality" in n for n in names)
    assert {"table1_vbench.yaml", "table5_regional_signal.yaml", "fig4_jdm_vs_finetune.yaml",
            "table6_overhead.yaml"} <= names


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_sweep_file_validates(path):
    assert validate(load_sweep(path)) == []


def test_validate_cli(capsys):
    assert sweep_main(["validate", str(MASK_QUALITY)]) == 0
    assert "ok:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"metadata": {"paper": "jdm"}}, "unknown top-level key"),
        ({"method": "hyperband"}, "method"),
        ({"parameters": {"variant": {"values": []}}}, "non-empty"),
        ({"parameters": {"lr": {"min": 0.1}}}, "needs max"),
        ({"command": ["python", "train.py"]}, "${args_no_hyphens}"),
        ({"name": "table5"}, "must be <paper>/"),
        ({"description": "an ablation"}, "must name the paper"),
        ({"parameters": {"exp": {"value": "jdm_cogvideox"}, "variant": {"values": ["jdm_mask", "jdm_nope"]}}},
         "jdm_nope"),
    ],
)
def test_validate_rejects(change, message):
    errors = validate(_sweep(change), compose=False)
    assert any(message in e for e in errors), errors


def test_schema_accepts_wandb_distributions():
    cfg = _sweep({"method": "random", "parameters": {
        "optim.lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-3},
        "seed": {"distribution": "int_uniform", "min": 0, "max": 9},
        "x": {"values": [1, 2], "probabilities": [0.5, 0.5]},
    }}).config
    assert schema_errors(cfg) == []


def test_validate_reports_a_run_that_does_not_compose():
    sweep = _sweep({"parameters": {"exp": {"value": "jdm_cogvideox"},
                                   "variant": {"values": ["jdm_mask", "jdm_hed", "jdm_depth"]},
                                   "train.no_such_key": {"value": 1}}})
    assert any("does not compose" in e for e in validate(sweep))


def test_grid_expansion_and_args_like_wandb():
    runs = expand(_sweep({"parameters": {"variant": {"values": ["jdm_mask", "jdm_hed"]},
                                         "seed": {"values": [0, 1]}}}))
    assert [r.args for r in runs] == [["variant=jdm_mask", "seed=0"], ["variant=jdm_mask", "seed=1"],
                                      ["variant=jdm_hed", "seed=0"], ["variant=jdm_hed", "seed=1"]]
    assert len({r.name for r in runs}) == 4


def test_random_expansion_is_seeded_and_bayes_is_refused():
    sweep = _sweep({"method": "random", "parameters": {"optim.lr": {"min": 0.0, "max": 1.0},
                                                       "seed": {"values": [0, 1, 2]}}})
    a, b, c = expand(sweep, count=5, seed=1), expand(sweep, count=5, seed=1), expand(sweep, count=5, seed=2)
    assert [r.params for r in a] == [r.params for r in b] != [r.params for r in c]
    assert all(0.0 <= r.params["optim.lr"] <= 1.0 for r in a)
    with pytest.raises(ConfigError, match="--count"):
        expand(sweep)
    with pytest.raises(ConfigError, match="bayes"):
        expand(_sweep({"method": "bayes"}))


def test_run_requires_local_and_dry_run_trains_nothing(tmp_path, capsys):
    assert sweep_main(["run", str(MASK_QUALITY)]) == 2
    assert "--local" in capsys.readouterr().err
    assert sweep_main(["run", str(MASK_QUALITY), "--local", "--dry-run", "--", "preset=smoke",
                       f"run.root={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert out.count("-m vidgen.train exp=jdm_") == 2 and not any(tmp_path.iterdir())
    assert sweep_main(["run", str(MASK_QUALITY), "--local", "--", "run.name=x"]) == 2


@pytest.fixture(scope="session")
def mask_quality_runs(tmp_path_factory):
    """The JDM mask-quality sweep run locally at smoke size, once per session (shared with test_report)."""
    root = tmp_path_factory.mktemp("sweep_runs")
    rc = sweep_main(["run", str(MASK_QUALITY), "--local", "--", "preset=smoke", f"run.root={root}"])
    return root, rc


def test_sweep_run_creates_one_completed_run_per_row(mask_quality_runs, capsys):
    root, rc = mask_quality_runs
    assert rc == 0
    summaries = sorted(root.rglob("summary.json"))
    rows = load_sweep(MASK_QUALITY).parameters["exp"]["values"]
    assert len(summaries) == len(rows)
    for path in summaries:
        summary = json.loads(path.read_text())
        assert summary["status"] == "completed"
        assert summary["exp"] in rows and path.parent.parent.name == summary["exp"]
        assert isinstance(summary["eval/mask_iou"], float)
        record = json.loads((path.parent / "sweep.json").read_text())
        assert record["sweep"] == "jdm/table3_mask_quality" and record["returncode"] == 0
        assert record["command"][record["command"].index("-m") + 1] == "vidgen.train"
    # a rerun trains nothing: every row is skipped
    mtimes = {p: os.path.getmtime(p) for p in summaries}
    assert sweep_main(["run", str(MASK_QUALITY), "--local", "--", "preset=smoke", f"run.root={root}"]) == 0
    out = capsys.readouterr().out
    assert out.count("already completed, skipped") == len(rows) and "running in" not in out
    assert {p: os.path.getmtime(p) for p in summaries} == mtimes


def test_a_failing_row_is_reported_and_the_others_still_run(tmp_path, capsys):
    sweep_file = tmp_path / "bad.yaml"
    text = MASK_QUALITY.read_text()
    sweep_file.write_text(text)
    # missing weights make vidgen.train fail at start-up (the config itself is valid, so the row is
    # planned): the row is reported FAILED and the exit code is 1
    rc = sweep_main(["run", str(sweep_file), "--local", "--count", "1", "--", "preset=smoke",
                     f"run.root={tmp_path / 'runs'}", f"backbone.weights={tmp_path / 'no-weights'}",
                     "train.eval_at_end=false"])
    out = capsys.readouterr().out
    assert rc == 1 and "FAILED" in out
    shutil.rmtree(tmp_path / "runs")
