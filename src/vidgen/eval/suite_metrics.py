"""The metrics `vidgen eval` computes over a suite's written videos, keyed as in summary.json.

| name           | key               | needs                                                        |
|----------------|-------------------|--------------------------------------------------------------|
| layout_iou     | eval/shapes_layout_iou | the shapes world (exact segmenter; no weights)          |
| clip_score     | eval/clip_score   | eval.clip (CLIP folder)                                      |
| temporal       | eval/temporal     | eval.clip                                                    |
| fid            | eval/fid          | eval.fid.inception (TorchScript) + real videos               |
| fvd            | eval/fvd          | eval.fvd.i3d (TorchScript) + real videos                     |
| face_sim, instance_clip, instance_iou, face_fid | see ``grounded_metrics.py`` (suite=shapes) |

Real videos: the shapes clips the prompts came from (suite=shapes), or the mp4s of ``eval.real=DIR``.
``layout_iou``: in the shapes world a caption belongs to one rendered clip; per instance prompt, the
box IoU per frame between the exact segmenter's box in the generated video and in that clip (0 where
the generated video lacks it), averaged over frames where the clip shows it, then over instances.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from pathlib import Path

from torch import Tensor

from vidgen.errors import ConfigError
from vidgen.eval import grounded_metrics
from vidgen.eval.generate import read_model_video

METRICS = ("layout_iou", "clip_score", "temporal", "fid", "fvd", *grounded_metrics.NAMES)


def shapes_layout_iou(video: Tensor, clip: Tensor, prompts: list[str]) -> list[float]:
    """Per instance prompt: mean over the clip's visible frames of IoU(box in ``video``, box in ``clip``)."""
    from vidgen.data.shapes_segment import box_iou, detect_prompt

    out = []
    f = min(video.shape[1], clip.shape[1])
    for p in prompts:
        _, real_boxes, real_vis = detect_prompt(clip[:, :f], p)
        _, boxes, vis = detect_prompt(video[:, :f].float().clamp(-1, 1), p)
        if real_vis.any():
            iou = box_iou(boxes, real_boxes) * vis.float()  # [f]
            out.append(float(iou[real_vis].mean()))
    return out


def _real_videos(opts: dict, real: Callable[[int], Tensor] | None, n: int) -> Iterator[Tensor]:
    if opts.get("real"):
        folder = Path(opts["real"])
        files = sorted(folder.glob("*.mp4")) if folder.is_dir() else []
        if len(files) < 2:
            raise ConfigError(f"eval.real={folder}: needs a folder with at least 2 mp4 videos (the real set)")
        yield from (read_model_video(f) for f in files)
    elif real is not None:
        yield from (real(i) for i in range(n))
    else:
        raise ConfigError(
            "FID / FVD need real videos: pass eval.real=DIR (a folder of mp4s) or use suite=shapes"
        )


def check(names: list[str], opts: dict) -> None:
    """Before any video is generated: unknown metric names and missing weight files fail here."""
    from vidgen.eval.clip_metrics import CLIP_FILES
    from vidgen.eval.frechet import I3D_FILE, INCEPTION_FILE
    from vidgen.eval.weights import require_path

    if bad := [n for n in names if n not in METRICS]:
        raise ConfigError(f"eval.metrics: unknown {', '.join(bad)}; choose from {', '.join(METRICS)}")
    needs = {"clip_score": ("CLIPScore", "clip", CLIP_FILES), "temporal": ("temporal consistency", "clip", CLIP_FILES),
             "fid": ("FID", "fid.inception", INCEPTION_FILE), "face_fid": ("face FID", "fid.inception", INCEPTION_FILE), "fvd": ("FVD", "fvd.i3d", I3D_FILE)}  # fmt: skip
    for name in names:
        if name in needs:
            metric, key, expect = needs[name]
            require_path(metric, f"eval.{key}", opts.get(key), expect)
    grounded_metrics.check(names, opts)


def compute(names: list[str], videos: list[tuple[Tensor, str, int]], opts: dict,
            real: Callable[[int], Tensor] | None = None,
            instance_prompts: Callable[[int], list[str]] | None = None,
            dataset=None) -> dict[str, float]:  # fmt: skip
    """``videos``: (video [3, F, H, W], prompt, clip index) per generated file; ``dataset``: the shapes
    world's dataset the clips came from (suite=shapes), for the metrics of ``grounded_metrics``."""
    check(names, opts)
    out: dict[str, float] = {}
    clips, indices = [v for v, _, _ in videos], [i for _, _, i in videos]
    if "face_sim" in names:
        out.update(grounded_metrics.face_sim(clips, indices, dataset, opts))
    if "face_fid" in names:
        out.update(grounded_metrics.face_fid(clips, indices, dataset, opts))
    if wanted := [n for n in names if n in ("instance_clip", "instance_iou")]:
        out.update(grounded_metrics.instance_scores(wanted, clips, indices, dataset, opts))
    if "layout_iou" in names:
        if instance_prompts is None or real is None:
            raise ConfigError(
                "metric layout_iou needs suite=shapes (the exact segmenter of the shapes world)"
            )
        out["eval/shapes_layout_iou"] = statistics.fmean(
            iou for v, _, i in videos for iou in shapes_layout_iou(v, real(i), instance_prompts(i))
        )
    if "clip_score" in names or "temporal" in names:
        from vidgen.eval import clip_metrics as cm

        model, proc = cm.load_clip(opts.get("clip"), "eval.clip", "CLIPScore / temporal consistency")
        if "clip_score" in names:
            metric = cm.clip_score_metric(model, proc)
            for v, p, _ in videos:
                cm.update_clip_score(metric, v, p)
            out["eval/clip_score"] = float(metric.compute())
        if "temporal" in names:
            out["eval/temporal"] = statistics.fmean(
                cm.temporal_consistency(model, proc, v) for v, _, _ in videos
            )
    if "fid" in names:
        from vidgen.eval.frechet import load_fid, update_fid

        fid = load_fid(opts.get("fid.inception"))
        for r in _real_videos(opts, real, len(videos)):
            update_fid(fid, r, real=True)
        for v, _, _ in videos:
            update_fid(fid, v, real=False)
        out["eval/fid"] = float(fid.compute())
    if "fvd" in names:
        from vidgen.eval.frechet import FVD

        fvd = FVD(opts.get("fvd.i3d"))
        for r in _real_videos(opts, real, len(videos)):
            fvd.update(r[None], real=True)
        for v, _, _ in videos:
            fvd.update(v[None], real=False)
        out["eval/fvd"] = fvd.compute()
    return out
