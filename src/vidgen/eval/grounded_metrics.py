"""`vidgen eval` metrics that compare each generated shapes clip with its own ground truth (suite=shapes).

| name          | keys                                              | needs                                          |
|---------------|---------------------------------------------------|------------------------------------------------|
| face_sim      | faces/face_sim                                    | eval.face_sim.recognition + .detector (antelopev2), or none on the shapes world |
| instance_clip | eval/instancebench/<name>, eval/instancebench/<name>_aw | eval.instance_clip.<name>=DIR (CLIP folders, e.g. clip_b, clip_l) |
| instance_iou  | eval/layout_iou, eval/layout_iou_aw               | the shapes world's exact detector (no weights) |
| face_fid      | eval/face_fid                                     | eval.fid.inception; eval.face_sim.detector, or none on the shapes world |

- face_sim (Ingredients Sec. 4.1, Tables 1-3 "Face Sim."): with ``eval.face_sim.recognition`` (insightface's
  antelopev2 folder, ``glintr100.onnx``) and ``eval.face_sim.detector`` (a folder with SCRFD, e.g. the same
  antelopev2 folder): per generated frame the faces are detected (no ground-truth positions: the generation is
  not told where faces go), aligned as precompute aligns, embedded, and greedily matched to the clip's reference
  crops by cosine; the clip scores the minimum cosine over all its matches (``eval.face_sim.reduce=min``, as
  printed; ``mean`` is a knob), 0 when no face is detected in it (the paper is silent), and
  ``faces/face_sim`` is the mean over clips (the paper does not say how clips are aggregated; we take the
  mean). ``face_metrics.detected_face_sim``. Differs: ArcFace (glintr100) stands in for the paper's FaceNet,
  which is not installable next to this torch. Without the folders, on the shapes world: per clip the share
  of detected face pixels carrying the identity of the reference their region is greedily matched to
  (``face_metrics.shapes_matched_identity`` with ``need_features``: a face is a skin-coloured region touching
  eye / mouth pixels, so a plain orange square is none; right / total pixels, 0 with no face), mean over clips.
- face_fid (Ingredients Sec. 4.1 "FID ... in the face regions between generated frames and real face
  images"): the generated side is every face detected in every generated frame (no ground-truth positions,
  as for face_sim: SCRFD from ``eval.face_sim.detector``, or the shapes world's exact ``ShapesFaceDetector``
  without it), the real side every visible ground-truth face region of the same clips' real frames; each
  region resized to 299 x 299 (``frechet.box_regions``) and scored by the local Inception
  (``eval.fid.inception``). Which real face images the paper used is not said: the evaluated clips' own
  faces is our choice. Store it under the Ingredients tables' key with ``eval.keys=face_fid:general/face_fid``.
- instance_clip / instance_iou (InstanceV Sec. 5.2, 9.1, Tables 2-3): InstanceBench's crop CLIP score of each
  ground-truth box vs its instance prompt and the layout IoU, plain and area-weighted
  (``instance_metrics.shapes_clip_metrics`` / ``shapes_layout_metrics``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidgen.errors import ConfigError
from vidgen.eval.weights import require_path

NAMES = ("face_sim", "instance_clip", "instance_iou", "face_fid")
FACE_KEY = "faces/face_sim"
ARCFACE_WHAT = "insightface's antelopev2 folder (glintr100.onnx, the ArcFace of Ingredients Sec. 3.1)"
SCRFD_WHAT = "insightface's antelopev2 folder (scrfd_10g_bnkps.onnx, the SCRFD face detector)"
REDUCES = ("min", "mean")
CLIP_WHAT = "a transformers CLIP folder (InstanceBench: clip_b = ViT-B/32, clip_l = ViT-L/14)"


def clip_folders(opts: dict) -> dict[str, str]:
    """``eval.instance_clip.<name>=DIR`` options -> {name: DIR}."""
    return {k.split(".", 1)[1]: v for k, v in opts.items() if k.startswith("instance_clip.") and v}


def check(names: list[str], opts: dict) -> None:
    """Before generation: the weight folders these metrics need exist."""
    if "face_sim" in names:
        _face_options(opts)
        if opts.get("face_sim.recognition"):
            require_path("FaceSim", "eval.face_sim.recognition", opts["face_sim.recognition"], ARCFACE_WHAT)
            require_path("FaceSim", "eval.face_sim.detector", opts.get("face_sim.detector"), SCRFD_WHAT)
    if "face_fid" in names and opts.get("face_sim.detector"):
        require_path("face FID", "eval.face_sim.detector", opts["face_sim.detector"], SCRFD_WHAT)
    if "instance_clip" in names:
        folders = clip_folders(opts)
        if not folders:
            raise ConfigError("instance CLIP score needs local weights: eval.instance_clip.<name> is not set; "
                              f"put {CLIP_WHAT} there and pass eval.instance_clip.clip_b=DIR")  # fmt: skip
        for name, path in folders.items():
            require_path("instance CLIP score", f"eval.instance_clip.{name}", path, CLIP_WHAT)


def _needs_world(name: str, dataset) -> None:
    if dataset is None or not hasattr(dataset, "clip"):
        raise ConfigError(f"metric {name} compares each video with its clip's ground truth: use suite=shapes")


def _face_options(opts: dict) -> str:
    """The within-clip statistic (``eval.face_sim.reduce``); the detector only goes with a recognition net."""
    reduce = opts.get("face_sim.reduce") or "min"
    if reduce not in REDUCES:
        raise ConfigError(f"eval.face_sim.reduce={reduce!r} must be one of {', '.join(REDUCES)} "
                          "(min: the paper's minimum over all matches)")  # fmt: skip
    if opts.get("face_sim.detector") and not opts.get("face_sim.recognition"):
        raise ConfigError("eval.face_sim.detector is used with eval.face_sim.recognition: pass both "
                          f"({ARCFACE_WHAT}), or neither on the shapes world")  # fmt: skip
    return reduce


def recognition_model(path: str):
    """The ArcFace network of a local antelopev2 folder (onnxruntime; ``vidgen.faces.recognition``)."""
    from vidgen.faces.recognition import OnnxArcFace

    return OnnxArcFace(require_path("FaceSim", "eval.face_sim.recognition", path, ARCFACE_WHAT))


def detector_model(path: str | None):
    """The SCRFD face detector of a local antelopev2 folder (onnxruntime; ``vidgen.faces.detect``)."""
    from vidgen.faces.detect import ScrfdDetector

    return ScrfdDetector(require_path("FaceSim", "eval.face_sim.detector", path, SCRFD_WHAT))


def _matched_fraction(video: Tensor, clip) -> float:
    """Shapes world: right / total skin pixels of the faces detected in `video` (0 with none); NaN without refs."""
    from vidgen.eval.face_metrics import shapes_matched_identity

    if clip.face_ids.numel() == 0:
        return float("nan")
    right, total = shapes_matched_identity(video, clip, need_features=True)
    return float(right.sum() / total.sum()) if int(total.sum()) > 0 else 0.0


def face_sim(videos: list[Tensor], indices: list[int], dataset, opts: dict) -> dict[str, float]:
    """``faces/face_sim``: the mean over clips of each clip's score (clips without reference faces left out)."""
    from vidgen.eval.face_metrics import detected_face_sim

    _needs_world("face_sim", dataset)
    reduce = _face_options(opts)
    path = opts.get("face_sim.recognition")
    model = recognition_model(path) if path else None
    detector = detector_model(opts.get("face_sim.detector")) if path else None
    scores = []
    for video, i in zip(videos, indices):
        clip = dataset.clip(i)
        if model is None:
            scores.append(_matched_fraction(video, clip))
        else:
            scores.append(detected_face_sim(model, detector, video, clip.face_crops, reduce))
    values = torch.tensor(scores, dtype=torch.float64)
    if not bool((~values.isnan()).any()):
        raise ConfigError("face_sim: no evaluated clip has a reference face; raise eval.limit")
    return {FACE_KEY: float(values.nanmean())}


