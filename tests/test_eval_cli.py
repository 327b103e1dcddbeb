"""`vidgen eval`: prompts -> videos in eval/<suite>/ (atomic, resumable, sharded) -> metrics.json -> report cells."""

from __future__ import annotations

import json

import pytest
import torch

from vidgen.eval import runner, suites
from vidgen.eval.cli import main, split_args
from vidgen.eval.results import read_suite


def _items(n):
    return [suites.Item(f"{i:04d}-0.mp4", f"p{i}", i) for i in range(n)]


def test_shards_are_disjoint_complete_and_balanced():
    items = _items(10)
    parts = [suites.shard(items, r, 3) for r in range(3)]
    assert sorted(it.path for p in parts for it in p) == sorted(it.path for it in items)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert not set(parts[0]) & set(parts[1])
    with pytest.raises(Exception, match="rank 3 is outside world size 3"):
        suites.shard(items, 3, 3)


def test_rank_and_world_come_from_slurm(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert runner.rank_and_world() == (0, 1)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_PROCID", "2")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert runner.rank_and_world() == (2, 4)


def test_vbench_suite_uses_vbench_file_names(tmp_path):
    info = tmp_path / "VBench_full_info.json"
    info.write_text(json.dumps([{"prompt_en": "a cat", "dimension": ["color"]}, {"prompt_en": "a dog", "dimension": []},
                                {"prompt_en": "a cat", "dimension": ["scene"]}]))  # fmt: skip
    got = suites.items(suites.get_suite("vbench"), {"prompts": str(info)}, base_seed=0)
    assert [it.path for it in got[:6]] == [f"a cat-{i}.mp4" for i in range(5)] + ["a dog-0.mp4"]
    assert len(got) == 10  # two unique prompts x 5 samples
    only = suites.items(
        suites.get_suite("vbench"), {"prompts": str(info), "dimensions": "scene", "samples": "1"}, 0
    )
    assert [it.path for it in only] == ["a cat-0.mp4"]
    folder = tmp_path / "t2vc"
    folder.mkdir()
    (folder / "2_motion_binding.txt").write_text("a ball rolls left\na car drives right\n")
    got = suites.items(suites.get_suite("t2v-compbench"), {"prompts": str(folder)}, base_seed=0)
    assert [it.path for it in got] == ["motion_binding/0001.mp4", "motion_binding/0002.mp4"]


class _FakeGenerator:
    """Stands in for the model: a constant video per prompt; counts calls; can die mid-way."""

    calls: list[str] = []
    die_after: int | None = None
    fps = 8.0

    def __init__(self, cfg, ckpt):
        pass

    def __call__(self, prompt, seed, index=0):
        if self.die_after is not None and len(self.calls) >= self.die_after:
            raise KeyboardInterrupt  # the job is killed while generating
        self.calls.append(prompt)
        return torch.full((3, 2, 16, 16), -0.5 + 0.1 * seed)


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "Generator", _FakeGenerator)
    _FakeGenerator.calls, _FakeGenerator.die_after = [], None
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"prompt {i}\n" for i in range(4)))
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"data": {"name": "shards"}, "backbone": {"weights": "w"},
                            "sample": {"seed": 0, "steps": 2, "guidance": "cfg", "guidance_scale": 6.0}})  # fmt: skip
    return cfg, {"prompts": str(prompts)}


def test_interrupted_eval_resumes_without_generating_anything_twice(fake, tmp_path):
    cfg, opts = fake
    run = tmp_path / "run"
    _FakeGenerator.die_after = 2
    with pytest.raises(KeyboardInterrupt):
        runner.run_eval(cfg, run, "prompts", opts, None)
    folder = run / "eval" / "prompts"
    assert sorted(p.name for p in folder.iterdir()) == [
        "0000-0.mp4",
        "0001-0.mp4",
        "prompts.json",
    ]  # no temp file
    _FakeGenerator.die_after = None
    made, metrics = runner.run_eval(cfg, run, "prompts", opts, None)
    assert made == 2 and _FakeGenerator.calls == [f"prompt {i}" for i in range(4)]  # each prompt once
    assert runner.run_eval(cfg, run, "prompts", opts, None)[0] == 0
    assert json.loads((folder / "prompts.json").read_text())["0003-0.mp4"] == "prompt 3"


