"""`vidgen report`: the paper's table beside ours, from local run folders and offline W&B runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from test_sweeps import MASK_QUALITY, mask_quality_runs  # noqa: F401  (session fixture: one sweep run)
from vidgen.reference import REFERENCE_DIR, get_row, list_papers
from vidgen.report.cli import main as report_main
from vidgen.report.wandb_offline import find_runs, read_run

ROOT = Path(__file__).resolve().parents[1]
PAPER_T3 = ["0.3264", "0.3348", "0.4262", "0.7141", "0.7561", "0.8031"]
NUMBER = r"-?\d+\.\d{4}"


def _md_rows(md: str) -> dict[str, list[str]]:
    """Markdown table rows: label -> metric cells."""
    rows = {}
    for line in md.splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cols) > 4 and cols[1].startswith("`") and cols[0] != "row":
            rows[cols[0]] = cols[4:]  # after row, value, runs, scale
    return rows


def _report(tmp_path, *args) -> dict[str, str]:
    out = tmp_path / "report"
    assert report_main([*args, "--out", str(out)]) == 0
    return {
        p.suffix.lstrip("."): p.read_text()
        for p in out.iterdir()
        if p.suffix in (".md", ".tex", ".html", ".json")
    }


def test_reference_copies_ship_with_the_package():
    assert set(list_papers()) == {"jdm", "instancev", "instancediffusion", "ingredients", "stiv"}
    assert get_row("jdm", "table3", "CogVideoX-2B+JDM")["values"]["IoU"] == 0.7141
    shared = ROOT.parent / "shared" / "reference"
    if shared.is_dir():
        for path in shared.glob("*.yaml"):
            assert (REFERENCE_DIR / path.name).read_text() == path.read_text(), f"{path.name} differs"


def test_report_from_local_runs(mask_quality_runs, tmp_path):  # noqa: F811
    root, _ = mask_quality_runs
    files = _report(tmp_path, str(MASK_QUALITY), "--runs", str(root))
    assert set(files) == {"md", "tex", "html", "json"}
    for text in files.values():
        for number in PAPER_T3:
            assert number in text
    rows = _md_rows(files["md"])
    assert set(rows) == {"ModelScopeT2V+JDM", "CogVideoX-2B+JDM"}
    for cells in rows.values():
        assert len(cells) == 3
        for cell in cells:  # ours (computed here) / paper: ours is a number; no Δ, the smoke runs are tiny
            assert re.match(rf"^(\*\*)?{NUMBER}(\*\*)?<sup>c</sup> / (\*\*)?{NUMBER}(\*\*)?$", cell), cell
    assert "| tiny · 8 steps · shapes |" in files["md"]
    html = files["html"]
    assert "data:image/png;base64," in html and "<img" in html
    assert not re.search(r'src="(?!data:)', html)  # self-contained
    assert "config " in files["md"] and "commit" in files["md"]  # footer: hashes, commit, runs used


def test_failed_and_missing_runs_show_as_such(mask_quality_runs, tmp_path):  # noqa: F811
    root, _ = mask_quality_runs
    copy = tmp_path / "runs"
    shutil.copytree(root, copy)
    (summary,) = copy.glob("jdm_modelscope/*/summary.json")
    data = json.loads(summary.read_text())
    summary.write_text(json.dumps({**data, "status": "failed", "error": "RuntimeError('out of memory')"}))
    shutil.rmtree(next(copy.glob("jdm_cogvideox/*")))
    files = _report(tmp_path, str(MASK_QUALITY), "--runs", str(copy))
    rows = _md_rows(files["md"])
    assert all(c.startswith("failed") for c in rows["ModelScopeT2V+JDM"])
    assert all(c.startswith("missing") for c in rows["CogVideoX-2B+JDM"])
    assert "out of memory" in files["md"] and "no run for this row" in files["md"]
    assert "0.7141" in files["md"]  # the paper's number is still shown
    for fmt in ("tex", "html"):
        assert "failed" in files[fmt] and "missing" in files[fmt]


def test_report_from_offline_wandb_runs(mask_quality_runs, tmp_path):  # noqa: F811
    root, _ = mask_quality_runs
    wandb_files = find_runs(root)
    assert len(wandb_files) == 2
    run = read_run(wandb_files[0])
    assert run.exit_code == 0 and run.config["vidgen_sweep"] == "jdm/table3_mask_quality"
    assert isinstance(run.summary["eval/mask_iou"], float) and run.history
    local = _md_rows(_report(tmp_path / "a", str(MASK_QUALITY), "--runs", str(root), "--format", "md")["md"])
    offline = _md_rows(
        _report(tmp_path / "b", str(MASK_QUALITY), "--wandb", str(root), "--format", "md")["md"]
    )
    assert offline == local  # same values whether read from run folders or from the W&B run files


def _fake_run(root: Path, sweep: str, params: dict, summary: dict, eval_rows=(), external=None) -> Path:
    run = root / str(params["exp"]) / "_".join(f"{k}{v}" for k, v in params.items())
    run.mkdir(parents=True)
    (run / "sweep.json").write_text(json.dumps({"sweep": sweep, "params": params, "returncode": 0}))
    (run / "summary.json").write_text(json.dumps({"status": "completed", **summary}))
    (run / "config.yaml").write_text(
        f"seed: {params.get('seed', 0)}\nbackbone: {{size: real}}\n"
        "data: {name: shards}\ntrain: {max_steps: 1000}\n"
    )  # paper scale: Δ shown
    if eval_rows:
        keys = sorted({k for r in eval_rows for k in r} - {"step"})
        (run / "eval.csv").write_text(
            "\n".join(
                ["step," + ",".join(keys)]
                + [",".join([str(r["step"]), *(str(r[k]) for k in keys)]) for r in eval_rows]
            )
            + "\n"
        )
    if external:
        (run / "external").mkdir()
        (run / "external" / "vbench.json").write_text(json.dumps(external))
    return run


def test_seeds_give_mean_and_std(tmp_path):
    for seed, iou in enumerate([0.5, 0.6, 0.7]):
        _fake_run(
            tmp_path / "runs",
            "jdm/table3_mask_quality",
            {"exp": "jdm_cogvideox", "seed": seed},
            {"eval/mask_iou": iou, "eval/mask_f1": 0.5, "eval/mask_pixel_acc": 0.9},
        )
    md = _report(tmp_path, str(MASK_QUALITY), "--runs", str(tmp_path / "runs"), "--format", "md")["md"]
    cells = _md_rows(md)["CogVideoX-2B+JDM"]
    assert cells[0].startswith("0.6000 ± 0.1000 (n=3)<sup>c</sup> / **0.7141** (-0.1141)")
    assert _md_rows(md)["ModelScopeT2V+JDM"][0].startswith("missing")


def test_vbench_not_computed_names_the_evaluator_and_import_works(tmp_path):
    sweep = str(ROOT / "sweeps" / "jdm" / "table5_regional_signal.yaml")
    runs = tmp_path / "runs"
    _fake_run(
        runs,
        "jdm/table5_regional_signal",
        {"exp": "jdm_cogvideox", "variant": "jdm_mask", "seed": 0},
        {"train/loss": 1.0},
        external={"evaluator": "VBench", "metrics": {"multiple_objects": 0.7001}},
    )
    _fake_run(
        runs,
        "jdm/table5_regional_signal",
        {"exp": "jdm_cogvideox", "variant": "jdm_hed", "seed": 0},
        {"train/loss": 1.0},
    )
    files = _report(tmp_path, sweep, "--runs", str(runs))
    rows = _md_rows(files["md"])
    assert rows["JDM-Mask"][0].startswith("70.01<sup>a</sup> / 72.34 (-2.33)")  # VBench fraction -> percent
    assert rows["JDM-HED"][0].startswith("n/c")
    assert "VBench" in files["md"] and "external/vbench.json" in files["md"]
    assert rows["JDM-Depth"][0].startswith("missing")


def test_figure_curves_from_eval_csv(tmp_path):
    sweep = str(ROOT / "sweeps" / "jdm" / "fig4_jdm_vs_finetune.yaml")
    runs = tmp_path / "runs"
    _fake_run(
        runs,
        "jdm/fig4_jdm_vs_finetune",
        {"exp": "jdm_cogvideox", "train.eval_every": 500, "seed": 0},
        {"eval/mask_iou": 0.4, "train/loss": 0.5},
        eval_rows=[{"step": 500, "mask_iou": 0.2}, {"step": 1000, "mask_iou": 0.4}],
    )
    _fake_run(
        runs,
        "jdm/fig4_jdm_vs_finetune",
        {"exp": "ft_cogvideox", "train.eval_every": 500, "seed": 0},
        {"train/loss": 0.6},
    )
    files = _report(tmp_path, sweep, "--runs", str(runs))
    assert files["html"].count("data:image/png;base64,") == 3  # bars + curves + the JDM row's own curves
    assert (tmp_path / "report" / "fig4_jdm_vs_finetune_curves.png").is_file()
    assert (tmp_path / "report" / "fig4_jdm_vs_finetune_curves_jdm_cogvideox.png").is_file()
    rows = _md_rows(files["md"])
    assert rows["Direct fine-tuning"][6].startswith("n/c")  # no masks without JDM
    assert "only JDM generates masks" in files["md"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "pdf"], "--format"),
        (["--wandb", "a/b/c"], "ENTITY/PROJECT"),
        (["--runs", "/no/such/folder"], "no such folder"),
    ],
)
def test_report_errors(tmp_path, capsys, args, message):
    assert report_main([str(MASK_QUALITY), *args, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_training_curves_per_row_from_metrics_csv(tmp_path):
    from vidgen.report.collect import collect
    from vidgen.report.render import figures
    from vidgen.report.table import build
    from vidgen.sweeps.schema import load_sweep

    runs = tmp_path / "runs"
    for seed in (0, 1):
        run = _fake_run(
            runs,
            "jdm/table3_mask_quality",
            {"exp": "jdm_cogvideox", "seed": seed},
            {"eval/mask_iou": 0.6},
            eval_rows=[{"step": 4, "mask_iou": 0.3}, {"step": 8, "mask_iou": 0.6}],
        )
        (run / "metrics.csv").write_text(
            "step,epoch,train/loss,train/lr,train/loss_fine\n"
            + "".join(f"{s},0,{1 / s},1e-4,{2 / s}\n" for s in range(1, 9))
        )
    sweep = load_sweep(MASK_QUALITY)
    collected = collect(sweep, runs=str(runs))
    curves = collected[0].curves
    assert [c["step"] for c in curves] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert curves[3] == {"step": 4.0, "train/loss": 0.25, "train/loss_fine": 0.5, "eval/mask_iou": 0.3}
    assert collected[0].scale.steps == 8  # the last logged step
    pngs = figures(build(sweep, collected))
    assert {"bars", "curves", "curves_jdm_cogvideox"} <= set(pngs) and "curves_jdm_modelscope" not in pngs
    assert pngs["curves_jdm_cogvideox"][:8] == b"\x89PNG\r\n\x1a\n"


def test_every_cell_says_where_its_value_came_from(tmp_path):
    """computed / adapter / not reproducible / n/c per cell, in md, tex, html and json, from vidgen.coverage."""
    from vidgen.coverage import CLOSED, PUBLISHED, coverage
    from vidgen.report import render
    from vidgen.report.collect import collect_local
    from vidgen.report.table import build
    from vidgen.sweeps.schema import load_sweep

    runs = tmp_path / "runs"
    _fake_run(
        runs,
        "jdm/table1_vbench",
        {"exp": "jdm_cogvideox", "seed": 0},
        {"train/loss": 1.0},
        external={"evaluator": "VBench", "metrics": {"color": 0.8}},
    )
    sweep = load_sweep(ROOT / "sweeps" / "jdm" / "table1_vbench.yaml")
    report = build(sweep, collect_local(runs, sweep))
    meta = {"generated": "now", "commit": "abc", "source": "test"}
    files = {
        "json": render.to_json(report, meta),
        "md": render.to_markdown(report, meta),
        "tex": render.to_latex(report, meta),
        "html": render.to_html(report, meta, {}),
    }  # no figures: fast
    table = json.loads(files["json"])
    rows = {r["label"]: r for r in table["rows"]}
    cells = {c["metric"]: c for c in rows["CogVideoX-2B +JDM"]["cells"]}
    assert cells["Color"]["source"] == "adapter" and cells["Color"]["ours"] == pytest.approx(80.0)
    assert cells["Scene"]["source"] == "n/c" and cells["Scene"]["ours"] is None
    sora = rows["Sora"]
    assert sora["paper_only"] and {c["source"] for c in sora["cells"]} == {"not reproducible"}
    assert sora["cells"][0]["reason"] == CLOSED and sora["cells"][0]["paper"] is not None
    assert {c["source"] for c in rows["VideoCrafter2"]["cells"]} == {"n/c"}
    assert rows["VideoCrafter2"]["cells"][0]["reason"] == PUBLISHED
    # one source of truth: the cell's source is the column's source in `vidgen tables`
    entry = next(e for e in coverage() if (e.paper, e.table) == ("jdm", "table1"))
    assert entry.metric_sources["Color"] == cells["Color"]["source"]
    assert entry.paper_only_rows["Sora"] == f"not reproducible: {CLOSED}"
    md = files["md"]
    assert "| Sora | — | paper only | — | n/r [" in md and "80.00<sup>a</sup> / " in md
    assert md.count(f"n/r — {CLOSED}") == 1 and "Provenance" in md  # one note for Sora, Gen-3 and Kling
    assert r"80.00$^{\mathrm{a}}$" in files["tex"] and "n/r" in files["tex"]
    assert '<sup class="src" title="adapter">a</sup>' in files["html"] and "n/r" in files["html"]
