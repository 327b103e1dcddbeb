"""Ingredients layers: projector, perceiver cross-attention, ID router, routing loss (Sec. 3.2-3.3)."""

from __future__ import annotations

import math

import pytest
import torch

from vidgen.backbones import build_backbone
from vidgen.errors import ConfigError
from vidgen.methods.ingredients.denoiser import IngredientsCogVideoX, routed_blocks
from vidgen.methods.ingredients.injection import PerceiverCrossAttention, route
from vidgen.methods.ingredients.losses import (
    box_masks,
    downsample_labels,
    index_map_channels,
    mask_channels,
    routing_loss,
)
from vidgen.methods.ingredients.projector import MultiScaleProjector
from vidgen.methods.ingredients.router import IDRouter

TINY_PROJ = dict(
    id_dim=12, local_dim=8, scales=5, dim=16, heads=2, dim_head=8, queries=4, id_tokens=2, output_dim=24
)
VALID3 = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])  # N = 1, 2, 3


def _locals(b, n, length=6, dim=8, scales=5):
    return [torch.randn(b, n, length, dim) for _ in range(scales)]


def test_projector_shapes_and_ids_are_independent():
    torch.manual_seed(0)
    proj = MultiScaleProjector(**TINY_PROJ)
    assert len(proj.layers) == 10  # 2 layers per scale x 5 scales
    ids, feats = torch.randn(2, 3, 12), _locals(2, 3)
    out = proj(ids, feats)
    assert out.shape == (2, 3, 4, 24)
    ids2 = ids.clone()
    ids2[:, 1] += 1.0  # change ID 1 only
    out2 = proj(ids2, feats)
    assert torch.equal(out2[:, 0], out[:, 0]) and torch.equal(out2[:, 2], out[:, 2])
    assert not torch.allclose(out2[:, 1], out[:, 1])
    feats2 = [f.clone() for f in feats]
    feats2[3][:, 1] += 1.0  # change ID 1's local features at one scale only
    out3 = proj(ids, feats2)
    assert torch.equal(out3[:, 0], out[:, 0]) and torch.equal(out3[:, 2], out[:, 2])
    assert not torch.allclose(out3[:, 1], out[:, 1])
    with pytest.raises(ValueError, match="expects 5 local feature scales, got 4"):
        proj(ids, feats[:4])


def test_real_size_projector_output_is_32_by_2048():
    with torch.device("meta"):  # shapes only: released sizes, 1280-d id, 1024-d ViT features
        proj = MultiScaleProjector()
        out = proj(torch.randn(1, 1, 1280), _locals(1, 1, length=577, dim=1024))
    assert out.shape == (1, 1, 32, 2048)


def test_router_logits_shape_and_masking_for_one_two_three_ids_in_one_batch():
    torch.manual_seed(0)
    router = IDRouter(dim=16, id_dim=24, id_length=4, inner=32)
    hidden, faces = torch.randn(3, 10, 16), torch.randn(3, 3, 4, 24)
    logits = router(hidden, faces)
    assert logits.shape == (3, 10, 3)
    features = torch.randn(3, 3, 10, 16)
    for mode in ("argmax", "softmax"):
        f_bar = route(features, logits, VALID3, mode)
        assert f_bar.shape == (3, 10, 16)
        assert torch.allclose(f_bar[0], features[0, 0])  # one ID: every token gets it
    # argmax never picks a padded ID: the batch-1 tokens are features of ID 0 or 1 only
    f_bar = route(features, logits, VALID3, "argmax")
    picked = (f_bar[1][:, None] == features[1].transpose(0, 1)).all(-1)  # [L, N]
    assert picked[:, :2].any(1).all() and not picked[:, 2].any()
    # a padded ID's faces do not change the valid IDs' routing
    faces2 = faces.clone()
    faces2[1, 2] = 100.0
    assert torch.equal(router(hidden, faces2)[1, :, :2], logits[1, :, :2])


def test_forced_routing_gives_labelled_tokens_their_id_and_leaves_the_rest_to_the_router():
    """method.stage1_routing=labels: a token labelled n gets ID n's feature; -1 tokens the router's."""
    torch.manual_seed(0)
    features, logits = torch.randn(3, 3, 10, 16), torch.randn(3, 10, 3)
    forced = torch.full((3, 10), -1)
    forced[:, :4] = torch.tensor([0, 1, 1, 0])
    forced[2, 4] = 2
    for mode in ("argmax", "softmax"):
        plain = route(features, logits, VALID3, mode)
        assert torch.equal(route(features, logits, VALID3, mode, torch.full((3, 10), -1)), plain)
        f_bar = route(features, logits, VALID3, mode, forced)
        labelled = forced >= 0
        assert torch.equal(f_bar[~labelled], plain[~labelled])
        for b, token in labelled.nonzero().tolist():
            assert torch.equal(f_bar[b, token], features[b, forced[b, token], token])


