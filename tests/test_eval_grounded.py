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


class _SkinHistogram(nn.Module):
    """Known-value recognition: per crop, the pixel count of each identity's skin colour (one-hot per face),
    so a face's crop and its own reference have cosine exactly 1 and another identity's 0."""

    def forward(self, crops):
        from vidgen.data.shapes import COLOURS, IDENTITIES

        skins = torch.tensor([COLOURS[i.skin] for i in IDENTITIES]) * 2 - 1  # [8, 3]
        near = (crops[:, None] - skins.view(1, -1, 3, 1, 1)).abs().amax(2) <= 2.5 / 255  # [N, 8, S, S]
        return near.flatten(2).sum(-1).float() + 1e-6  # no crop embeds to the zero vector


def _painted(clip, faces_per_frame):
    """A video of `clip`'s size on its background with identity discs (id, x, y, side) drawn per frame:
    the generation's own layout, unrelated to the clip's ground-truth boxes."""
    from vidgen.data.shapes import BACKGROUNDS, face_crop

    _, f, h, w = clip.video.shape
    video = (torch.tensor(BACKGROUNDS[clip.background]) * 2 - 1).view(3, 1, 1, 1).expand(3, f, h, w).clone()
    for t in range(f):
        for ident, x, y, side in faces_per_frame:
            disc = face_crop(ident, side)
            inside = (disc != 0).any(0)
            patch = video[:, t, y : y + side, x : x + side]
            patch[:, inside] = disc[:, inside]
    return video


class _World:
    """A dataset whose clip(i) is one constructed clip: references `ids`, ground truth boxes at the top left."""

    def __init__(self, world, ids):
        from dataclasses import replace

        from vidgen.data.shapes import face_crop

        base = world.clip(0)
        s = base.face_crops.shape[-1]
        boxes = torch.zeros(len(ids), base.video.shape[1], 4)
        boxes[..., 2:] = 0.2  # ground truth: top-left corner, where no test draws a face
        masks = torch.zeros(len(ids), *base.video.shape[1:], dtype=torch.bool)
        masks[:, :, :4, :4] = True
        crops = torch.stack([face_crop(i, s) for i in ids]) if ids else torch.zeros(0, 3, s, s)
        self._clip = replace(base, face_ids=torch.tensor(ids, dtype=torch.long), face_crops=crops,
                             face_boxes=boxes, face_masks=masks)  # fmt: skip

    def clip(self, i):
        return self._clip


def _arcface_opts(monkeypatch, tmp_path, reduce=None):
    from vidgen.faces.detect import ShapesFaceDetector

    monkeypatch.setattr(grounded_metrics, "recognition_model", lambda path: _SkinHistogram())
    monkeypatch.setattr(grounded_metrics, "detector_model", lambda path: ShapesFaceDetector())
    (tmp_path / "antelopev2").mkdir(exist_ok=True)
    opts = {
        "face_sim.recognition": str(tmp_path / "antelopev2"),
        "face_sim.detector": str(tmp_path / "antelopev2"),
    }
    return opts | ({"face_sim.reduce": reduce} if reduce else {})


def _score(world, videos, opts):
    return suite_metrics.compute(["face_sim"], [(v, "", 0) for v in videos], opts, dataset=world)[
        "faces/face_sim"
    ]


# the reference IDs 3 and 4, away from the ground-truth corner (3 and 4: the IDs whose hair is nearest no
# skin colour, so the shapes world's pixel vote of a right face is exactly 1)
RIGHT = [(3, 36, 30, 22), (4, 8, 34, 24)]


