"""Validation of the JSON annotations of a shard: every problem names file, sample key, field and fix.

Shared by the writer (`ShardWriter.add`) and the reader (`ShardDataset.__getitem__`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vidgen.data import rle
from vidgen.errors import DataError

# ---------------------------------------------------------------------------------------------
# Annotation validation (shared by the writer and the reader)


class _Ctx:
    """Where an annotation comes from, to build messages that name file, key and field."""

    def __init__(self, file: Path | str, key: str):
        self.file = str(file)
        self.key = key

    def error(self, field: str, problem: str, fix: str) -> DataError:
        return DataError(f"{self.file}: sample {self.key!r}: field {field}: {problem}. Fix: {fix}.")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


_REPRODUCE = "correct the annotation and re-run `vidgen precompute` for this sample"


def _check_box(ctx: _Ctx, field: str, box: Any) -> None:
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_num(v) for v in box):
        raise ctx.error(
            field,
            f"expected [x1, y1, x2, y2] numbers or null, got {box!r}",
            f"write null for frames where it is not visible; {_REPRODUCE}",
        )
    if not all(math.isfinite(v) for v in box):
        raise ctx.error(
            field,
            f"box {list(box)} contains NaN or inf",
            f"write null for frames where the object is not visible instead of NaN/inf; {_REPRODUCE}",
        )
    if not all(0.0 <= v <= 1.0 for v in box):
        raise ctx.error(
            field,
            f"box {list(box)} is outside [0, 1]",
            f"boxes are normalised xyxy: divide pixel coordinates by the frame width/height and clip to [0, 1]; {_REPRODUCE}",
        )
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        raise ctx.error(
            field,
            f"box {list(box)} has x2 < x1 or y2 < y1",
            f"order the corners as [x1, y1, x2, y2] (top-left, bottom-right); {_REPRODUCE}",
        )


def _check_per_frame(ctx: _Ctx, field: str, value: Any, frames: int) -> list:
    if not isinstance(value, list):
        raise ctx.error(
            field, f"expected a list with one entry per frame, got {type(value).__name__}", _REPRODUCE
        )
    if len(value) != frames:
        raise ctx.error(
            field,
            f"has {len(value)} entries but the video has {frames} frames (frame_size[0])",
            f"write one entry per frame (null where absent); {_REPRODUCE}",
        )
    return value


def _check_boxes(ctx: _Ctx, field: str, boxes: Any, frames: int) -> None:
    for f, box in enumerate(_check_per_frame(ctx, field, boxes, frames)):
        if box is not None:
            _check_box(ctx, f"{field}[frame {f}]", box)


def _check_masks(ctx: _Ctx, field: str, masks: Any, frame_size: tuple[int, int, int]) -> None:
    frames, h, w = frame_size
    for f, mask in enumerate(_check_per_frame(ctx, field, masks, frames)):
        if mask is None:
            continue
        try:
            size = rle.rle_size(mask)
        except rle.RLEError as e:
            raise ctx.error(f"{field}[frame {f}]", str(e), _REPRODUCE) from e
        if size != (h, w):
            raise ctx.error(
                f"{field}[frame {f}]",
                f"mask size {list(size)} does not match the video's frame_size [F, H, W] = {[frames, h, w]}",
                f"resize the mask to {h}x{w} (the clip's resolution) before RLE-encoding; {_REPRODUCE}",
            )


def _check_str(ctx: _Ctx, field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ctx.error(field, f"expected a string, got {type(value).__name__}", _REPRODUCE)


def _check_int_pair(ctx: _Ctx, field: str, value: Any) -> None:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(_is_int(v) and v >= 0 for v in value)
    ):
        raise ctx.error(field, f"expected [int, int] (non-negative), got {value!r}", _REPRODUCE)


def validate_annotation(
    ann: Any,
    *,
    file: Path | str,
    key: str,
    max_instances: int | None = None,
    num_identities: int | None = None,
) -> None:
    """Check one sample's JSON annotation; raise DataError naming ``file``, ``key`` and the field."""
    ctx = _Ctx(file, key)
    if not isinstance(ann, dict):
        raise ctx.error("<annotation>", f"expected a JSON object, got {type(ann).__name__}", _REPRODUCE)
    if ann.get("key") != key:
        raise ctx.error(
            "key",
            f"annotation key {ann.get('key')!r} does not match the key {key!r} listed in index.json",
            "the shard json and index.json disagree; re-run `vidgen precompute` for this shard",
        )
    _check_str(ctx, "caption", ann.get("caption"))
    fs = ann.get("frame_size")
    if not isinstance(fs, list) or len(fs) != 3 or not all(_is_int(v) and v >= 0 for v in fs):
        raise ctx.error("frame_size", f"expected [F, H, W] non-negative integers, got {fs!r}", _REPRODUCE)
    frame_size = (fs[0], fs[1], fs[2])
    frames = frame_size[0]

    instances = ann.get("instances")
    if instances is not None:
        if not isinstance(instances, list):
            raise ctx.error("instances", "expected a list of instances or null", _REPRODUCE)
        if max_instances is not None and len(instances) > max_instances:
            raise ctx.error(
                "instances",
                f"has {len(instances)} instances, more than the configured maximum data.max_instances={max_instances}",
                f"raise the config key data.max_instances to at least {len(instances)} "
                f"(e.g. `data.max_instances={len(instances)}`) or drop instances from this sample",
            )
        for i, inst in enumerate(instances):
            name = f"instances[{i}]"
            if not isinstance(inst, dict):
                raise ctx.error(name, "expected an object {prompt, boxes, mask_rle?}", _REPRODUCE)
            _check_str(ctx, f"{name}.prompt", inst.get("prompt"))
            _check_boxes(ctx, f"{name}.boxes", inst.get("boxes"), frames)
            if inst.get("mask_rle") is not None:
                _check_masks(ctx, f"{name}.mask_rle", inst["mask_rle"], frame_size)

    regions = ann.get("regions")
    if regions is not None:
        if not isinstance(regions, list):
            raise ctx.error("regions", "expected a list of regions or null", _REPRODUCE)
        for i, reg in enumerate(regions):
            name = f"regions[{i}]"
            if not isinstance(reg, dict):
                raise ctx.error(name, "expected an object {caption, mask_rle}", _REPRODUCE)
            _check_str(ctx, f"{name}.caption", reg.get("caption"))
            _check_masks(ctx, f"{name}.mask_rle", reg.get("mask_rle"), frame_size)

    faces = ann.get("faces")
    if faces is not None:
        if not isinstance(faces, list):
            raise ctx.error("faces", "expected a list of faces or null", _REPRODUCE)
        for i, face in enumerate(faces):
            name = f"faces[{i}]"
            if not isinstance(face, dict):
                raise ctx.error(name, "expected an object {id_index, boxes, mask_rle}", _REPRODUCE)
            idx = face.get("id_index")
            if not _is_int(idx) or idx < 0:
                raise ctx.error(
                    f"{name}.id_index", f"expected a non-negative integer, got {idx!r}", _REPRODUCE
                )
            if num_identities is not None and idx >= num_identities:
                raise ctx.error(
                    f"{name}.id_index",
                    f"unknown face ID index {idx}: the identity table has {num_identities} entries "
                    "(index.json 'num_identities')",
                    f"use an id_index in [0, {num_identities}) or rebuild the identity table and re-run "
                    "`vidgen precompute`",
                )
            _check_boxes(ctx, f"{name}.boxes", face.get("boxes"), frames)
            _check_masks(ctx, f"{name}.mask_rle", face.get("mask_rle"), frame_size)

    micro = ann.get("micro")
    if micro is not None:
        if not isinstance(micro, dict):
            raise ctx.error("micro", "expected an object {original_size, crop, stride, fps}", _REPRODUCE)
        _check_int_pair(ctx, "micro.original_size", micro.get("original_size"))
        _check_int_pair(ctx, "micro.crop", micro.get("crop"))
        stride = micro.get("stride")
        if not _is_int(stride) or stride < 1:
            raise ctx.error("micro.stride", f"expected an integer >= 1, got {stride!r}", _REPRODUCE)
        fps = micro.get("fps", 0.0)
        if not _is_num(fps) or not math.isfinite(fps) or fps < 0:
            raise ctx.error("micro.fps", f"expected a finite number >= 0, got {fps!r}", _REPRODUCE)


# ---------------------------------------------------------------------------------------------
# VideoSample <-> (annotation, tensors)