def test_router_sqrt_d_and_single_linear_knobs():
    torch.manual_seed(0)
    plain = IDRouter(16, 24, 4, 32, mlp=False, sqrt_d=False)
    assert isinstance(plain.f, torch.nn.Linear) and plain.f.bias is None
    scaled = IDRouter(16, 24, 4, 32, mlp=False, sqrt_d=True)
    scaled.load_state_dict(plain.state_dict())
    h, f = torch.randn(1, 5, 16), torch.randn(1, 2, 4, 24)
    assert torch.allclose(scaled(h, f), plain(h, f) / math.sqrt(32))


def test_trilinear_downsampling_matches_a_hand_computed_case():
    # 2 frames x 4 x 4 -> 1 x 2 x 2: each output is the mean of one 2x2x2 block (align_corners=False)
    masks = torch.zeros(1, 2, 2, 4, 4, dtype=torch.bool)
    masks[0, 0, :, 0:2, 0:2] = True  # ID 0 fills block (0, 0): share 8/8
    masks[0, 0, 0, 0:2, 2:4] = True  # ID 0 covers 4 of block (0, 1)'s 8 voxels ...
    masks[0, 1, 1, 0, 2] = True  # ... ID 1 one: background 3/8 < 4/8 -> ID 0
    masks[0, 1, 0, 2, 0:2] = True  # ID 1 covers 2 of block (1, 0): background 6/8 -> -1
    masks[0, 1, :, 2:4, 2:4] = True  # ID 1 fills block (1, 1) ...
    masks[0, 0, 1, 3, 3] = True  # ... and ID 0 one voxel of it (overlap): ID 1 8/8 wins
    channels = mask_channels(masks, torch.tensor([[True, True]]))
    shares = torch.nn.functional.interpolate(channels, size=(1, 2, 2), mode="trilinear", align_corners=False)
    assert torch.allclose(
        shares[0, :, 0],
        torch.tensor(
            [
                [[0.0, 3 / 8], [6 / 8, 0.0]],  # background
                [[1.0, 4 / 8], [0.0, 1 / 8]],  # ID 0
                [[0.0, 1 / 8], [2 / 8, 1.0]],  # ID 1
            ]
        ),
    )
    labels = downsample_labels(channels, (1, 2, 2))
    assert labels.tolist() == [[[[0, 0], [-1, 1]]]]


def test_index_map_with_an_unknown_id_index_is_an_error():
    index_map = torch.full((2, 1, 2, 2), -1)
    index_map[1, 0, 0, 0] = 2  # clip 1 has two IDs (0, 1)
    with pytest.raises(
        ValueError, match="batch element 1 holds ID index 2, but that clip has 2 reference IDs"
    ):
        index_map_channels(index_map, torch.tensor([3, 2]))
    channels = index_map_channels(index_map.clamp(max=1), torch.tensor([3, 2]))
    assert channels.shape == (2, 4, 1, 2, 2) and channels.sum(1).eq(1).all()


def test_box_masks_fill_the_box_pixels():
    boxes = torch.tensor([0.25, 0.0, 0.75, 0.5]).view(1, 1, 1, 4)
    m = box_masks(boxes, 4, 4)[0, 0, 0]
    assert m.int().tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_routing_loss_ignores_background_exactly_and_matches_cross_entropy():
    torch.manual_seed(0)
    labels = torch.tensor([[1, -1, 0, -1], [-1, -1, -1, -1]])
    valid = torch.tensor([[True, True], [True, False]])
    logits = torch.zeros(2, 4, 2)
    logits[0, 0] = torch.tensor([0.0, math.log(3.0)])  # p(label 1) = 3/4
    loss = routing_loss([logits, logits], labels, valid, "ce")
    # clip 0: mean of -log(3/4) and -log(1/2); clip 1 has no labelled token -> 0; mean over clips
    assert torch.isclose(loss, torch.tensor((-math.log(0.75) - math.log(0.5)) / 2 / 2))
    noisy = logits.clone().requires_grad_(True)
    with torch.no_grad():
        noisy[labels < 0] = torch.randn(int((labels < 0).sum()), 2) * 10
    for kind in ("ce", "mse"):
        a = routing_loss([noisy], labels, valid, kind)
        b = routing_loss([logits], labels, valid, kind)
        assert torch.equal(a, b)  # background logits do not enter, bit for bit
        (grad,) = torch.autograd.grad(a, noisy)
        assert grad[labels < 0].abs().sum() == 0 and grad[labels >= 0].abs().sum() > 0
    assert routing_loss([logits], labels, valid, "none") == 0


