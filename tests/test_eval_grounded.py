"""FaceSim and InstanceBench CLIP / IoU through `vidgen eval` (suite=shapes): values, errors, report cells."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from vidgen.config import load_config
from vidgen.errors import ConfigError
from vidgen.eval import grounded_metrics, suite_metrics
from vidgen.eval.cli import main
from vidgen.eval.results import read_suite

FACES = ("logger=none", "data.min_faces=1", "data.face_prob=0.5")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The first three shapes-world clips of an Ingredients smoke config (each with at least one face)."""
    from vidgen.backbones import get_backbone
    from vidgen.train import build_datamodule

    run = tmp_path_factory.mktemp("world") / "run"
    cfg = load_config(["exp=ingredients_stage1", "preset=smoke", f"run.dir={run}", *FACES])
    return build_datamodule(cfg, get_backbone(cfg.backbone.name)).dataset


def _rendered(dataset, n=3):
    return [(dataset.clip(i).video, dataset.clip(i).caption, i) for i in range(n)]


class _Constant(nn.Module):
    def forward(self, crops):
        return torch.ones(crops.shape[0], 4)


def test_face_sim_on_rendered_clips_is_exactly_one(world, monkeypatch, tmp_path):
    videos = _rendered(world)
    # shapes world, no weights: the exact identity classifier's right-ID fraction
    assert suite_metrics.compute(["face_sim"], videos, {}, dataset=world) == {"faces/face_sim": 1.0}
    swapped = [(torch.flip(v, dims=[-1]), p, i) for v, p, i in videos]  # faces moved off their regions
    assert suite_metrics.compute(["face_sim"], swapped, {}, dataset=world)["faces/face_sim"] < 0.9
    # with a recognition network: the cosine of its embeddings (a constant network: exactly 1)
    monkeypatch.setattr(grounded_metrics, "recognition_model", lambda path: _Constant())
    (tmp_path / "antelopev2").mkdir()
    opts = {"face_sim.recognition": str(tmp_path / "antelopev2")}
    assert suite_metrics.compute(["face_sim"], videos, opts, dataset=world)[
        "faces/face_sim"
    ] == pytest.approx(1.0)
    from vidgen.faces.recognition import TinyRecognition

    torch.manual_seed(0)
    tiny = TinyRecognition()
    monkeypatch.setattr(grounded_metrics, "recognition_model", lambda path: tiny)
    got = suite_metrics.compute(["face_sim"], videos, opts, dataset=world)["faces/face_sim"]
    assert -1.0 <= got <= 1.0 and got != pytest.approx(1.0)


def test_missing_weights_name_the_key_and_the_folder(world):
    with pytest.raises(ConfigError, match=r"FaceSim needs local weights: eval\.face_sim\.recognition='/no/arcface' "
                                          r"does not exist; put insightface's antelopev2 folder \(glintr100\.onnx"):  # fmt: skip
        suite_metrics.check(["face_sim"], {"face_sim.recognition": "/no/arcface"})
    with pytest.raises(
        ConfigError, match=r"eval\.instance_clip\.<name> is not set; put a transformers CLIP folder"
    ):
        suite_metrics.check(["instance_clip"], {})
    with pytest.raises(ConfigError, match=r"eval\.instance_clip\.clip_l='/no/clip' does not exist"):
        suite_metrics.check(["instance_clip"], {"instance_clip.clip_l": "/no/clip"})
    with pytest.raises(ConfigError, match="use suite=shapes"):
        suite_metrics.compute(["face_sim"], _rendered(world, 1), {}, dataset=None)


def test_instance_clip_and_iou_match_instancebench(world, tmp_path):
    from test_eval_metrics import _tiny_clip_folder
    from vidgen.eval import instance_metrics as im

    folder = _tiny_clip_folder(tmp_path / "clip")
    videos = _rendered(world, 2)
    got = suite_metrics.compute(["instance_clip", "instance_iou"], videos, {"instance_clip.clip_b": folder},
                                dataset=world)  # fmt: skip
    samples = [world[i] for i in range(2)]
    want = im.shapes_clip_metrics([v for v, _, _ in videos], samples, {"clip_b": im.load_clip(folder, "x")})
    assert got["eval/instancebench/clip_b"] == pytest.approx(want["clip_b"])
    assert got["eval/instancebench/clip_b_aw"] == pytest.approx(want["clip_b_aw"])
    layout = im.shapes_layout_metrics([v for v, _, _ in videos], samples)
    assert got["eval/layout_iou"] == pytest.approx(layout["layout_iou"])
    assert got["eval/layout_iou"] > 0.5  # the rendered clips themselves
    assert got["eval/layout_iou_aw"] == pytest.approx(layout["layout_iou_aw"])