@pytest.mark.parametrize("path", ["arcface", "shapes"])
def test_face_sim_finds_the_right_faces_wherever_they_are_drawn(world, monkeypatch, tmp_path, path):
    opts = _arcface_opts(monkeypatch, tmp_path) if path == "arcface" else {}
    refs = _World(world, [3, 4])
    clip = refs.clip(0)
    assert _score(refs, [_painted(clip, RIGHT)], opts) == pytest.approx(1.0, abs=1e-6)
    # a plain square in another identity's skin colour (an "orange square" instance) is no face
    from vidgen.data.shapes import COLOURS, IDENTITIES

    square = _painted(clip, RIGHT)
    square[:, :, 2:12, 50:60] = (torch.tensor(COLOURS[IDENTITIES[0].skin]) * 2 - 1).view(3, 1, 1, 1)
    assert _score(refs, [square], opts) == pytest.approx(1.0, abs=1e-6)
    # identities not among the references (a swapped-identity generation) score lower
    wrong = [(0, 36, 30, 22), (1, 8, 34, 24)]
    assert _score(refs, [_painted(clip, wrong)], opts) == pytest.approx(0.0, abs=1e-3)
    # a clip with no detected face scores 0; clips are averaged
    empty = _painted(clip, [])
    assert _score(refs, [empty], opts) == 0.0
    both = suite_metrics.compute(
        ["face_sim"], [(_painted(clip, RIGHT), "", 0), (empty, "", 0)], opts, dataset=refs
    )
    assert both["faces/face_sim"] == pytest.approx(0.5, abs=1e-6)


def test_face_sim_reduce_is_the_minimum_over_matches_unless_mean(world, monkeypatch, tmp_path):
    refs = _World(world, [3, 4])
    half = _painted(refs.clip(0), [(3, 36, 30, 22), (1, 8, 34, 24)])  # one right face (1), one wrong (0)
    assert _score(refs, [half], _arcface_opts(monkeypatch, tmp_path)) == pytest.approx(0.0, abs=1e-3)
    assert _score(refs, [half], _arcface_opts(monkeypatch, tmp_path, "min")) == pytest.approx(0.0, abs=1e-3)
    assert _score(refs, [half], _arcface_opts(monkeypatch, tmp_path, "mean")) == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(ConfigError, match=r"eval\.face_sim\.reduce='max' must be one of min, mean"):
        _score(refs, [half], _arcface_opts(monkeypatch, tmp_path, "max"))


def test_greedy_cosine_match_takes_the_highest_pair_first():
    from vidgen.eval.face_metrics import greedy_cosine_match

    sim = torch.tensor([[0.9, 0.8], [0.85, 0.1], [0.2, 0.3]])  # faces x references
    # (0, 0) = 0.9 first; then face 0 and reference 0 are used: best left is (2, 1) = 0.3
    assert greedy_cosine_match(sim).tolist() == pytest.approx([0.9, 0.3])
    assert greedy_cosine_match(torch.zeros(0, 2)).numel() == 0


def test_face_sim_with_a_tiny_recognition_net_is_a_cosine(world, monkeypatch, tmp_path):
    from vidgen.faces.recognition import TinyRecognition

    opts = _arcface_opts(monkeypatch, tmp_path)
    torch.manual_seed(0)
    tiny = TinyRecognition()
    monkeypatch.setattr(grounded_metrics, "recognition_model", lambda path: tiny)
    videos = _rendered(world)
    got = suite_metrics.compute(["face_sim"], videos, opts, dataset=world)["faces/face_sim"]
    assert -1.0 <= got <= 1.0 and got != pytest.approx(1.0)