def test_routed_blocks_every_and_every_second():
    assert routed_blocks(42, 1) == list(range(42))
    assert routed_blocks(42, 2) == list(range(0, 42, 2)) and len(routed_blocks(42, 2)) == 21


FACE = dict(interval=1, heads=2, dim_head=8, scale=1.0, zero_init=False)
ROUTER = dict(id_length=4, inner=16, mlp=True, sqrt_d=False, mode="argmax")


def _pair(zero_init: bool):
    torch.manual_seed(0)
    plain = build_backbone("cogvideox-5b-i2v", size="tiny")
    torch.manual_seed(0)
    wrapped = IngredientsCogVideoX(
        build_backbone("cogvideox-5b-i2v", size="tiny"), 24, {**FACE, "zero_init": zero_init}, ROUTER
    )
    x = dict(
        latents=torch.randn(3, 16, 3, 8, 8),
        timesteps=torch.tensor([10, 500, 900]),
        text_embeds=torch.randn(3, 16, 32),
        image_latents=torch.randn(3, 16, 1, 8, 8),
    )
    return plain, wrapped, x


def test_zero_init_face_injection_keeps_the_i2v_backbone_output_bit_for_bit():
    plain, wrapped, x = _pair(zero_init=True)
    faces = torch.randn(3, 3, 4, 24)
    with torch.no_grad():
        ref = plain(**x)
        assert torch.equal(wrapped(**x, faces=faces, face_valid=VALID3), ref)
        assert len(wrapped.routing_logits) == 2 and wrapped.routing_logits[0].shape == (3, 3 * 4 * 4, 3)
        for inj in wrapped.injections.values():
            torch.nn.init.normal_(inj.pca.to_out.weight)
        assert not torch.allclose(wrapped(**x, faces=faces, face_valid=VALID3), ref)  # faces really arrive


def test_released_init_changes_the_output_at_step_0_and_no_faces_is_the_backbone():
    plain, wrapped, x = _pair(zero_init=False)
    with torch.no_grad():
        ref = plain(**x)
        assert torch.equal(wrapped(**x), ref)  # no faces: hooks pass through
        assert wrapped.routing_logits == []
        out = wrapped(**x, faces=torch.randn(3, 3, 4, 24), face_valid=VALID3)
    assert not torch.allclose(out, ref)  # the released PCA is not zero-initialised (facts C.3)


def test_pca_output_per_id():
    pca = PerceiverCrossAttention(dim=16, kv_dim=24, heads=2, dim_head=8)
    assert pca(torch.randn(2, 3, 4, 24), torch.randn(2, 7, 16)).shape == (2, 3, 7, 16)


def test_composite_before_and_after_the_vae_have_the_i2v_latent_shape():
    from vidgen.data.shapes_codec import ShapesCodec
    from vidgen.faces import compose_canvas
    from vidgen.methods.ingredients.composite import composite_latents

    codec, crops = ShapesCodec(16, (4, 8, 8)), torch.rand(3, 3, 16, 16) * 2 - 1
    before = composite_latents(crops, codec, 64, 64, 8, "before")
    after = composite_latents(crops, codec, 64, 64, 8, "after")
    assert before.shape == after.shape == (16, 1, 8, 8)
    canvas = compose_canvas(crops, 64, 64, 48)  # one VAE pass over all faces
    assert torch.allclose(before, codec.encode(canvas[None, :, None])[0])
    # after: 8 latent columns shared 3 / 3 / 2, each tile its own VAE pass holding one face
    tile = codec.encode(compose_canvas(crops[2:], 64, 16, 48)[None, :, None])[0]
    assert torch.allclose(after[..., 6:], tile) and not torch.allclose(after, before)
    # none (diagnostic knob): the same shape, no content, so the faces reach the DiT only as routed features
    none = composite_latents(crops, codec, 64, 64, 8, "none")
    assert none.shape == before.shape and not none.any()


def test_t2v_init_copies_the_t2v_weights_and_zeroes_the_image_channels():
    from vidgen.methods.ingredients.t2v_init import PATCH, init_from_t2v

    i2v = build_backbone("cogvideox-5b-i2v", size="tiny").model
    torch.manual_seed(3)
    kept = init_from_t2v(i2v, "tiny", None)
    torch.manual_seed(3)
    t2v = build_backbone("cogvideox-5b", size="tiny").model.state_dict()
    mine = i2v.state_dict()
    assert kept == ["patch_embed.pos_embedding"]  # the I2V learned positional embedding keeps its init
    assert all(torch.equal(mine[k], v) for k, v in t2v.items() if k != PATCH)
    assert torch.equal(mine[PATCH][:, :16], t2v[PATCH]) and not mine[PATCH][:, 16:].any()
    with pytest.raises(ConfigError, match="method.init.dit=t2v needs method.init.t2v_weights=FOLDER"):
        init_from_t2v(i2v, "real", None)
