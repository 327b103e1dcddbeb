"""COCO run-length encoding of boolean masks, through ``pycocotools.mask``.

A mask ``[H, W]`` is flattened in **column-major** (Fortran) order and described by the lengths
of alternating runs, starting with a run of zeros (length 0 when the first pixel is set). The
JSON form is pycocotools' compressed RLE

    {"size": [H, W], "counts": "<compressed string>"}

``decode`` also accepts an uncompressed list of ints as ``counts`` (pycocotools' "uncompressed
RLE"). Example: ``[[0,1,0],[0,1,1],[0,0,0]]`` -> counts ``[3, 2, 2, 1, 1]`` -> ``"322OO"``.

Encoding, decoding and area are ``pycocotools.mask``. The counts string is also parsed here
(``counts_from_string``) to *check* an RLE before pycocotools sees it: its C decoder does not
check that the counts sum to H*W (short counts decode padded with zeros; a string too short
for its size returns uninitialised memory), and RLEs come from user annotation files.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pycocotools import mask as coco_mask
from torch import Tensor

__all__ = [
    "RLEError",
    "area",
    "rle_size",
    "counts_from_string",
    "counts_to_string",
    "decode",
    "decode_frames",
    "encode",
    "encode_frames",
    "mask_counts",
]


class RLEError(ValueError):
    """An RLE dict is malformed (the caller adds the file/field context)."""


def _as_numpy_mask(mask: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(mask, Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RLEError(f"expected a 2-D mask [H, W], got shape {tuple(mask.shape)}")
    return mask.astype(bool, copy=False)


def counts_to_string(counts: list[int]) -> str:
    """pycocotools ``rleToString`` of uncompressed counts (via ``frPyObjects``)."""
    n = int(sum(counts))
    return coco_mask.frPyObjects({"size": [n, 1], "counts": [int(c) for c in counts]}, n, 1)[
        "counts"
    ].decode()


def counts_from_string(s: str) -> list[int]:
    """Inverse of :func:`counts_to_string` (pycocotools ``rleFrString``), raising RLEError on bad input.

    pycocotools has no Python entry point that returns the counts, and its decoder does not
    validate them (module docstring), so the parse is kept here to check untrusted RLEs.
    """
    counts: list[int] = []
    p = 0
    n = len(s)
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n:
                raise RLEError("truncated RLE counts string")
            c = ord(s[p]) - 48
            if c < 0 or c > 63:
                raise RLEError(f"invalid character {s[p]!r} in RLE counts string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:  # pycocotools: deltas against the count two places earlier, from index 3
            x += counts[-2]
        counts.append(x)
    return counts


def encode(mask: Tensor | np.ndarray) -> dict[str, Any]:
    """Encode a boolean ``[H, W]`` mask as ``{"size": [H, W], "counts": str}`` (``pycocotools.mask.encode``)."""
    m = _as_numpy_mask(mask)
    out = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": out["counts"].decode("ascii")}


def mask_counts(mask: Tensor | np.ndarray) -> list[int]:
    """Run lengths of a 2-D mask in column-major order, starting with a (possibly empty) zero run."""
    return counts_from_string(encode(mask)["counts"])


def rle_size(rle: Any) -> tuple[int, int]:
    """The ``(H, W)`` of an RLE dict, checking its structure (raises RLEError)."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise RLEError('expected an RLE object {"size": [H, W], "counts": ...}')
    size = rle["size"]
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)
    ):
        raise RLEError(f"RLE size must be [H, W] with non-negative integers, got {size!r}")
    return int(size[0]), int(size[1])


def _counts(rle: dict[str, Any]) -> list[int]:
    counts = rle["counts"]
    if isinstance(counts, str):
        return counts_from_string(counts)
    if isinstance(counts, bytes):
        return counts_from_string(counts.decode("ascii"))
    if isinstance(counts, (list, tuple)) and all(isinstance(c, int) for c in counts):
        return [int(c) for c in counts]
    raise RLEError("RLE counts must be a compressed string or a list of integers")


def _checked(rle: dict[str, Any]) -> dict[str, Any]:
    """``rle`` as a pycocotools compressed RLE, after checking its counts cover H*W exactly."""
    h, w = rle_size(rle)
    counts = _counts(rle)
    if any(c < 0 for c in counts):
        raise RLEError("RLE counts must be non-negative")
    total = sum(counts)
    if total != h * w:
        raise RLEError(f"RLE counts sum to {total} but size {h}x{w} has {h * w} pixels")
    if isinstance(rle["counts"], (list, tuple)):
        return coco_mask.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    counts_str = rle["counts"]
    return {
        "size": [h, w],
        "counts": counts_str.encode("ascii") if isinstance(counts_str, str) else counts_str,
    }


def decode(rle: dict[str, Any]) -> Tensor:
    """Decode an RLE dict to a bool tensor ``[H, W]`` (``pycocotools.mask.decode``; RLEError when malformed)."""
    m = coco_mask.decode(_checked(rle))
    return torch.from_numpy(np.ascontiguousarray(m.astype(bool)))


def area(rle: dict[str, Any]) -> int:
    """Number of set pixels (``pycocotools.mask.area``; RLEError when malformed)."""
    return int(coco_mask.area(_checked(rle)))


def encode_frames(masks: Tensor | np.ndarray) -> list[dict[str, Any]]:
    """Encode ``[F, H, W]`` masks frame by frame."""
    return [encode(m) for m in masks]


def decode_frames(rles: list[dict[str, Any] | None], size: tuple[int, int]) -> Tensor:
    """Decode a per-frame list of RLEs (``None`` = empty frame) to bool ``[F, H, W]``."""
    h, w = size
    out = torch.zeros((len(rles), h, w), dtype=torch.bool)
    for f, rle in enumerate(rles):
        if rle is not None:
            out[f] = decode(rle)
    return out
