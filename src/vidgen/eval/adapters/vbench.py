"""VBench and VBench-I2V: video file layout and the benchmarks' own score aggregation.

VBench (Huang et al. 2024, github.com/Vchitect/VBench, ``scripts/constant.py`` + ``cal_final_score.py``):
each dimension score is min-max normalised with ``NORMALIZE``, Quality / Semantic are the
``DIM_WEIGHT``-weighted means of the normalised quality / semantic dimensions (dynamic degree weighs
0.5), and Total = (4 · Quality + 1 · Semantic) / 5. Scores are fractions in [0, 1].

VBench-I2V (``vbench2_beta_i2v``): Quality is the same weighted mean over the 7 quality dimensions;
the I2V score is the mean of the normalised video-image subject and background consistency
(camera motion is reported but does not enter it), Final = (I2V + Quality) / 2. This reading
reproduces STIV Table 13's printed "I2V Quality" / "Final Score" (tests/test_eval_adapters.py).
STIV Table 5 adds ``i2v_average`` (its "I2V Avg Scores": the plain mean of i2v_subject, i2v_background
and camera_motion, as its text says; 3 of its 5 rows match) and ``average`` ("Avg Scores": the plain
mean of the 10 dimensions; all 5 rows match).
"""

from __future__ import annotations

import json
from pathlib import Path

from vidgen.errors import DataError

QUALITY = (
    "subject_consistency",
    "background_consistency",
    "temporal_flickering",
    "motion_smoothness",
    "aesthetic_quality",
    "imaging_quality",
    "dynamic_degree",
)
SEMANTIC = (
    "object_class",
    "multiple_objects",
    "human_action",
    "color",
    "spatial_relationship",
    "scene",
    "appearance_style",
    "temporal_style",
    "overall_consistency",
)
I2V = ("i2v_subject", "i2v_background")
I2V_AVERAGE = (*I2V, "camera_motion")  # STIV Table 5 "I2V Avg Scores"
TABLE5_AVERAGE = (*QUALITY, *I2V_AVERAGE)  # STIV Table 5 "Avg Scores" (its 10 columns)
NORMALIZE = {  # (Min, Max), VBench scripts/constant.py NORMALIZE_DIC
    "subject_consistency": (0.1462, 1.0),
    "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0),
    "motion_smoothness": (0.706, 0.9975),
    "dynamic_degree": (0.0, 1.0),
    "aesthetic_quality": (0.0, 1.0),
    "imaging_quality": (0.0, 1.0),
    "object_class": (0.0, 1.0),
    "multiple_objects": (0.0, 1.0),
    "human_action": (0.0, 1.0),
    "color": (0.0, 1.0),
    "spatial_relationship": (0.0, 1.0),
    "scene": (0.0, 0.8222),
    "appearance_style": (0.0009, 0.2855),
    "temporal_style": (0.0, 0.364),
    "overall_consistency": (0.0, 0.364),
    "i2v_subject": (0.1462, 1.0),
    "i2v_background": (0.2615, 1.0),
}
DIM_WEIGHT = {"dynamic_degree": 0.5}  # every other dimension weighs 1
QUALITY_WEIGHT, SEMANTIC_WEIGHT = 4.0, 1.0
SAMPLES_PER_PROMPT = 5  # VBench standard mode: videos "<prompt>-<i>.mp4", i = 0..4


def _weighted(scores: dict[str, float], dims: tuple[str, ...]) -> float:
    num = den = 0.0
    for dim in dims:
        lo, hi = NORMALIZE[dim]
        w = DIM_WEIGHT.get(dim, 1.0)
        num += w * (scores[dim] - lo) / (hi - lo)
        den += w
    return num / den


def vbench_scores(scores: dict[str, float]) -> dict[str, float]:
    """The dimensions plus ``quality_score`` / ``semantic_score`` / ``total_score`` where computable."""
    out = dict(scores)
    if all(d in scores for d in QUALITY):
        out["quality_score"] = _weighted(scores, QUALITY)
    if all(d in scores for d in SEMANTIC):
        out["semantic_score"] = _weighted(scores, SEMANTIC)
    if "quality_score" in out and "semantic_score" in out:
        out["total_score"] = (
            QUALITY_WEIGHT * out["quality_score"] + SEMANTIC_WEIGHT * out["semantic_score"]
        ) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)
    return out


def vbench_i2v_scores(scores: dict[str, float]) -> dict[str, float]:
    """The dimensions plus, where their dimensions are all present, ``quality_score``, ``i2v_score``,
    ``total_score`` (VBench-I2V's Final Score), ``i2v_average`` and ``average`` (STIV Table 5)."""
    if not scores:
        raise DataError("VBench-I2V: the result files hold no dimension")
    out = dict(scores)
    if all(d in scores for d in QUALITY):
        out["quality_score"] = _weighted(scores, QUALITY)
    if all(d in scores for d in I2V):
        out["i2v_score"] = _weighted(scores, I2V)
    if "quality_score" in out and "i2v_score" in out:
        out["total_score"] = (out["quality_score"] + out["i2v_score"]) / 2
    for key, dims in (("i2v_average", I2V_AVERAGE), ("average", TABLE5_AVERAGE)):
        if all(d in scores for d in dims):
            out[key] = sum(scores[d] for d in dims) / len(dims)
    return out


def read_vbench_results(paths: list[Path]) -> dict[str, float]:
    """``<name>_eval_results.json`` files of ``vbench evaluate``: ``{dim: [mean, [per-video ...]]}``."""
    scores: dict[str, float] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
            for dim, value in data.items():
                scores[dim] = float(value[0] if isinstance(value, list) else value)
        except (OSError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise DataError(
                f"{path}: not a VBench result file ({exc}); expected the <name>_eval_results.json "
                'that `vbench evaluate` writes: {"<dimension>": [score, [per-video results]], ...}'
            ) from None
    return scores


def vbench_video_name(prompt: str, index: int) -> str:
    """VBench's standard-mode file name for sample ``index`` of ``prompt``."""
    return f"{prompt}-{index}.mp4"
