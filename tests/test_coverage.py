"""`vidgen tables`: 53 entries (46 tables + 7 figures), status derived from the repository's files."""

from __future__ import annotations

import json
import shutil

from vidgen.coverage import MD_MARKER, REPO_ROOT, coverage, main, to_markdown


def _by_id(entries):
    return {f"{e.paper}/{e.table}": e for e in entries}


def test_53_entries_and_status_follows_the_sweep_and_result_files(tmp_path):
    entries = _by_id(coverage())
    assert len(entries) == 53 and sum(1 for k in entries if "/fig" in k) == 7
    t5 = entries["jdm/table5"]
    assert t5.sweep == "sweeps/jdm/table5_regional_signal.yaml" and t5.level == "runs at smoke size"
    assert t5.rows_runnable == 3 and set(t5.metric_sources.values()) == {"adapter"}  # VBench
    assert entries["jdm/table3"].level == "effect shown on shapes world"
    assert entries["instancediffusion/table2"].metric_sources["Acc^color"] == "computed"
    assert entries["stiv/table12"].metric_sources["Color"] == "adapter"  # VBench's Color
    assert entries["jdm/table4"].metric_sources == dict.fromkeys(
        ["Baseline", "JDM", "Indecision"], "not reproducible"
    )
    # a copy of the repository without one sweep file and one result file
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "sweeps", root / "sweeps")
    shutil.copytree(REPO_ROOT / "benchmarks" / "results", root / "benchmarks" / "results")
    (root / "sweeps" / "jdm" / "table5_regional_signal.yaml").unlink()
    (root / "benchmarks" / "results" / "jdm_mask_iou.json").unlink()
    changed = _by_id(coverage(root))
    assert changed["jdm/table5"].sweep is None and changed["jdm/table5"].level == "none"
    assert changed["jdm/table5"].why_no_sweep == "no sweep yet"
    assert changed["jdm/table3"].level == "runs at smoke size"  # the shapes-world evidence is gone
    assert changed["jdm/table6"].level == entries["jdm/table6"].level  # the rest is unchanged
    page = to_markdown(list(changed.values()))
    assert "| table5 | ablation | no sweep yet | 0/3 |" in page  # the page follows the repository too


def test_docs_tables_md_is_the_current_coverage_page():
    page = (REPO_ROOT / "docs" / "tables.md").read_text()
    assert page == to_markdown(coverage()), (
        "docs/tables.md is stale: run `vidgen tables --md --out docs/tables.md`"
    )


def test_tables_md_lists_every_entry_and_why_rows_do_not_run(tmp_path, capsys):
    assert main(["--md"]) == 0
    page = capsys.readouterr().out
    assert page.startswith(MD_MARKER) and page.count("\n| table | kind |") == 5  # one table per paper
    assert (
        sum(1 for line in page.splitlines() if line.startswith("| table") or line.startswith("| fig"))
        == 53 + 5
    )
    assert "Sora: not reproducible: closed model" in page
    assert "| table4 | comparison | user study (20 participants) |" in page
    out = tmp_path / "tables.md"
    assert main(["--md", "--out", str(out)]) == 0 and out.read_text() == page
    assert main(["--md", "--out", str(out)]) == 0  # its own page: regenerated in place
    mine = tmp_path / "notes.md"
    mine.write_text("my notes\n")
    assert main(["--md", "--out", str(mine)]) == 2  # a file it did not write is never replaced
    assert "was not written by `vidgen tables --md`" in capsys.readouterr().err
    assert mine.read_text() == "my notes\n"


def test_tables_cli_json(capsys):
    from vidgen.cli import main as vidgen

    assert vidgen(["tables", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 53
    assert main(["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 53 and {"paper", "table", "kind", "sweep", "why_no_sweep", "rows_runnable", "metric_sources",
                                "level"} <= set(rows[0])  # fmt: skip