def _as_sweep_row(run, sweep: str, variant: str) -> None:
    """Marks a run folder as one row of a sweep, as `vidgen sweep run` does."""
    (run / "sweep.json").write_text(
        json.dumps({"sweep": sweep, "params": {"variant": variant}, "returncode": 0})
    )


def _cells(sweep_file: str, runs, value: str) -> dict:
    from vidgen.report.collect import collect_local
    from vidgen.report.table import build
    from vidgen.sweeps.schema import load_sweep

    sweep = load_sweep(sweep_file)
    row = next(r for r in build(sweep, collect_local(runs, sweep)).rows if r.value == value)
    return {c.metric.paper: c for c in row.cells}


def test_face_sim_of_an_ingredients_smoke_run_fills_its_report_cell(tmp_path, monkeypatch):
    from vidgen.methods.ingredients.module import IngredientsModule
    from vidgen.train import train

    run = train(load_config(["exp=ingredients_stage1", "preset=smoke", "train.max_steps=1", *FACES,
                             f"run.dir={tmp_path / 'runs' / 'ce'}"]))  # fmt: skip
    grounded = []  # each clip is generated with its own reference faces
    real = IngredientsModule.generate_batch
    monkeypatch.setattr(IngredientsModule, "generate_batch", lambda self, batch, *a: grounded.append(batch.faces)
                        or real(self, batch, *a))  # fmt: skip

    assert main([str(run), "eval.limit=2", "sample.steps=2", "eval.metrics=face_sim"]) == 0
    assert len(grounded) == 2 and all(f is not None for f in grounded)
    value = read_suite(run, "shapes")["metrics"]["faces/face_sim"]
    assert 0.0 <= value <= 1.0
    _as_sweep_row(run, "ingredients/table3_routing_loss", "ingredients/table3_ce")
    cell = _cells("sweeps/ingredients/table3_routing_loss.yaml", tmp_path / "runs", "ingredients/table3_ce")[
        "Face Sim. (%)"
    ]
    assert cell.mean == pytest.approx(100 * value) and cell.source == "computed"


def test_instancebench_metrics_of_an_instancev_smoke_run_fill_its_report_cells(tmp_path):
    from test_eval_metrics import _tiny_clip_folder
    from vidgen.train import train

    clip = _tiny_clip_folder(tmp_path / "clip")
    run = train(load_config(["exp=instancev_wan", "preset=smoke", "logger=none", "train.max_steps=1",
                             f"run.dir={tmp_path / 'runs' / 'full'}"]))  # fmt: skip
    args = [str(run), "eval.limit=2", "sample.steps=2", "eval.metrics=instance_iou,instance_clip"]
    assert main([*args, f"eval.instance_clip.clip_b={clip}", f"eval.instance_clip.clip_l={clip}"]) == 0
    metrics = read_suite(run, "shapes")["metrics"]
    assert {"eval/layout_iou", "eval/layout_iou_aw", "eval/instancebench/clip_b_aw",
            "eval/instancebench/clip_l"} <= set(metrics)  # fmt: skip
    _as_sweep_row(run, "instancev/table3_ablation", "instancev/full")
    cells = _cells("sweeps/instancev/table3_ablation.yaml", tmp_path / "runs", "instancev/full")
    for name, key in (("AW IoU%", "eval/layout_iou_aw"), ("AW CLIP-B%", "eval/instancebench/clip_b_aw"),
                      ("AW CLIP-L%", "eval/instancebench/clip_l_aw")):  # fmt: skip
        assert cells[name].mean == pytest.approx(metrics[key]) and cells[name].source == "computed", name


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_face_sim_loads_an_arcface_onnx_folder(world, tmp_path, monkeypatch):
    """The real path: a folder holding glintr100.onnx (here a tiny exported network) -> OnnxArcFace."""
    pytest.importorskip("onnx")
    from vidgen.faces.recognition import TinyRecognition

    torch.manual_seed(0)
    net = TinyRecognition().eval()
    folder = tmp_path / "antelopev2"
    folder.mkdir()
    torch.onnx.export(net, (torch.zeros(1, 3, 112, 112),), str(folder / "glintr100.onnx"), dynamo=False,
                      input_names=["input.1"], dynamic_axes={"input.1": {0: "batch"}})  # fmt: skip
    videos, opts = _rendered(world, 2), {"face_sim.recognition": str(folder)}
    got = suite_metrics.compute(["face_sim"], videos, opts, dataset=world)["faces/face_sim"]
    monkeypatch.setattr(grounded_metrics, "recognition_model", lambda path: net)
    want = suite_metrics.compute(["face_sim"], videos, opts, dataset=world)["faces/face_sim"]
    assert got == pytest.approx(want, abs=1e-3) and got != pytest.approx(1.0, abs=1e-4)  # ONNX vs torch resize