def test_missing_weights_name_the_key_and_the_folder(world, tmp_path):
    (tmp_path / "arcface").mkdir()
    with pytest.raises(ConfigError, match=r"FaceSim needs local weights: eval\.face_sim\.detector is not set; "
                                          r"put insightface's antelopev2 folder \(scrfd_10g_bnkps\.onnx"):  # fmt: skip
        suite_metrics.check(["face_sim"], {"face_sim.recognition": str(tmp_path / "arcface")})
    with pytest.raises(ConfigError, match=r"eval\.face_sim\.detector='/no/scrfd' does not exist"):
        suite_metrics.check(["face_sim"], {"face_sim.recognition": str(tmp_path / "arcface"),
                                           "face_sim.detector": "/no/scrfd"})  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"eval\.face_sim\.detector is used with eval\.face_sim\.recognition"
    ):
        suite_metrics.check(["face_sim"], {"face_sim.detector": str(tmp_path / "arcface")})
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
def test_face_sim_loads_an_antelopev2_folder(world, tmp_path, monkeypatch):
    """The real path: one folder holding glintr100.onnx (a tiny exported network) and scrfd_10g_bnkps.onnx (a
    planted SCRFD: one face with landmarks at (32, 16) of each 64 x 64 frame) -> OnnxArcFace + ScrfdDetector."""
    pytest.importorskip("onnx")
    from test_face_references import _PlantedScrfd
    from vidgen.eval.face_metrics import detected_face_sim
    from vidgen.faces.detect import ScrfdDetector
    from vidgen.faces.recognition import TinyRecognition

    torch.manual_seed(0)
    net = TinyRecognition().eval()
    folder = tmp_path / "antelopev2"
    folder.mkdir()
    torch.onnx.export(net, (torch.zeros(1, 3, 112, 112),), str(folder / "glintr100.onnx"), dynamo=False,
                      input_names=["input.1"], dynamic_axes={"input.1": {0: "batch"}})  # fmt: skip
    lmk = [-1.0, -1.0, 1.0, -1.0, 0.0, 0.0, -1.0, 1.0, 1.0, 1.0]
    planted = [(16, (10 * 40 + 20) * 2, 0.9, [4.0, 4.0, 4.0, 4.0], lmk)]  # centre (320, 160) of 640
    torch.onnx.export(_PlantedScrfd(planted), (torch.zeros(1, 3, 640, 640),), str(folder / "scrfd_10g_bnkps.onnx"),
                      dynamo=False, input_names=["input.1"])  # fmt: skip
    videos, opts = (
        _rendered(world, 2),
        {"face_sim.recognition": str(folder), "face_sim.detector": str(folder)},
    )
    got = suite_metrics.compute(["face_sim"], videos, opts, dataset=world)["faces/face_sim"]
    det = ScrfdDetector(folder)
    assert len(det.detect(videos[0][0][:, 0])) == 1
    want = sum(detected_face_sim(net, det, v, world.clip(i).face_crops) for v, _, i in videos) / 2
    assert got == pytest.approx(want, abs=1e-3) and -1.0 <= got < 1.0  # ONNX vs torch resize


def test_face_fid_compares_detected_faces_with_the_real_faces_wherever_drawn(world, tmp_path):
    """Generated side: faces the detector finds (no ground-truth positions); real side: the clip's own
    visible face regions. The right faces drawn elsewhere score as if in place; other identities worse."""
    from dataclasses import replace

    from test_eval_metrics import _InceptionStandIn, _script
    from vidgen.faces.detect import ShapesFaceDetector

    base = world.clip(0)
    real_video = _painted(base, [(3, 4, 4, 22), (4, 36, 36, 24)])
    _, f, h, w = real_video.shape
    found = ShapesFaceDetector().detect(real_video[:, 0])
    boxes = torch.stack([d.box / torch.tensor([w, h, w, h]) for d in found])  # [K, 4], the same every frame
    masks = torch.ones(len(found), f, h, w, dtype=torch.bool)
    real = replace(base, video=real_video, face_boxes=boxes[:, None].expand(-1, f, -1), face_masks=masks)

    class One:
        def clip(self, i):
            return real

    opts = {"fid.inception": _script(_InceptionStandIn(), tmp_path / "inception.pt")}

    def fid(video):
        return suite_metrics.compute(["face_fid"], [(video, "", 0)], opts, dataset=One())["eval/face_fid"]

    moved = fid(_painted(base, [(3, 36, 30, 22), (4, 8, 34, 24)]))
    assert moved == pytest.approx(0.0, abs=1e-3)  # same faces, other places: the detector finds them
    assert fid(_painted(base, [(0, 36, 30, 22), (1, 8, 34, 24)])) > 0.01  # other identities
    with pytest.raises(ConfigError, match="face_fid: .* real and 0 generated face regions"):
        fid(_painted(base, []))
    with pytest.raises(ConfigError, match=r"face FID needs local weights: eval.fid.inception"):
        suite_metrics.compute(["face_fid"], [(real_video, "", 0)], {}, dataset=One())
