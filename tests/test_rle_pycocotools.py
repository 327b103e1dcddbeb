"""vidgen.data.rle is pycocotools.mask: byte-identical to the hand-written encoder it replaced."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from vidgen.data import rle

# sha256 of json.dumps(encode(m)) over the 200 masks of _masks(), computed with the hand-written
# pure-numpy encoder at commit 6876472 (before pycocotools): the stored form must not change.
GOLDEN = "5d0c5452256239e8e897ab4a8d3c0c289f84b078459756c4716e7515c3ef373f"


def _masks():
    rng = np.random.default_rng(17)
    for _ in range(200):
        h, w = int(rng.integers(0, 40)), int(rng.integers(0, 40))
        p = rng.random()
        yield rng.random((h, w)) < p


def _reference_decode(counts: list[int], h: int, w: int) -> np.ndarray:
    """The replaced decoder: alternate runs of 0 and 1, column-major."""
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(w, h).T


def test_encodings_are_byte_identical_to_the_hand_written_encoder():
    digest = hashlib.sha256()
    for m in _masks():
        digest.update(json.dumps(rle.encode(m)).encode())
    assert digest.hexdigest() == GOLDEN


def test_decode_and_area_match_the_mask():
    for m in _masks():
        enc = rle.encode(torch.from_numpy(m))
        counts = rle.mask_counts(m)
        assert np.array_equal(_reference_decode(counts, *m.shape), m)
        assert np.array_equal(rle.decode(enc).numpy(), m)
        assert rle.decode(enc).dtype == torch.bool and rle.decode(enc).is_contiguous()
        assert np.array_equal(rle.decode({"size": list(m.shape), "counts": counts}).numpy(), m)
        assert rle.area(enc) == int(m.sum())
    big = [1000, 70000, 5, 123456]
    assert rle.counts_from_string(rle.counts_to_string(big)) == big


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"size": [3, 3], "counts": [3, 2]}, "sum to 5 but size 3x3 has 9"),  # pycocotools pads with zeros
        ({"size": [3, 3], "counts": "3"}, "sum to 3"),  # pycocotools returns uninitialised memory
        ({"size": [3, 3], "counts": "3 2"}, "invalid character"),
        ({"size": [3], "counts": "3"}, "size must be [H, W]"),
    ],
)
def test_malformed_rles_are_rejected_before_pycocotools(bad, message):
    with pytest.raises(rle.RLEError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rle.decode(bad)
    with pytest.raises(rle.RLEError):
        rle.area(bad)