def test_ranks_generate_their_shard_and_the_single_task_scores(fake, tmp_path):
    from test_eval_metrics import _I3DStandIn, _script

    cfg, opts = fake
    run = tmp_path / "run"
    made, metrics = runner.run_eval(cfg, run, "prompts", opts, None, rank=1, world=2)
    assert (made, metrics) == (2, None) and _FakeGenerator.calls == ["prompt 1", "prompt 3"]
    real = tmp_path / "real"
    from vidgen.eval.generate import write_atomic

    for i in range(3):
        write_atomic(
            real / f"{i}.mp4", torch.rand(3, 2, 16, 16, generator=torch.Generator().manual_seed(i)) * 2 - 1
        )
    opts = {
        **opts,
        "metrics": "fvd",
        "fvd.i3d": _script(_I3DStandIn(), tmp_path / "i3d.pt"),
        "real": str(real),
    }
    made, metrics = runner.run_eval(cfg, run, "prompts", opts, None)
    assert made == 2 and _FakeGenerator.calls == ["prompt 1", "prompt 3", "prompt 0", "prompt 2"]
    assert metrics["eval/fvd"] > 0 and read_suite(run, "prompts")["metrics"] == metrics
    renamed = runner.rename(metrics, "fvd:general/fvd")  # InstanceV Table 2 reads general/fvd
    assert renamed == {"general/fvd": metrics["eval/fvd"]}


def test_every_local_weight_metric_scores_the_written_videos(fake, tmp_path):
    from test_eval_metrics import _InceptionStandIn, _script, _tiny_clip_folder
    from vidgen.eval.generate import write_atomic

    cfg, opts = fake
    for i in range(2):
        write_atomic(tmp_path / "real" / f"{i}.mp4", torch.full((3, 2, 16, 16), -0.5 + 0.1 * i))
    opts = {**opts, "metrics": "clip_score,temporal,fid", "clip": _tiny_clip_folder(tmp_path / "clip"),
            "fid.inception": _script(_InceptionStandIn(), tmp_path / "inception.pt"), "real": str(tmp_path / "real")}  # fmt: skip
    _, metrics = runner.run_eval(cfg, tmp_path / "run", "prompts", opts, None)
    assert set(metrics) == {"eval/clip_score", "eval/temporal", "eval/fid"}
    assert metrics["eval/temporal"] == pytest.approx(1.0, abs=1e-4)  # the fake's videos are still
    assert 0.0 <= metrics["eval/clip_score"] <= 100.0 and metrics["eval/fid"] >= 0.0


def test_geneval_suite_writes_images_in_genevals_layout(fake, tmp_path):
    cfg, _ = fake
    meta = tmp_path / "evaluation_metadata.jsonl"
    rows = [{"tag": "colors", "prompt": "a photo of a red cup"}, {"tag": "counting", "prompt": "two dogs"}]
    meta.write_text("".join(json.dumps(r) + "\n" for r in rows))
    made, _ = runner.run_eval(cfg, tmp_path / "run", "geneval", {"prompts": str(meta), "samples": "2"}, None)
    folder = tmp_path / "run" / "eval" / "geneval"
    assert made == 4 and sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == [
        "00000/samples/0000.png", "00000/samples/0001.png", "00001/samples/0000.png", "00001/samples/0001.png"]  # fmt: skip
    assert json.loads((folder / "00001" / "metadata.jsonl").read_text()) == rows[1]
    from PIL import Image

    assert Image.open(folder / "00000" / "samples" / "0001.png").size == (16, 16)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    assert main(["import", str(tmp_path), "vbench"]) == 2
    assert "usage: vidgen eval import" in capsys.readouterr().err
    run, suite, opts, ckpt, overrides = split_args(["RUN", "suite=vbench", "eval.limit=2", "sample.steps=4"])
    assert (run, suite, opts, overrides) == ("RUN", "vbench", {"limit": "2"}, ["sample.steps=4"])


