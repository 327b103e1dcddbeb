"""UniFusion tokenizers and location sampling (InstanceDiffusion "Instance Tokenizer", "Location parameterization")."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.embeddings import get_fourier_embeds_from_boundingbox
from transformers import ConvNextConfig, ConvNextModel

from vidgen.methods.instancediffusion.locations import boundary_points, inside_points, location_points
from vidgen.methods.instancediffusion.tokenizers import (
    FORMATS,
    SHARED,
    Locations,
    SegTokenizer,
    UniFusion,
    format_switches,
    fourier_embed,
)


def test_fourier_embed_matches_diffusers_box_layout():
    box = torch.rand(2, 3, 4)
    assert torch.allclose(fourier_embed(box, 16), get_fourier_embeds_from_boundingbox(16, box), atol=1e-6)
    assert fourier_embed(torch.rand(2, 3, 40), 16).shape == (2, 3, 16 * 2 * 40)


def test_real_size_tokenizer_mlps_have_the_released_parameter_counts():
    with torch.device("meta"):
        uni = UniFusion(30, 768, 768, 3072, 16, scribble_points=20, polygon_points=256)
    counts = {f: sum(p.numel() for p in uni.mlps[f].parameters()) for f in FORMATS}
    # official-code facts B.1: 14.56M, 14.36M, 18.09M, 64.49M; inputs 896, 832, 2048, 17152
    assert counts == {"box": 14_555_904, "point": 14_359_296, "scribble": 18_094_848, "polygon": 64_494_336}
    assert uni.mlps["polygon"][0].in_features == 768 + 16 * 2 * 512


def _tiny(fusion="format_aware", seg=True, n=3):
    torch.manual_seed(0)
    convnext = ConvNextModel(ConvNextConfig(num_channels=3, hidden_sizes=[4, 8, 8, 16], depths=[1, 1, 1, 1]))
    seg_tok = (
        SegTokenizer(convnext, slots=n, tokens=4, hidden=16, token_dim=8, resolution=64) if seg else None
    )
    return UniFusion(n, 6, 8, 16, 4, scribble_points=5, polygon_points=6, fusion=fusion, seg=seg_tok)


def _locations(b=2, n=3, given=None):
    g = torch.Generator().manual_seed(1)
    valid = torch.tensor([[True, True, False], [True, False, False]])[:b, :n]
    return Locations(
        text=torch.randn(b, n, 6, generator=g),
        valid=valid,
        boxes=torch.rand(b, n, 4, generator=g),
        points=torch.rand(b, n, 2, generator=g),
        scribbles=torch.rand(b, n, 5, 2, generator=g),
        polygons=torch.rand(b, n, 6, 2, generator=g),
        masks=torch.rand(b, n, 32, 32, generator=g) > 0.5,
        given=given
        if given is not None
        else format_switches(valid, ("box", "point", "scribble", "polygon", "seg")),
    )


def test_token_order_owners_and_shapes():
    uni = _tiny()
    tokens = uni(_locations())
    assert tokens.shape == (2, 4 * 3 + 4, 8)
    assert uni.owners().tolist() == [0, 1, 2] * 4 + [SHARED] * 4
    joint = _tiny("joint")
    assert joint(_locations()).shape == (2, 3 + 4, 8)
    assert joint.owners().tolist() == [0, 1, 2] + [SHARED] * 4


def test_null_token_replaces_a_dropped_format_and_keeps_the_others():
    uni = _tiny()
    loc = _locations()
    base = uni(loc)
    loc.boxes = torch.rand_like(loc.boxes)  # move every box
    moved = uni(loc)
    assert not torch.allclose(moved[0, 0], base[0, 0])  # box token of a given box changes
    assert torch.equal(moved[:, 3:], base[:, 3:])  # point / scribble / polygon / seg tokens do not
    loc.given["box"][:] = False
    nulled = uni(loc)
    loc.boxes = torch.rand_like(loc.boxes)
    assert torch.equal(uni(loc)[:, :3], nulled[:, :3])  # s = 0: the box no longer reaches the token
    with torch.no_grad():
        uni.nulls["box"].fill_(1.0)
    assert not torch.allclose(uni(loc)[:, :3], nulled[:, :3])  # ... but the learnable null e_i does


def test_seg_tokens_null_when_not_given():
    uni = _tiny()
    loc = _locations()
    loc.given["seg"] = torch.tensor([True, False])
    out = uni(loc)
    with torch.no_grad():
        assert torch.equal(out[1, -4:], uni.seg.null)
    assert not torch.equal(out[0, -4:], uni.seg.null)


def test_format_switches_inference_formats_and_drop_rates():
    valid = torch.ones(4000, 2, dtype=torch.bool)
    valid[:, 1] = False
    s = format_switches(valid, ("point", "box"))
    assert s["point"][:, 0].all() and s["box"][:, 0].all() and not s["point"][:, 1].any()
    assert not s["scribble"].any() and not s["polygon"].any() and not s["seg"].any()
    g = torch.Generator().manual_seed(0)
    s = format_switches(valid, ("box", "point", "seg"), format_drop=0.1, grounding_drop=0.1, gen=g)
    none = ~s["box"][:, 0] & ~s["point"][:, 0] & ~s["seg"]
    assert abs(1 - s["box"][:, 0].float().mean().item() - (1 - 0.9 * 0.9)) < 0.03  # dropped: 1 - 0.9 * 0.9
    assert abs(none.float().mean().item() - (0.1 + 0.9 * 0.1**3)) < 0.02


def test_polygon_points_lie_on_the_boundary_and_inside_the_mask():
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[8:24, 4:20] = True
    box = torch.tensor([4 / 32, 8 / 32, 20 / 32, 24 / 32])
    edge = boundary_points(mask, 128, box)
    px = (edge * 32 - 0.5).round().long()
    on_edge = (px[:, 0] == 4) | (px[:, 0] == 19) | (px[:, 1] == 8) | (px[:, 1] == 23)
    assert edge.shape == (128, 2) and on_edge.all()
    inner = inside_points(mask, 64, torch.Generator().manual_seed(0), box)
    ip = (inner * 32 - 0.5).round().long()
    assert mask[ip[:, 1], ip[:, 0]].all()
    masks, points, scribbles, polygons = location_points(
        box[None], mask[None], 20, 128, 128, torch.Generator().manual_seed(0)
    )
    assert points.tolist() == [[12 / 32, 16 / 32]]
    assert scribbles.shape == (1, 20, 2) and polygons.shape == (1, 256, 2)
    empty = torch.zeros(32, 32, dtype=torch.bool)  # no pixels: falls back to the box corners / centre
    assert inside_points(empty, 5, torch.Generator(), box).shape == (5, 2)


@pytest.mark.parametrize("fusion", ["format_aware", "joint"])
def test_gradients_reach_every_tokenizer(fusion):
    uni = _tiny(fusion)
    uni(_locations()).square().sum().backward()
    dead = [n for n, p in uni.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # null tokens get gradient only where a format is not given (all are given here)
    assert all(n.startswith("nulls.") or n == "seg.null" for n in dead), dead
