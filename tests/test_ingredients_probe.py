"""benchmarks/ingredients_probe.py: routed-ID purity and agreement per generated face region."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from vidgen.data.shapes_face_detect import palette

PROBE = Path(__file__).parents[1] / "benchmarks" / "ingredients_probe.py"


def load_probe():
    spec = importlib.util.spec_from_file_location("ingredients_probe", PROBE)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    return probe


def test_token_index_follows_the_codec_frame_groups_and_the_patch_grid():
    probe = load_probe()
    grid = (3, 4, 4)  # 9 frames -> 3 latent frames; 64 x 64 pixels -> 4 x 4 tokens of 16 x 16
    assert probe.token_index(0, 64, 64, grid, 4)[0, 0] == 0
    assert probe.token_index(1, 64, 64, grid, 4)[0, 0] == 16  # frames 1..4 -> latent frame 1
    assert probe.token_index(4, 64, 64, grid, 4)[15, 16] == 16 + 1
    assert probe.token_index(5, 64, 64, grid, 4)[63, 63] == 2 * 16 + 15


def test_region_routing_scores_purity_and_agreement_of_one_face_over_two_tokens():
    probe = load_probe()
    colours = palette("gray")  # 0 background, 1 + k skin of identity k
    video = colours[0].view(3, 1, 1, 1).repeat(1, 1, 64, 64)  # one frame, gray
    video[:, 0, 0:8, 8:24] = colours[1 + 5].view(
        3, 1, 1
    )  # a face of identity 5: 8 px in token 0, 8 px in token 1
    refs = torch.tensor([2, 5])  # identity 5 is reference 1
    routed = torch.zeros(2, 16, dtype=torch.long)  # two (step, block) pairs, 16 tokens
    routed[0, 1] = 1  # step 0 routes token 1 to ID 1; everything else to ID 0
    rows = probe.region_routing(video, "gray", refs, routed, (1, 4, 4), 4, min_pixels=16)
    assert len(rows) == 1
    pixels, tokens, purity, agreement, share, is_ref = rows[0]
    assert (pixels, tokens, is_ref) == (128, 2, True)
    # step 0: half the pixels on ID 0, half on ID 1 -> majority 1/2; step 1: all on ID 0 -> 1
    assert purity == 0.75
    assert agreement == 0.25  # a quarter of the (pixel, step) pairs go to reference 1 (identity 5)
    assert share == 1 / 32  # one of the 2 x 16 (step, token) pairs of the frame
