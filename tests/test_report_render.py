"""`vidgen report`'s md / tex / html for fixed reports: the templates keep the output unchanged.

The golden files under tests/data/report/ were first written by the hand-built string renderer
(before Jinja2) and the templates reproduced them byte for byte; changes since (scale column, Δ
left out across scales, LaTeX resizebox, wrapped HTML footer) are deliberate and each has a test.
Regenerate after a deliberate change: `python tests/test_report_render.py` (then review the diff).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vidgen.report.collect import RunResult
from vidgen.report.table import build
from vidgen.sweeps.schema import load_sweep

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "data" / "report"
META = {"generated": "2026-01-01T00:00:00+00:00", "commit": "0123456789ab", "source": "run folders under runs"}


def _run(params: dict, summary: dict, status: str = "completed", error: str = "", **kw) -> RunResult:
    return RunResult("local", f"runs/{'_'.join(f'{k}{v}' for k, v in params.items())}", params, status,
                     summary, config_hash="abc123", started="2026-01-01T00:00:00+00:00",
                     finished="2026-01-01T01:00:00+00:00", commit="0123456789ab", error=error, **kw)


def sample_reports() -> dict:
    """Two reports that exercise every cell kind: seeds (mean ± std), failed, missing, n/c, external."""
    t3 = load_sweep(ROOT / "sweeps" / "jdm" / "table3_mask_quality.yaml")
    runs = [_run({"exp": "jdm_cogvideox", "seed": s}, {"eval/mask_iou": v, "eval/mask_f1": 0.5 + s / 10,
                                                       "eval/mask_pixel_acc": 0.9})
            for s, v in enumerate([0.5, 0.6, 0.7])]
    runs.append(_run({"exp": "jdm_modelscope", "seed": 0}, {}, status="failed",
                     error="RuntimeError('out of memory') & 50% of $HOME_dir"))
    t5 = load_sweep(ROOT / "sweeps" / "jdm" / "table5_regional_signal.yaml")
    runs5 = [
        _run({"exp": "jdm_cogvideox", "variant": "jdm_mask", "seed": 0},
             {"train/loss": 1.0, "vbench/multiple_objects": 0.7001, "vbench/color": 0.8}),
        _run({"exp": "jdm_cogvideox", "variant": "jdm_hed", "seed": 0}, {"train/loss": 1.0}),
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


if __name__ == "__main__":
    for name, report in sample_reports().items():
        for fname, text in _render(name, report).items():
            (GOLDEN / fname).write_text(text)