def test_report_reads_imported_benchmark_scores_into_the_table_cells(tmp_path):
    from test_eval_adapters import _dims
    from vidgen.reference import get_row
    from vidgen.report.collect import collect_local
    from vidgen.report.table import build
    from vidgen.sweeps.schema import load_sweep

    sweep = load_sweep("sweeps/jdm/table5_regional_signal.yaml")
    run = tmp_path / "runs" / "jdm_cogvideox" / "mask"
    run.mkdir(parents=True)
    (run / "sweep.json").write_text(
        json.dumps({"sweep": sweep.name, "params": {"variant": "jdm_mask"}, "returncode": 0})
    )
    (run / "summary.json").write_text(json.dumps({"status": "completed"}))
    result = tmp_path / "vbench_eval_results.json"
    dims = _dims(get_row("stiv", "table12", "CogVideoX-2B")["values"])
    result.write_text(json.dumps({d: [s, []] for d, s in dims.items()}))
    assert main(["import", str(run), "vbench", str(result)]) == 0
    report = build(sweep, collect_local(tmp_path / "runs", sweep))
    row = next(r for r in report.rows if r.value == "jdm_mask")
    color = next(c for c in row.cells if c.metric.key == "vbench/color")
    assert color.state == "ok" and color.mean == pytest.approx(79.4)  # VBench fraction -> the paper's percent


def test_eval_on_a_smoke_run_end_to_end(tmp_path, capsys):
    from vidgen.config import load_config
    from vidgen.train import train

    run = train(load_config(["exp=ft_cogvideox", "preset=smoke", "logger=none", "train.max_steps=1",
                             f"run.dir={tmp_path / 'run'}"]))  # fmt: skip
    assert main([str(run), "eval.limit=2", "sample.steps=2"]) == 0
    folder = run / "eval" / "shapes"
    assert sorted(p.name for p in folder.glob("*.mp4")) == ["0000.mp4", "0001.mp4"]
    metrics = read_suite(run, "shapes")["metrics"]
    assert 0.0 <= metrics["eval/shapes_layout_iou"] < 1.0
    assert "generated 2 video(s)" in capsys.readouterr().out
    assert main([str(run), "eval.limit=2", "sample.steps=2"]) == 0  # resumed: nothing to generate
    assert "generated 0 video(s)" in capsys.readouterr().out
    # a metric without its weights fails before generating, naming the metric, the key and the file
    assert main([str(run), "suite=shapes", "eval.limit=3", "eval.metrics=fvd"]) == 2
    assert (
        "FVD needs local weights: eval.fvd.i3d is not set; put the TorchScript I3D" in capsys.readouterr().err
    )
    assert not (folder / "0002.mp4").exists()
    # a checkpoint that does not load: one error, and the run folder is left as it was
    (tmp_path / "p.txt").write_text("a red circle\n")
    assert (
        main(
            [str(run), "suite=prompts", f"eval.prompts={tmp_path / 'p.txt'}", f"ckpt={tmp_path / 'no.ckpt'}"]
        )
        == 2
    )
    assert "no.ckpt" in capsys.readouterr().err and not (run / "eval" / "prompts").exists()
    # exp mode: a model not trained in this folder (here a checkpoint; released weights: backbone.weights=DIR)
    other = tmp_path / "zero"
    args = [
        "exp=ft_cogvideox",
        "preset=smoke",
        f"run.dir={other}",
        f"ckpt={run / 'checkpoints' / 'last.ckpt'}",
    ]
    assert main([*args, "eval.limit=1", "sample.steps=2"]) == 0
    assert (other / "eval" / "shapes" / "0000.mp4").is_file() and (other / "config.yaml").is_file()


def test_a_video_write_that_fails_leaves_neither_the_file_nor_a_temp(tmp_path, monkeypatch):
    import vidgen.data.video_io as video_io
    from vidgen.eval.generate import write_atomic

    def half_written(path, frames, fps=8):
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(video_io, "write_video", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(tmp_path / "eval" / "0000.mp4", torch.zeros(3, 2, 8, 8))
    assert list((tmp_path / "eval").iterdir()) == []
