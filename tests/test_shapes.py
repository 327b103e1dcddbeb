"""The shapes world (data=shapes): ground truth, codec, caption embedder and datamodule."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from vidgen.data.caption_embedder import CaptionEmbedder, tokenize
from vidgen.data.sample import FIELDS, VideoBatch, collate, sample_fields
from vidgen.data.shapes import (
    BACKGROUNDS,
    COLOURS,
    NUM_IDENTITIES,
    ShapesWorld,
    face_crop,
    masks_to_boxes,
)
from vidgen.data.shapes_codec import ShapesCodec
from vidgen.errors import ConfigError

COG = (16, (4, 8, 8))
MODELSCOPE = (4, (1, 8, 8))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The clips are small: one intra-op thread is fastest (and steady on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clips():
    world = ShapesWorld(9, 64, 64, max_instances=4, seed=0)
    return [world.render_clip(i) for i in range(48)]


# ---------------------------------------------------------------------------------------------
# world ground truth


def test_clip_layout_and_ranges(clips):
    for c in clips:
        n = len(c.specs)
        assert 1 <= n <= 4
        assert c.video.shape == (3, 9, 64, 64) and c.video.dtype == torch.float32
        assert c.video.min() >= -1 and c.video.max() <= 1
        assert c.boxes.shape == (n, 9, 4) and c.visible.shape == (n, 9)
        assert c.masks.shape == (n, 9, 64, 64) and c.masks.dtype == torch.bool
        assert c.hed.shape == (9, 64, 64) and c.depth.shape == (9, 64, 64)
        for m in (c.hed, c.depth):
            assert m.min() >= 0 and m.max() <= 1
        assert c.first_frame.shape == (3, 1, 64, 64)
        assert torch.equal(c.first_frame[:, 0], c.video[:, 0])
        assert c.original_size == (64, 64) and c.crop == (0, 0) and c.stride == 1
    # the world has variety: several instance counts, shapes, motions; some instances leave the frame
    assert len({len(c.specs) for c in clips}) >= 3
    assert len({s.shape for c in clips for s in c.specs}) >= 5
    assert {s.motion for c in clips for s in c.specs} == {"linear", "bounce", "circular"}
    assert any((~c.visible).any() for c in clips)
    partial = 0
    for c in clips:  # box touching the frame border while visible: partially out of frame
        touching = (c.boxes[..., :2] == 0) | (c.boxes[..., 2:] == 1)
        partial += int((touching.any(-1) & c.visible).sum())
    assert partial > 0


def test_boxes_are_mask_bounding_boxes(clips):
    h = w = 64
    for c in clips:
        for n in range(len(c.specs)):
            for f in range(9):
                m = c.masks[n, f]
                assert bool(c.visible[n, f]) == bool(m.any())
                box = c.boxes[n, f]
                if not m.any():
                    assert torch.equal(box, torch.zeros(4))
                    continue
                ys, xs = m.nonzero(as_tuple=True)
                expect = torch.tensor([xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h])
                assert torch.allclose(box, expect, atol=1e-6), (c.index, n, f, box, expect)
                # every mask pixel lies inside its box (pixel centres in normalised units)
                cx, cy = (xs + 0.5) / w, (ys + 0.5) / h
                assert (cx >= box[0]).all() and (cx <= box[2]).all()
                assert (cy >= box[1]).all() and (cy <= box[3]).all()


def test_masks_box_helper_empty_and_full():
    masks = torch.zeros(3, 4, 8, dtype=torch.bool)
    masks[1, 1:3, 2:5] = True
    masks[2] = True
    boxes, visible = masks_to_boxes(masks)
    assert visible.tolist() == [False, True, True]
    assert boxes[0].tolist() == [0, 0, 0, 0]
    assert torch.allclose(boxes[1], torch.tensor([2 / 8, 1 / 4, 5 / 8, 3 / 4]))
    assert torch.allclose(boxes[2], torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_masks_are_disjoint_and_match_pixels_depth_and_edges(clips):
    for c in clips:
        assert int(c.masks.sum(0).max()) <= 1  # occlusion: a pixel belongs to at most one instance
        covered = c.masks.any(0)
        bg = torch.tensor(BACKGROUNDS[c.background]) * 2 - 1
        assert torch.allclose(c.video.permute(1, 2, 3, 0)[~covered], bg.expand(int((~covered).sum()), 3))
        assert (c.depth[~covered] == 0).all()
        for n, spec in enumerate(c.specs):
            m = c.masks[n]
            assert torch.allclose(c.depth[m], torch.full((int(m.sum()),), spec.depth))
            if spec.identity < 0:  # flat-coloured shape: its pixels carry exactly its colour
                col = torch.tensor(COLOURS[spec.colour]) * 2 - 1
                assert torch.allclose(c.video.permute(1, 2, 3, 0)[m], col.expand(int(m.sum()), 3))
        # edges: exactly the pixels next to a pixel of another label
        label = torch.full((9, 64, 64), -1)
        for n in range(len(c.specs)):
            label[c.masks[n]] = n
        edge = torch.zeros(9, 64, 64, dtype=torch.bool)
        dv = label[:, 1:] != label[:, :-1]
        dh = label[:, :, 1:] != label[:, :, :-1]
        edge[:, 1:] |= dv
        edge[:, :-1] |= dv
        edge[:, :, 1:] |= dh
        edge[:, :, :-1] |= dh
        assert torch.equal(c.hed.bool(), edge)
        assert set(c.hed.unique().tolist()) <= {0.0, 1.0}
    # depths are distinct per clip, so occlusion order is well defined
    assert all(len({s.depth for s in c.specs}) == len(c.specs) for c in clips)


def test_occlusion_nearer_instance_wins():
    world = ShapesWorld(9, 64, 64, seed=0)
    hits = 0
    for i in range(48):
        c = world.render_clip(i)
        full = [world._shape_mask(s) for s in c.specs]
        for a in range(len(c.specs)):
            for b in range(len(c.specs)):
                if c.specs[a].depth > c.specs[b].depth:  # a is nearer
                    overlap = full[a] & full[b]
                    for n in range(len(c.specs)):  # ... unless an even nearer instance covers it
                        if c.specs[n].depth > c.specs[a].depth:
                            overlap &= ~full[n]
                    if overlap.any():
                        hits += 1
                        assert c.masks[a][overlap].all() and not c.masks[b][overlap].any()
    assert hits > 0


def test_captions_mention_every_instance(clips):
    for c in clips:
        for spec, prompt in zip(c.specs, c.prompts):
            assert prompt.startswith(f"a {spec.colour} {spec.shape} ")
            assert f"{spec.colour} {spec.shape}" in c.caption
            assert prompt in c.caption
        assert c.background in c.caption
    words = {w for c in clips for p in c.prompts for w in p.split()}
    assert {"moving", "bouncing", "circle"} <= words


def test_regions_are_unions_of_instances(clips):
    for c in clips:
        members = sorted(i for m in c.region_members for i in m)
        assert members == list(range(len(c.specs)))  # a partition of the instances
        assert c.region_masks.shape[0] == len(c.region_members) == len(c.region_captions)
        for r, m in enumerate(c.region_members):
            assert torch.equal(c.region_masks[r], c.masks[m].any(0))
            for i in m:
                assert c.prompts[i] in c.region_captions[r]


def test_faces(clips):
    ids_seen = set()
    for c in clips:
        k = len(c.face_instances)
        assert k >= 1  # min_faces=1
        assert c.face_ids.shape == (k,) and c.face_ids.dtype == torch.long
        assert c.face_crops.shape == (k, 3, 32, 32)
        assert c.face_boxes.shape == (k, 9, 4) and c.face_masks.shape == (k, 9, 64, 64)
        for j, inst in enumerate(c.face_instances):
            spec = c.specs[inst]
            assert spec.shape == "face" and spec.identity == int(c.face_ids[j])
            assert torch.equal(c.face_boxes[j], c.boxes[inst])
            assert torch.equal(c.face_masks[j], c.masks[inst])
            assert torch.equal(c.face_crops[j], face_crop(spec.identity))
            ids_seen.add(spec.identity)
        for spec in c.specs:
            assert (spec.identity >= 0) == (spec.shape == "face")
    assert len(ids_seen) >= 5
    crops = torch.stack([face_crop(i) for i in range(NUM_IDENTITIES)])
    assert crops.min() >= -1 and crops.max() <= 1
    # identities are distinct from each other
    d = (crops[:, None] - crops[None]).abs().flatten(2).mean(-1)
    assert (d + torch.eye(NUM_IDENTITIES) > 0.05).all()


def test_determinism():
    a = ShapesWorld(9, 64, 64, seed=3).render_clip(5)
    b = ShapesWorld(9, 64, 64, seed=3).render_clip(5)
    for name in ("video", "boxes", "visible", "masks", "region_masks", "hed", "depth", "face_crops"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.caption == b.caption and a.region_captions == b.region_captions
    other = ShapesWorld(9, 64, 64, seed=3).render_clip(6)
    assert not torch.equal(a.video, other.video)
    other_seed = ShapesWorld(9, 64, 64, seed=4).render_clip(5)
    assert not torch.equal(a.video, other_seed.video)


_CHECKSUM = r"""
import torch
from vidgen.data.shapes import ShapesWorld
from vidgen.data.caption_embedder import CaptionEmbedder
c = ShapesWorld(5, 32, 32, seed=7).render_clip(11)
e, m = CaptionEmbedder(16, 8).encode([c.caption, "a red circle"])
print(repr((c.caption, float(c.video.double().sum()), float(e.double().sum()), int(m.sum()))))
"""


def test_deterministic_across_processes():
    outs = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        res = subprocess.run([sys.executable, "-c", _CHECKSUM], env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout.strip())
    assert outs[0] == outs[1]


def test_render_speed():
    world = ShapesWorld(9, 64, 64, seed=0)
    world.render_clip(0)
    t0 = time.perf_counter()
    for i in range(1, 21):
        world.render_clip(i)
    per_clip = (time.perf_counter() - t0) / 20
    assert per_clip < 0.1, f"rendering one 9x64x64 clip took {per_clip * 1000:.1f} ms"


# ---------------------------------------------------------------------------------------------
# codec


@pytest.mark.parametrize(
    "channels, scale, frames, latent",
    [
        (*COG, 9, (16, 3, 8, 8)),
        (*COG, 13, (16, 4, 8, 8)),
        (*COG, 1, (16, 1, 8, 8)),
        (*COG, 11, (16, 3, 8, 8)),  # tail frames beyond 1 + 4k are dropped
        (*MODELSCOPE, 8, (4, 8, 8, 8)),
    ],
)
def test_codec_shapes(channels, scale, frames, latent):
    codec = ShapesCodec(channels, scale)
    x = torch.rand(2, 3, frames, 64, 64) * 2 - 1
    z = codec.encode(x)
    assert z.shape == (2, *latent) and z.dtype == torch.float32
    assert codec.latent_shape(frames, 64, 64) == latent
    y = codec.decode(z)
    assert y.shape == (2, 3, codec.pixel_frames(latent[1]), 64, 64)


def test_codec_is_a_projection():
    for channels, scale in (COG, MODELSCOPE):
        codec = ShapesCodec(channels, scale)
        z = torch.randn(2, channels, 3, 4, 4)
        assert torch.allclose(codec.encode(codec.decode(z)), z, atol=1e-4)  # orthonormal: exact inverse
        x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
        once = codec.decode(codec.encode(x))
        assert torch.allclose(codec.decode(codec.encode(once)), once, atol=1e-4)
        assert codec.encode(x.double()).dtype == torch.float64


def test_codec_deterministic_and_seeded():
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    a, b = ShapesCodec(*COG, seed=0), ShapesCodec(*COG, seed=0)
    assert torch.equal(a.encode(x), b.encode(x))
    c = ShapesCodec(*COG, seed=1)
    assert not torch.allclose(a.encode(x), c.encode(x))
    # the seed only rotates the latent channels: the reconstruction is the same projection
    assert torch.allclose(a.decode(a.encode(x)), c.decode(c.encode(x)), atol=1e-4)


def test_codec_rejects_bad_sizes():
    with pytest.raises(ConfigError):
        ShapesCodec(*COG).encode(torch.zeros(1, 3, 9, 60, 64))
    with pytest.raises(ConfigError):
        ShapesCodec(1000, (1, 8, 8))


def _eroded(masks: torch.Tensor, k: int = 5) -> torch.Tensor:
    flat = masks.float().flatten(0, -3)[:, None]
    return (-F.max_pool2d(-flat, k, 1, k // 2))[:, 0].view_as(masks) > 0.5


@pytest.mark.parametrize(
    "channels, scale, frames, col_median, iou_mean",
    [(*COG, 9, 0.1, 0.75), (*MODELSCOPE, 8, 0.25, 0.6)],
)
def test_codec_reconstruction_keeps_colour_and_position(channels, scale, frames, col_median, iou_mean):
    world = ShapesWorld(frames, 64, 64, seed=1)
    codec = ShapesCodec(channels, scale)
    rmse, col_err, ious, shifts, n_closer, n = [], [], [], [], 0, 0
    for i in range(24):
        c = world.render_clip(i)
        rec = codec.decode(codec.encode(c.video[None]))[0]
        rmse.append(float((rec - c.video[:, : rec.shape[1]]).pow(2).mean().sqrt()))
        # masks encoded as 3-channel videos in [-1, 1] (as JDM does) and decoded back
        mvid = (c.masks.float() * 2 - 1)[:, None].expand(-1, 3, -1, -1, -1)
        mrec = codec.decode(codec.encode(mvid))[:, 0] > 0
        bg = torch.tensor(BACKGROUNDS[c.background]) * 2 - 1
        interior = _eroded(c.masks)
        for k, spec in enumerate(c.specs):
            col = torch.tensor(COLOURS[spec.colour]) * 2 - 1
            for f in range(rec.shape[1]):
                if spec.identity < 0 and interior[k, f].sum() >= 20:
                    mean = rec[:, f][:, interior[k, f]].mean(1)
                    col_err.append(float((mean - col).abs().max()))
                    n_closer += int((mean - col).norm() < (mean - bg).norm())
                    n += 1
                m = c.masks[k, f]
                if m.sum() >= 100:
                    d = mrec[k, f]
                    ious.append(float((d & m).sum() / (d | m).sum()))
                    ys, xs = m.nonzero(as_tuple=True)
                    ys2, xs2 = d.nonzero(as_tuple=True)
                    shifts.append(float(torch.hypot(ys.float().mean() - ys2.float().mean(),
                                                    xs.float().mean() - xs2.float().mean())))
    assert n > 50 and len(ious) > 50
    assert max(rmse) < 0.4 and sum(rmse) / len(rmse) < 0.3, rmse
    assert n_closer == n  # the decoded colour of a shape is always nearer its colour than the background
    assert torch.tensor(col_err).median() < col_median
    assert sum(ious) / len(ious) > iou_mean
    # centroid of the decoded mask: on average well under a latent cell (8 px) off; 95% within half a cell
    shifts = torch.tensor(shifts)
    assert shifts.mean() < 1.5 and shifts.quantile(0.95) < 4.0, (shifts.mean(), shifts.quantile(0.95))


def test_codec_latent_scale():
    for (channels, scale), frames in ((COG, 9), (MODELSCOPE, 8)):
        world = ShapesWorld(frames, 64, 64, seed=2)
        codec = ShapesCodec(channels, scale)
        z = codec.encode(torch.stack([world.render_clip(i).video for i in range(32)]))
        assert 0.8 < float(z.std()) < 1.25, float(z.std())
        assert abs(float(z.mean())) < 0.2
        ch = z.transpose(0, 1).flatten(1).pow(2).mean(1).sqrt()
        assert ch.min() > 0.6 and ch.max() < 1.5, ch


# ---------------------------------------------------------------------------------------------
# caption embedder


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def test_caption_embedder_layout_and_padding():
    emb, mask = CaptionEmbedder(32, 8).encode(["A red circle, moving RIGHT", "", "one two three four five six seven eight nine ten"])
    assert emb.shape == (3, 8, 32) and mask.shape == (3, 8) and mask.dtype == torch.bool
    assert mask[0].tolist() == [True] * 5 + [False] * 3
    assert (emb[0, 5:] == 0).all()
    assert torch.allclose(emb[0, :5].pow(2).mean(-1), torch.ones(5), atol=1e-5)  # unit RMS tokens
    assert not mask[1].any() and (emb[1] == 0).all()  # empty prompt: the null text
    assert mask[2].all()  # truncated to max_len
    assert tokenize("A Red-circle!") == ["a", "red", "circle"]


def test_caption_embedder_informative_and_deterministic():
    enc = CaptionEmbedder(64, 16)
    emb, _ = enc.encode(["a red circle", "a blue circle", "a red circle", "a red square", "A RED circle."])
    assert torch.equal(emb[0], emb[2]) and torch.equal(emb[0], emb[4])
    assert _cos(emb[0], emb[2]) > 0.999
    assert _cos(emb[0], emb[1]) < 0.9 and _cos(emb[0], emb[3]) < 0.9
    assert not torch.allclose(emb[0], emb[1])
    # the colour token itself is nearly orthogonal between colours, identical for the same colour
    assert abs(_cos(emb[0, 1], emb[1, 1])) < 0.5
    again, _ = CaptionEmbedder(64, 16).encode(["a red circle"])
    assert torch.equal(again[0], emb[0])
    other_seed, _ = CaptionEmbedder(64, 16, seed=1).encode(["a red circle"])
    assert not torch.allclose(other_seed[0], emb[0])
    # word order matters (position code)
    swapped, _ = enc.encode(["circle red a"])
    assert not torch.allclose(swapped[0], emb[0])


# ---------------------------------------------------------------------------------------------
# datamodule


@pytest.fixture(scope="module")
def datamodule():
    from vidgen.data.shapes_datamodule import ShapesDataModule

    return ShapesDataModule(num_clips=6, frames=9, height=64, width=64, latent_channels=16,
                            vae_scale=(4, 8, 8), text_dim=32, text_len=24, max_instances=4, seed=0)


def test_datamodule_sample_fields_and_shapes(datamodule):
    ds = datamodule.dataset
    assert len(ds) == 6
    assert datamodule.available_fields == set(FIELDS)
    codec, enc = datamodule.codec(), datamodule.text_encoder()
    for i in range(len(ds)):
        s = ds[i]
        clip = ds.clip(i)
        n, r, k = len(clip.specs), len(clip.region_members), len(clip.face_instances)
        assert sample_fields(s) == set(FIELDS)
        assert s.key == f"shapes-0-{i:06d}"
        assert s.latents.shape == (16, 3, 8, 8) and s.image_latents.shape == (16, 1, 8, 8)
        assert torch.equal(s.latents, codec.encode(clip.video[None])[0])
        assert torch.allclose(s.image_latents[:, 0], s.latents[:, 0])  # first frame is encoded alone
        assert s.text_embeds.shape == (24, 32) and s.text_mask.shape == (24,) and s.text_mask.any()
        emb, mask = enc.encode([clip.caption])
        assert torch.equal(s.text_embeds, emb[0]) and torch.equal(s.text_mask, mask[0])
        assert s.caption == clip.caption and s.frame_size == (9, 64, 64)
        inst = s.instances
        assert inst.boxes.shape == (n, 9, 4) and inst.masks.shape == (n, 9, 64, 64)
        assert inst.prompts == clip.prompts and inst.prompt_embeds.shape == (n, 24, 32)
        assert torch.equal(inst.prompt_embeds, enc.encode(clip.prompts)[0])
        assert inst.prompt_mask.shape == (n, 24)
        reg = s.regions
        assert reg.masks.shape == (r, 9, 64, 64) and reg.hed.shape == (9, 64, 64) and reg.depth.shape == (9, 64, 64)
        assert reg.caption_embeds.shape == (r, 24, 32) and reg.caption_mask.shape == (r, 24)
        assert torch.equal(reg.caption_embeds, enc.encode(clip.region_captions)[0])
        fc = s.faces
        assert fc.boxes.shape == (k, 9, 4) and fc.id_index.shape == (k,) and fc.crops.shape == (k, 3, 32, 32)
        assert fc.id_masks.shape == (k, 9, 64, 64)
        assert s.micro.original_size == (64, 64) and s.micro.crop == (0, 0) and s.micro.stride == 1
    assert ds[2] is ds[2]  # cached


def test_datamodule_null_text(datamodule):
    emb, mask = datamodule.null_text()
    assert emb.shape == (24, 32) and mask.shape == (24,)
    assert (emb == 0).all() and not mask.any()


def test_datamodule_collate_and_loader(datamodule):
    ds = datamodule.dataset
    batch = collate([ds[0], ds[1]])
    assert isinstance(batch, VideoBatch) and len(batch) == 2
    assert batch.latents.shape == (2, 16, 3, 8, 8) and batch.image_latents.shape == (2, 16, 1, 8, 8)
    n = [len(ds.clip(i).specs) for i in (0, 1)]
    assert batch.instances.valid.sum(1).tolist() == n
    assert batch.instances.masks.shape == (2, max(n), 9, 64, 64)
    assert batch.regions.hed.shape == (2, 9, 64, 64)
    assert batch.faces.crops.shape[0] == 2 and batch.micro["original_size"].tolist() == [[64, 64], [64, 64]]
    loader = datamodule.train_dataloader()
    it = iter(loader)
    b = next(it)
    assert isinstance(b, VideoBatch) and b.latents.shape == (1, 16, 3, 8, 8)


def test_datamodule_modelscope_without_image_condition():
    from vidgen.data.shapes_datamodule import ShapesDataModule

    dm = ShapesDataModule(num_clips=2, frames=8, height=32, width=32, latent_channels=4, vae_scale=(1, 8, 8),
                          text_dim=16, text_len=8, image_condition=False, cache=False)
    s = dm.dataset[0]
    assert s.latents.shape == (4, 8, 4, 4) and s.image_latents is None
    assert "image_latents" not in dm.available_fields and "faces" in dm.available_fields
    assert dm.dataset[0] is not s  # no cache


def test_datamodule_speed():
    from vidgen.data.shapes_datamodule import ShapesDataModule

    dm = ShapesDataModule(num_clips=21, cache=False)
    ds = dm.dataset
    ds[0]
    t0 = time.perf_counter()
    for i in range(1, 21):
        ds[i]
    per_clip = (time.perf_counter() - t0) / 20
    assert per_clip < 0.15, f"render + encode of one clip took {per_clip * 1000:.1f} ms"


@pytest.mark.parametrize(
    "kwargs",
    [dict(height=60), dict(frames=8), dict(num_clips=0), dict(frames=None)],
)
def test_datamodule_bad_config(kwargs):
    from vidgen.data.shapes_datamodule import ShapesDataModule

    with pytest.raises(ConfigError):
        ShapesDataModule(**kwargs)
