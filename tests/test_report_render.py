"""`vidgen report`'s md / tex / html for fixed reports: the templates keep the output unchanged.

The golden files under tests/data/report/ were first written by the hand-built string renderer
(before Jinja2) and the templates reproduced them byte for byte; changes since (scale column, Δ
left out across scales, LaTeX resizebox, wrapped HTML footer) are deliberate and each has a test.
Regenerate after a deliberate change: `python tests/test_report_render.py` (then review the diff).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vidgen.report.collect import RunResult, Scale, run_scale
from vidgen.report.table import build
from vidgen.sweeps.schema import load_sweep

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "data" / "report"
META = {
    "generated": "2026-01-01T00:00:00+00:00",
    "commit": "0123456789ab",
    "source": "run folders under runs",
}


def _run(params: dict, summary: dict, status: str = "completed", error: str = "", **kw) -> RunResult:
    return RunResult(
        "local",
        f"runs/{'_'.join(f'{k}{v}' for k, v in params.items())}",
        params,
        status,
        summary,
        config_hash="abc123",
        started="2026-01-01T00:00:00+00:00",
        finished="2026-01-01T01:00:00+00:00",
        commit="0123456789ab",
        error=error,
        **kw,
    )


REAL = Scale("real", 10000, "shards")
TINY = Scale("tiny", 8, "shapes")


def sample_reports() -> dict:
    """Two reports that exercise every cell kind: seeds (mean ± std), failed, missing, n/c, external,
    and both scales (Δ shown for the real-scale rows only)."""
    t3 = load_sweep(ROOT / "sweeps" / "jdm" / "table3_mask_quality.yaml")
    runs = [
        _run(
            {"exp": "jdm_cogvideox", "seed": s},
            {"eval/mask_iou": v, "eval/mask_f1": 0.5 + s / 10, "eval/mask_pixel_acc": 0.9},
            scale=REAL,
        )
        for s, v in enumerate([0.5, 0.6, 0.7])
    ]
    runs.append(
        _run(
            {"exp": "jdm_modelscope", "seed": 0},
            {},
            status="failed",
            error="RuntimeError('out of memory') & 50% of $HOME_dir",
            scale=TINY,
        )
    )
    t5 = load_sweep(ROOT / "sweeps" / "jdm" / "table5_regional_signal.yaml")
    runs5 = [
        _run(
            {"exp": "jdm_cogvideox", "variant": "jdm_mask", "seed": 0},
            {"train/loss": 1.0, "vbench/multiple_objects": 0.7001, "vbench/color": 0.8},
            scale=REAL,
        ),
        _run(
            {"exp": "jdm_cogvideox", "variant": "jdm_hed", "seed": 0},
            {"train/loss": 1.0, "vbench/multiple_objects": 0.6, "vbench/color": 0.7},
            scale=TINY,
        ),
    ]
    for sweep in (t3, t5):  # the footer names the sweep file: keep it checkout-independent
        sweep.path = sweep.path.relative_to(ROOT)
    return {"table3": build(t3, runs), "table5": build(t5, runs5)}


def _render(name: str, report) -> dict[str, str]:
    from vidgen.report.render import html_table, to_html, to_latex, to_markdown

    return {
        f"{name}.md": to_markdown(report, META, {"bars": f"{name}_bars.png"}),
        f"{name}.tex": to_latex(report, META),
        f"{name}.html": to_html(report, META, {}),
        f"{name}.table.html": html_table(report),
    }


@pytest.mark.parametrize("name", ["table3", "table5"])
def test_output_matches_the_golden_files(name):
    for fname, text in _render(name, sample_reports()[name]).items():
        assert text == (GOLDEN / fname).read_text(), f"{fname} changed (see this file's docstring)"


def _compile(tex: str, folder: Path) -> str:
    """pdflatex log of an article page holding the generated table (the report's own preamble needs)."""
    doc = folder / "doc.tex"
    doc.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
        + tex
        + "\n\\end{document}\n"
    )
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = (folder / "doc.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-2000:]
    return log


@pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="no pdflatex (apt-get install texlive-latex-base texlive-latex-recommended)",
)
@pytest.mark.parametrize("name", ["table3", "table5"])
def test_latex_table_compiles_without_overfull_boxes(name, tmp_path):
    log = _compile(_render(name, sample_reports()[name])[f"{name}.tex"], tmp_path)
    assert "Overfull \\hbox" not in log, [line for line in log.splitlines() if "Overfull" in line]


def test_scale_is_marked_and_delta_left_out_across_scales():
    files = _render("table5", sample_reports()["table5"])
    md_rows = {
        line.split(" | ")[0].strip("| "): line
        for line in files["table5.md"].splitlines()
        if line.startswith("| JDM-")
    }
    assert "| real · 10000 steps · shards | **70.01**<sup>a</sup> / 72.34 (-2.33) |" in md_rows["JDM-Mask"]
    assert (
        "| tiny · 8 steps · shapes | 60.00<sup>a</sup> / 70.32 | " in md_rows["JDM-HED"]
    )  # no Δ at tiny scale
    assert "(" not in md_rows["JDM-HED"].split("shapes |", 1)[1].replace("(n=", "")
    tex = files["table5.tex"]
    assert "JDM-HED & tiny $\\cdot$ 8 steps $\\cdot$ shapes & 60.00$^{\\mathrm{a}}$ / 70.32 & " in tex
    assert "\\textbf{70.01}$^{\\mathrm{a}}$ / 72.34 (-2.33)" in tex
    html = files["table5.table.html"]
    assert '<span class="scale other">tiny · 8 steps · shapes</span>' in html
    assert '<span class="scale">real · 10000 steps · shards</span>' in html
    assert html.count('class="diff"') == 2  # JDM-Mask's two numbers only


def test_scale_from_run_config():
    config = {"backbone": {"size": "tiny"}, "data": {"name": "shapes"}, "train": {"max_steps": 8}}
    assert run_scale(config) == Scale("tiny", 8, "shapes") and not run_scale(config).paper_scale
    real = {"backbone.size": "real", "data.name": "shards", "train.max_steps": 10000}  # W&B's flat keys
    assert run_scale(real, [{"step": 1.0}, {"step": 4000.0}]) == Scale("real", 4000, "shards")  # last logged
    assert run_scale(real).paper_scale and run_scale({}) is None


def test_html_footer_wraps():
    page = _render("table3", sample_reports()["table3"])["table3.html"]
    assert "overflow-wrap:anywhere" in page.split("<style>")[1].split("</style>")[0]
    footer = page.split("<footer>")[1].split("</footer>")[0]
    assert footer.startswith("<ul><li>sweep: jdm/table3_mask_quality") and "<br>" not in footer


if __name__ == "__main__":
    for name, report in sample_reports().items():
        for fname, text in _render(name, report).items():
            (GOLDEN / fname).write_text(text)