def instance_scores(names: list[str], videos: list[Tensor], indices: list[int], dataset,
                    opts: dict) -> dict[str, float]:  # fmt: skip
    """instance_iou and / or instance_clip of generated clips against their samples' instances."""
    from vidgen.eval import instance_metrics as im

    _needs_world(" / ".join(n for n in names if n.startswith("instance_")), dataset)
    samples = [dataset[i] for i in indices]
    out: dict[str, float] = {}
    if "instance_iou" in names:
        out.update({f"eval/{k}": v for k, v in im.shapes_layout_metrics(videos, samples).items()})
    if "instance_clip" in names:
        clips = {k: im.load_clip(v, f"eval.instance_clip.{k}") for k, v in clip_folders(opts).items()}
        scores = im.shapes_clip_metrics(videos, samples, clips)
        out.update({f"eval/instancebench/{k}": v for k, v in scores.items()})
    return out


def _detected_boxes(video: Tensor, detector) -> Tensor:
    """[F, K, 4] normalised xyxy of the faces `detector` finds in each frame of video [3, F, H, W] (NaN pads)."""
    _, f, h, w = video.shape
    per_frame = [[d.box.float() / torch.tensor([w, h, w, h]) for d in detector.detect(video[:, t])] for t in range(f)]
    k = max((len(b) for b in per_frame), default=0)
    out = torch.full((f, k, 4), float("nan"))
    for t, boxes in enumerate(per_frame):
        for j, box in enumerate(boxes):
            out[t, j] = box.clamp(0, 1)
    return out


def _real_boxes(clip) -> Tensor:
    """[F, K, 4] the clip's ground-truth face boxes, NaN where a face is not visible."""
    boxes = clip.face_boxes.float().transpose(0, 1).clone()  # [F, K, 4]
    visible = clip.face_masks.flatten(2).any(-1).transpose(0, 1)  # [F, K]
    boxes[~visible] = float("nan")
    return boxes


def face_fid(videos: list[Tensor], indices: list[int], dataset, opts: dict) -> dict[str, float]:
    """``eval/face_fid``: FID between the faces detected in the generations and the real clips' faces."""
    from vidgen.eval.frechet import box_regions, load_fid, update_fid
    from vidgen.faces.detect import ShapesFaceDetector

    _needs_world("face_fid", dataset)
    path = opts.get("face_sim.detector")
    detector = detector_model(path) if path else ShapesFaceDetector()
    fid = load_fid(opts.get("fid.inception"))
    counts = [0, 0]
    for video, i in zip(videos, indices):
        clip = dataset.clip(i)
        real, fake = _real_boxes(clip), _detected_boxes(video, detector)
        counts[0] += int((~real.isnan().any(-1)).sum())
        counts[1] += int((~fake.isnan().any(-1)).sum())
        update_fid(fid, clip.video, real=True, crop_regions=box_regions(real))
        update_fid(fid, video, real=False, crop_regions=box_regions(fake))
    if min(counts) < 2:
        raise ConfigError(f"face_fid: {counts[0]} real and {counts[1]} generated face regions; FID needs at "
                          "least 2 of each: raise eval.limit (or the generations show no faces yet)")  # fmt: skip
    return {"eval/face_fid": float(fid.compute())}
