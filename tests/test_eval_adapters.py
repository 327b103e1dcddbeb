"""Benchmark adapters: each benchmark's own aggregation reproduces published rows, and every result
format round-trips into eval/<suite>/metrics.json (which `vidgen report` reads)."""

from __future__ import annotations

import json

import pytest

from vidgen.errors import DataError
from vidgen.eval.adapters import vbench
from vidgen.eval.adapters.registry import import_results
from vidgen.eval.results import read_eval_metrics, read_suite
from vidgen.reference import get_row

T12 = {  # STIV Table 12 / 16 column -> VBench dimension
    "Subject Cons.": "subject_consistency",
    "Subject Consistency": "subject_consistency",
    "Background Consistency": "background_consistency",
    "Back. Cons.": "background_consistency",
    "Background Cons.": "background_consistency",
    "Temporal Flickering": "temporal_flickering",
    "Motion Smooth.": "motion_smoothness",
    "Motion Smoothness": "motion_smoothness",
    "Dynamic Degree": "dynamic_degree",
    "Aesthetic Quality": "aesthetic_quality",
    "Imaging Quality": "imaging_quality",
    "Object Class": "object_class",
    "Multiple Objects": "multiple_objects",
    "Human Action": "human_action",
    "Color": "color",
    "Spatial Rel.": "spatial_relationship",
    "Spatial Relationship": "spatial_relationship",
    "Scene": "scene",
    "App. Style": "appearance_style",
    "Temp. Style": "temporal_style",
    "Overall Cons.": "overall_consistency",
}


def _dims(values: dict) -> dict[str, float]:
    return {T12[k]: v / 100 for k, v in values.items() if k in T12}


# CogVideoX-2B: a clean row of Table 12 (its first half was reconstructed from a garbled dump, see the reference)
@pytest.mark.parametrize("label", ["CogVideoX-2B"])
def test_vbench_total_reproduces_stiv_table12_rows_from_their_dimensions(label):
    values = get_row("stiv", "table12", label)["values"]
    got = vbench.vbench_scores(_dims(values))
    # the printed dimensions are rounded to 0.1; normalisation by (max - min) < 1 amplifies that
    assert 100 * got["quality_score"] == pytest.approx(values["Quality Score"], abs=0.1)
    assert 100 * got["semantic_score"] == pytest.approx(values["Semantic Score"], abs=0.1)
    assert 100 * got["total_score"] == pytest.approx(values["Total Score"], abs=0.1)


@pytest.mark.parametrize("label", ["Scratch", "T2V-256", "T2I-512", "Both"])
def test_vbench_total_reproduces_stiv_table4_from_table16_dimensions(label):
    got = vbench.vbench_scores(_dims(get_row("stiv", "table16", label)["values"]))
    want = get_row("stiv", "table4", label)["values"]
    for ours, theirs in (("quality_score", "VBench Quality"), ("semantic_score", "VBench Semantic"),
                         ("total_score", "VBench Total")):  # fmt: skip
        assert 100 * got[ours] == pytest.approx(want[theirs], abs=0.06), ours


@pytest.mark.parametrize(
    "label", ["DynamicCrafter-256", "DynamicCrafter-512", "Animate-Anything", "SEINE-512"]
)
def test_vbench_i2v_final_score_reproduces_stiv_table13_rows(label):
    v = get_row("stiv", "table13", label)["values"]
    dims = {**_dims(v), "i2v_subject": v["I2V Subject"] / 100, "i2v_background": v["I2V Background"] / 100}
    got = vbench.vbench_i2v_scores(dims)
    assert 100 * got["quality_score"] == pytest.approx(v["I2V Quality"], abs=0.06)
    assert 100 * got["total_score"] == pytest.approx(v["Final Score"], abs=0.06)


def test_vbench_result_files_round_trip_into_metrics_json(tmp_path):
    values = get_row("stiv", "table12", "CogVideoX-2B")["values"]
    dims = _dims(values)
    quality = {
        d: [s, [{"video_path": f"x-{d}.mp4", "video_results": s}]]
        for d, s in dims.items()
        if d in vbench.QUALITY
    }
    semantic = {d: [s, []] for d, s in dims.items() if d not in vbench.QUALITY}
    files = [tmp_path / "q_eval_results.json", tmp_path / "s_eval_results.json"]
    files[0].write_text(json.dumps(quality))
    files[1].write_text(json.dumps(semantic))
    run = tmp_path / "run"
    import_results(run, "vbench", files)
    metrics = read_eval_metrics(run)
    assert metrics["vbench/color"] == pytest.approx(0.794)
    assert 100 * metrics["vbench/total_score"] == pytest.approx(80.9, abs=0.1)
    assert read_suite(run, "vbench")["sources"]["vbench"]["files"] == [str(f) for f in files]


