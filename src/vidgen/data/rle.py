"""COCO-style run-length encoding of boolean masks (compatible with pycocotools).

A mask ``[H, W]`` is flattened in **column-major** (Fortran) order, like pycocotools, and
described by the lengths of alternating runs, starting with a run of zeros (which may have
length 0 when the first pixel is set). The JSON form is

    {"size": [H, W], "counts": "<compressed string>"}

where ``counts`` is the pycocotools compressed string (each count, after the first two, is
stored as the difference to the count two places earlier, in 5-bit little-endian groups with a
continuation bit, offset by ASCII 48). ``decode`` also accepts an uncompressed list of ints as
``counts`` (pycocotools' "uncompressed RLE").

Example: the 3x3 mask ``[[0,1,0],[0,1,1],[0,0,0]]`` flattened column-major is
``0,0,0, 1,1,0, 0,1,0`` -> counts ``[3, 2, 2, 1, 1]`` -> string ``"322OO"``.

Pure numpy/torch; no pycocotools dependency.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "RLEError",
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


def mask_counts(mask: Tensor | np.ndarray) -> list[int]:
    """Run lengths of a 2-D mask in column-major order, starting with a (possibly empty) zero run."""
    m = _as_numpy_mask(mask)
    flat = m.T.reshape(-1)  # column-major
    n = flat.size
    if n == 0:
        return [0]  # as pycocotools
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [n]))
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    return [int(r) for r in runs]


def counts_to_string(counts: list[int]) -> str:
    """pycocotools ``rleToString``: delta + 5-bit varint compression of the counts."""
    out: list[str] = []
    for i, count in enumerate(counts):
        x = int(count)
        if i > 2:  # pycocotools quirk: deltas start at index 3, not 2
            x -= int(counts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, as on C longs
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def counts_from_string(s: str) -> list[int]:
    """pycocotools ``rleFrString``: inverse of :func:`counts_to_string`."""
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
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode(mask: Tensor | np.ndarray) -> dict[str, Any]:
    """Encode a boolean ``[H, W]`` mask as ``{"size": [H, W], "counts": str}`` (pycocotools format)."""
    m = _as_numpy_mask(mask)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": counts_to_string(mask_counts(m))}


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


def decode(rle: dict[str, Any]) -> Tensor:
    """Decode an RLE dict to a bool tensor ``[H, W]`` (raises RLEError when malformed)."""
    h, w = rle_size(rle)
    counts = _counts(rle)
    if any(c < 0 for c in counts):
        raise RLEError("RLE counts must be non-negative")
    total = sum(counts)
    if total != h * w:
        raise RLEError(f"RLE counts sum to {total} but size {h}x{w} has {h * w} pixels")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return torch.from_numpy(np.ascontiguousarray(flat.reshape(w, h).T))


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
