"""`vidgen eval` metrics that compare each generated shapes clip with its own ground truth (suite=shapes).

| name          | keys                                              | needs                                          |
|---------------|---------------------------------------------------|------------------------------------------------|
| face_sim      | faces/face_sim                                    | eval.face_sim.recognition (ArcFace folder), or none on the shapes world |
| instance_clip | eval/instancebench/<name>, eval/instancebench/<name>_aw | eval.instance_clip.<name>=DIR (CLIP folders, e.g. clip_b, clip_l) |
| instance_iou  | eval/layout_iou, eval/layout_iou_aw               | the shapes world's exact detector (no weights) |

- face_sim (Ingredients Sec. 4.1, Tables 1-3 "Face Sim."): with ``eval.face_sim.recognition`` (insightface's
  antelopev2 folder, ``glintr100.onnx``), the cosine of ArcFace embeddings between each generated face,
  cropped at the clip's ground-truth boxes, and the clip's reference crop, mean over visible frames, then over
  faces (``face_metrics.face_sim``). Without it, on the shapes world: the exact identity classifier's right-ID
  fraction (``face_metrics.shapes_identity_accuracy``), the stand-in that needs no pretrained model.
- instance_clip / instance_iou (InstanceV Sec. 5.2, 9.1, Tables 2-3): InstanceBench's crop CLIP score of each
  ground-truth box vs its instance prompt and the layout IoU, plain and area-weighted
  (``instance_metrics.shapes_clip_metrics`` / ``shapes_layout_metrics``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidgen.errors import ConfigError
from vidgen.eval.weights import require_path

NAMES = ("face_sim", "instance_clip", "instance_iou")
FACE_KEY = "faces/face_sim"
ARCFACE_WHAT = "insightface's antelopev2 folder (glintr100.onnx, the ArcFace of Ingredients Sec. 3.1)"
CLIP_WHAT = "a transformers CLIP folder (InstanceBench: clip_b = ViT-B/32, clip_l = ViT-L/14)"


def clip_folders(opts: dict) -> dict[str, str]:
    """``eval.instance_clip.<name>=DIR`` options -> {name: DIR}."""
    return {k.split(".", 1)[1]: v for k, v in opts.items() if k.startswith("instance_clip.") and v}


def check(names: list[str], opts: dict) -> None:
    """Before generation: the weight folders these metrics need exist."""
    if "face_sim" in names and opts.get("face_sim.recognition"):
        require_path("FaceSim", "eval.face_sim.recognition", opts["face_sim.recognition"], ARCFACE_WHAT)
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


def recognition_model(path: str):
    """The ArcFace network of a local antelopev2 folder (onnxruntime; ``vidgen.faces.recognition``)."""
    from vidgen.faces.recognition import OnnxArcFace

    return OnnxArcFace(require_path("FaceSim", "eval.face_sim.recognition", path, ARCFACE_WHAT))


def face_sim(videos: list[Tensor], indices: list[int], dataset, opts: dict) -> dict[str, float]:
    """``faces/face_sim`` over every face of every clip (NaN faces, never visible, are left out)."""
    from vidgen.eval.face_metrics import face_sim as cosine_per_face
    from vidgen.eval.face_metrics import shapes_identity_accuracy

    _needs_world("face_sim", dataset)
    path = opts.get("face_sim.recognition")
    model = recognition_model(path) if path else None
    scores = []
    for video, i in zip(videos, indices):
        clip = dataset.clip(i)
        if model is None:
            scores.append(shapes_identity_accuracy(video, clip))
        else:
            visible = clip.face_masks.flatten(2).any(-1)  # [K, F]
            scores.append(cosine_per_face(model, video, clip.face_boxes, visible, clip.face_crops))
    values = torch.cat(scores) if scores else torch.zeros(0)
    if not bool((~values.isnan()).any()):
        raise ConfigError("face_sim: no face is visible in the evaluated clips; raise eval.limit")
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