def test_jsonl_benchmarks_aggregate_as_their_scripts(tmp_path):
    def lines(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return [path]

    run = tmp_path / "run"
    # GenEval: task accuracy over images, overall = mean over tasks (not over images)
    gen = [{"tag": "colors", "correct": c} for c in (True, True, False, True)] + [
        {"tag": "counting", "correct": False}
    ]
    assert import_results(run, "geneval", lines("g.jsonl", gen), suite="t2i")[
        "geneval/overall"
    ] == pytest.approx(0.375)
    # VideoPhy: percent of videos scored >= 0.5 on each axis; Avg is their mean
    phy = [{"sa": 0.9, "pc": 0.2}, {"sa": 0.5, "pc": 0.7}, {"sa": 0.1, "pc": 0.4}, {"sa": 0.6, "pc": 0.3}]
    got = import_results(run, "videophy", lines("p.jsonl", phy))
    assert (got["videophy/sa"], got["videophy/pc"], got["videophy/avg"]) == (75.0, 25.0, 50.0)
    tc = [{"category": "motion_binding", "score": s} for s in (0.2, 0.4)] + [
        {"category": "action_binding", "score": 0.9}
    ]
    assert import_results(run, "t2v-compbench", lines("t.jsonl", tc))[
        "t2v-compbench/motion_binding"
    ] == pytest.approx(0.3)
    import_results(run, "imagereward", lines("r.jsonl", [{"reward": -0.5}, {"reward": 1.5}]), suite="t2i")
    import_results(run, "dsg", lines("d.jsonl", [{"score": 0.5}, {"score": 1.0}]), suite="t2i")
    t2i = read_suite(run, "t2i")["metrics"]  # three benchmarks merged into one suite
    assert t2i["imagereward/mean"] == 0.5 and t2i["dsg/score"] == 0.75 and t2i["geneval/overall"] == 0.375
    with pytest.raises(DataError, match="every line needs a 'reward' field"):
        import_results(run, "imagereward", lines("bad.jsonl", [{"score": 1}]))
    with pytest.raises(DataError, match="not a VBench result file"):
        import_results(run, "vbench", lines("bad.json", [[1, 2]]))
    with pytest.raises(DataError, match="unknown; choose from vbench"):
        import_results(run, "nope", [])


T5 = {"Subj Cons": "subject_consistency", "Bg Cons": "background_consistency", "Temp Flick": "temporal_flickering",
      "Mot Smooth": "motion_smoothness", "Dyn Deg": "dynamic_degree", "Aesth Qual": "aesthetic_quality",
      "Img Qual": "imaging_quality", "I2V Subj": "i2v_subject", "I2V Bg": "i2v_background",
      "Cam Mot": "camera_motion"}  # fmt: skip


@pytest.mark.parametrize("label", ["CA", "CA + LP", "FR", "FR + CA", "FR + CA + LP"])
def test_vbench_i2v_averages_reproduce_stiv_table5(label):
    v = get_row("stiv", "table5", label)["values"]
    got = vbench.vbench_i2v_scores({d: v[k] / 100 for k, d in T5.items()})
    assert 100 * got["average"] == pytest.approx(v["Avg Scores"], abs=0.051)  # every row: mean of 10 columns
    if label in ("CA + LP", "FR + CA", "FR + CA + LP"):  # the text's mean of 3; CA and FR print other values
        assert 100 * got["i2v_average"] == pytest.approx(v["I2V Avg Scores"], abs=0.1)
    assert set(got) >= {"quality_score", "i2v_score", "total_score"}


def test_vbench_i2v_results_round_trip_into_stiv_table_cells(tmp_path):
    """Result files of VBench-I2V in its format -> `vidgen eval import` -> the keys every STIV I2V cell reads."""
    from vidgen.eval.cli import main
    from vidgen.report.collect import collect_local
    from vidgen.report.table import build
    from vidgen.sweeps.schema import load_sweep
    from vidgen.sweeps.tables import TABLES

    v = get_row("stiv", "table5", "FR")["values"]
    result = tmp_path / "i2v_eval_results.json"
    result.write_text(json.dumps({d: [v[k] / 100, [{"video_path": "a-0.mp4", "video_results": 0.5}]]
                                  for k, d in T5.items()}))  # fmt: skip
    sweep = load_sweep("sweeps/stiv/table5_ti2v_components.yaml")
    run = tmp_path / "runs" / "fr"
    run.mkdir(parents=True)
    (run / "sweep.json").write_text(
        json.dumps({"sweep": sweep.name, "params": {"variant": "stiv/table5_fr"}})
    )
    (run / "summary.json").write_text(json.dumps({"status": "completed"}))
    assert main(["import", str(run), "vbench-i2v", str(result)]) == 0
    keys = set(read_eval_metrics(run))
    for name in ("stiv/table5_ti2v_components", "stiv/table6_multitask", "stiv/table7_jit_motion"):
        wanted = {
            m.key.removeprefix("vbench-i2v/") for m in TABLES[name].metrics if m.key.startswith("vbench-i2v/")
        }
        assert {f"vbench-i2v/{k}" for k in wanted} <= keys, name
    row = next(
        r for r in build(sweep, collect_local(tmp_path / "runs", sweep)).rows if r.value == "stiv/table5_fr"
    )
    cells = {c.metric.paper: c for c in row.cells}
    assert {c.source for c in row.cells} == {"adapter"} and all(c.mean is not None for c in row.cells)
    assert cells["Avg Scores"].mean == pytest.approx(v["Avg Scores"], abs=0.051)
    assert cells["Cam Mot"].mean == pytest.approx(v["Cam Mot"])
