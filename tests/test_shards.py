"""Shard format: writer -> reader round trip, validation errors, corruption, interruption, RLE."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vidgen.data import rle
from vidgen.data.datamodule import ShardDataModule
from vidgen.data.sample import Faces, Instances, MicroConditions, Regions, VideoBatch, VideoSample
from vidgen.data.shards import (
    INDEX_FILE,
    ShardDataset,
    ShardWriter,
    load_null_text,
    read_index,
)
from vidgen.errors import ConfigError, DataError

F, H, W = 3, 12, 16
C, FL, HL, WL = 4, 2, 3, 4
TL, TD = 5, 6


def make_sample(i: int, n_inst: int = 2, full: bool = True) -> VideoSample:
    g = torch.Generator().manual_seed(i)
    r = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    sample = VideoSample(
        key=f"clip_{i:04d}",
        latents=torch.randn(C, FL, HL, WL, generator=g),
        text_embeds=torch.randn(TL, TD, generator=g),
        text_mask=torch.arange(TL) < 3 + i % 3,
        caption=f"caption number {i}",
        frame_size=(F, H, W),
    )
    if not full:
        return sample
    xy = r(n_inst, F, 2) * 0.5
    boxes = torch.cat([xy, xy + r(n_inst, F, 2) * 0.5], dim=-1)
    visible = r(n_inst, F) > 0.3
    visible[:, 0] = True
    boxes = boxes * visible[..., None]
    masks = r(n_inst, F, H, W) > 0.6
    masks[:, -1] = False  # an empty frame (stored as null)
    sample.image_latents = torch.randn(C, 1, HL, WL, generator=g)
    sample.instances = Instances(
        boxes=boxes,
        visible=visible,
        prompts=[f"object {k} of {i}" for k in range(n_inst)],
        masks=masks,
        prompt_embeds=torch.randn(n_inst, TL, TD, generator=g),
        prompt_mask=r(n_inst, TL) > 0.5,
    )
    sample.regions = Regions(
        masks=r(2, F, H, W) > 0.5,
        captions=["sky", "ground"],
        hed=r(F, H, W),
        depth=r(F, H, W),
        caption_embeds=torch.randn(2, TL, TD, generator=g),
        caption_mask=torch.ones(2, TL, dtype=torch.bool),
    )
    fb = r(1, F, 2) * 0.5
    sample.faces = Faces(
        boxes=torch.cat([fb, fb + 0.25], dim=-1),
        id_index=torch.tensor([i % 3]),
        crops=r(1, 3, 8, 8) * 2 - 1,
        id_masks=r(1, F, H, W) > 0.7,
    )
    sample.micro = MicroConditions(original_size=(720, 1280), crop=(4, 8), stride=2, fps=24.0)
    return sample


def null_text():
    return torch.zeros(TL, TD), torch.arange(TL) < 1


def write(root: Path, samples, per_shard: int = 2, **kw) -> Path:
    with ShardWriter(root, samples_per_shard=per_shard, null_text=null_text(), **kw) as w:
        for s in samples:
            w.add(s)
    return root


def assert_samples_equal(a: VideoSample, b: VideoSample) -> None:
    assert a.key == b.key and a.caption == b.caption and tuple(a.frame_size) == tuple(b.frame_size)
    for name in ("latents", "text_embeds", "text_mask", "image_latents"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and torch.equal(x, y), name
    for group in ("instances", "regions", "faces"):
        ga, gb = getattr(a, group), getattr(b, group)
        assert (ga is None) == (gb is None), group
        if ga is None:
            continue
        for k, va in vars(ga).items():
            vb = getattr(gb, k)
            if isinstance(va, torch.Tensor):
                assert isinstance(vb, torch.Tensor), f"{group}.{k}"
                assert torch.equal(va, vb), f"{group}.{k}"
            else:
                assert va == vb, f"{group}.{k}"
    assert a.micro == b.micro


# ---------------------------------------------------------------------------------------------
# RLE


def test_rle_known_encoding():
    mask = torch.tensor([[0, 1, 0], [0, 1, 1], [0, 0, 0]], dtype=torch.bool)
    # column-major: 0,0,0 | 1,1,0 | 0,1,0 -> runs [3, 2, 2, 1, 1]
    assert rle.mask_counts(mask) == [3, 2, 2, 1, 1]
    # counts 3,2,2 as is; then deltas 1-2=-1, 1-2=-1 -> 'O' (31 + 48)
    assert rle.encode(mask) == {"size": [3, 3], "counts": "322OO"}
    assert torch.equal(rle.decode({"size": [3, 3], "counts": "322OO"}), mask)
    assert torch.equal(rle.decode({"size": [3, 3], "counts": [3, 2, 2, 1, 1]}), mask)
    # a mask starting with a set pixel begins with an empty zero run
    assert rle.mask_counts(torch.ones(2, 2, dtype=torch.bool)) == [0, 4]
    # large counts use several 5-bit groups
    assert rle.counts_from_string(rle.counts_to_string([1000, 70000, 5, 123456])) == [1000, 70000, 5, 123456]


def test_rle_round_trip_random():
    rng = np.random.default_rng(0)
    for trial in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, size=2))
        mask = rng.random((h, w)) < rng.random()
        enc = rle.encode(mask)
        assert enc["size"] == [h, w]
        assert sum(rle.counts_from_string(enc["counts"])) == h * w
        assert np.array_equal(rle.decode(enc).numpy(), mask), trial


def test_rle_rejects_bad_counts():
    with pytest.raises(rle.RLEError):
        rle.decode({"size": [3, 3], "counts": [3, 2]})
    with pytest.raises(rle.RLEError):
        rle.decode({"size": [3], "counts": "3"})


# ---------------------------------------------------------------------------------------------
# Round trip


def test_round_trip(tmp_path):
    samples = [make_sample(i, n_inst=1 + i % 3) for i in range(5)]
    samples.append(make_sample(5, n_inst=0))
    root = write(tmp_path / "ds", samples, per_shard=2)
    index = read_index(root)
    assert index["num_samples"] == 6 and len(index["shards"]) == 3
    assert index["latent_shape"] == [C, FL, HL, WL] and index["latent_channels"] == C
    assert (index["text_len"], index["text_dim"]) == (TL, TD)
    assert index["max_instances"] == 3 and index["num_identities"] == 3
    assert {"instances", "instances.masks", "regions.hed", "faces", "micro", "image_latents"} <= set(
        index["fields"]
    )
    assert (root / "shards" / "00000.safetensors").is_file() and (root / "shards" / "00002.json").is_file()
    ds = ShardDataset(root, max_instances=4)
    assert len(ds) == 6 and ds.keys == [s.key for s in samples]
    for i, s in enumerate(samples):
        assert_samples_equal(ds[i], s)
    emb, mask = load_null_text(root)
    assert torch.equal(emb, null_text()[0]) and torch.equal(mask, null_text()[1])
    # the annotation json holds per-frame RLE equal to the masks
    ann = json.loads((root / "shards" / "00000.json").read_text())
    inst = ann[0]["instances"][0]
    assert inst["mask_rle"][-1] is None  # empty frame
    assert torch.equal(rle.decode(inst["mask_rle"][0]), samples[0].instances.masks[0, 0])
    assert ShardWriter.completed_keys(root) == {s.key for s in samples}


def test_fields_subset_skips_groups(tmp_path):
    root = write(tmp_path / "ds", [make_sample(0)], per_shard=1)
    ds = ShardDataset(root, fields=["instances"])
    s = ds[0]
    assert s.instances is not None and s.instances.masks is None and s.instances.prompt_embeds is None
    assert s.regions is None and s.faces is None and s.micro is None and s.image_latents is None
    with pytest.raises(ConfigError, match="regions"):
        ShardDataset(write(tmp_path / "plain", [make_sample(1, full=False)]), fields=["regions"])


def test_minimal_samples_and_fields_intersection(tmp_path):
    root = write(tmp_path / "ds", [make_sample(0), make_sample(1, full=False)], per_shard=1)
    index = read_index(root)
    assert set(index["fields"]) == {"latents", "text_embeds"}
    ds = ShardDataset(root)
    assert ds[1].instances is None and ds[1].micro is None
    assert_samples_equal(ds[1], make_sample(1, full=False))


# ---------------------------------------------------------------------------------------------
# Validation errors: every message names the file, the key and the field


def corrupt(root: Path, edit) -> Path:
    path = root / "shards" / "00000.json"
    anns = json.loads(path.read_text())
    edit(anns[0])
    path.write_text(json.dumps(anns))
    return path


BAD = {
    "box_outside": (
        lambda a: a["instances"][1]["boxes"].__setitem__(2, [0.1, 0.1, 1.5, 0.9]),
        "instances[1].boxes[frame 2]",
        "outside [0, 1]",
    ),
    "x2_lt_x1": (
        lambda a: a["instances"][0]["boxes"].__setitem__(1, [0.6, 0.1, 0.2, 0.9]),
        "instances[0].boxes[frame 1]",
        "x2 < x1",
    ),
    "y2_lt_y1": (
        lambda a: a["faces"][0]["boxes"].__setitem__(0, [0.1, 0.8, 0.2, 0.3]),
        "faces[0].boxes[frame 0]",
        "y2 < y1",
    ),
    "nan": (
        lambda a: a["instances"][0]["boxes"].__setitem__(0, [0.1, float("nan"), 0.2, 0.3]),
        "instances[0].boxes[frame 0]",
        "NaN",
    ),
    "inf": (
        lambda a: a["instances"][2]["boxes"].__setitem__(0, [0.1, 0.1, float("inf"), 0.3]),
        "instances[2].boxes[frame 0]",
        "inf",
    ),
    "mask_shape": (
        lambda a: a["instances"][1]["mask_rle"].__setitem__(
            0, rle.encode(torch.ones(H // 2, W // 2, dtype=torch.bool))
        ),
        "instances[1].mask_rle[frame 0]",
        "frame_size",
    ),
    "region_mask_shape": (
        lambda a: a["regions"][1]["mask_rle"].__setitem__(
            1, rle.encode(torch.ones(H, W + 1, dtype=torch.bool))
        ),
        "regions[1].mask_rle[frame 1]",
        "frame_size",
    ),
    "too_many_instances": (
        lambda a: a["instances"].extend(a["instances"]),
        "instances",
        "data.max_instances",
    ),
    "unknown_face": (
        lambda a: a["faces"][0].__setitem__("id_index", 7),
        "faces[0].id_index",
        "unknown face ID",
    ),
    "boxes_frame_count": (
        lambda a: a["instances"][0]["boxes"].pop(),
        "instances[0].boxes",
        "frames",
    ),
    "corrupt_rle": (
        lambda a: a["instances"][0]["mask_rle"].__setitem__(0, {"size": [H, W], "counts": [1, 2]}),
        "instances[0].mask_rle[frame 0]",
        "corrupt RLE",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_annotation_raises_named_error(tmp_path, case):
    edit, field, problem = BAD[case]
    root = write(tmp_path / "ds", [make_sample(0, n_inst=3), make_sample(1)], per_shard=2)
    path = corrupt(root, edit)
    ds = ShardDataset(root, max_instances=4)
    _ = ds[1]  # the good sample still loads
    with pytest.raises(DataError) as info:
        ds[0]
    msg = str(info.value)
    assert str(path) in msg and "00000.json" in msg
    assert "clip_0000" in msg
    assert field in msg
    assert problem in msg
    assert "Fix:" in msg


def test_writer_rejects_bad_sample(tmp_path):
    s = make_sample(0)
    s.instances.boxes[0, 0] = torch.tensor([0.5, 0.5, 0.2, 0.9])
    w = ShardWriter(tmp_path / "ds", samples_per_shard=2)
    with pytest.raises(DataError, match=r"instances\[0\]\.boxes\[frame 0\]"):
        w.add(s)
    w.add(make_sample(1))
    with pytest.raises(DataError, match="duplicate"):
        w.add(make_sample(1))
    with pytest.raises(DataError, match="latent_shape"):
        bad = make_sample(2)
        bad.latents = torch.zeros(C, FL, HL, WL + 1)
        w.add(bad)
    w.add(make_sample(3, n_inst=1))
    w.close()
    with pytest.raises(DataError, match="data.max_instances"):
        ShardDataset(tmp_path / "ds", max_instances=1)[0]


def test_refuses_existing_root_without_append(tmp_path):
    root = write(tmp_path / "ds", [make_sample(0)])
    with pytest.raises(DataError, match="append"):
        ShardWriter(root)


# ---------------------------------------------------------------------------------------------
# Missing / corrupt files


def test_missing_root_and_index(tmp_path):
    with pytest.raises(DataError) as info:
        ShardDataset(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value) and "vidgen precompute" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as info:
        ShardDataset(tmp_path / "empty")
    assert INDEX_FILE in str(info.value) and "vidgen precompute" in str(info.value)
    with pytest.raises(DataError) as info:
        ShardDataModule(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value) and "data=shapes" in str(info.value)
    with pytest.raises(DataError, match="null_text"):
        load_null_text(tmp_path / "empty")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_safetensors(tmp_path, damage):
    root = write(tmp_path / "ds", [make_sample(0), make_sample(1)], per_shard=2)
    path = root / "shards" / "00000.safetensors"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x13\x00\x00\x00\x00\x00\x00\x00not json at all" + bytes(100))
    else:
        path.write_bytes(b"")
    ds = ShardDataset(root)
    with pytest.raises(DataError) as info:
        ds[0]
    assert str(path) in str(info.value) and "corrupt" in str(info.value)


def test_missing_tensor_names_field(tmp_path):
    from safetensors.torch import load_file, save_file

    root = write(tmp_path / "ds", [make_sample(0)], per_shard=1)
    path = root / "shards" / "00000.safetensors"
    tensors = load_file(str(path))
    del tensors["clip_0000/face_crops"]
    save_file(tensors, str(path))
    with pytest.raises(DataError) as info:
        ShardDataset(root)[0]
    assert "00000.safetensors" in str(info.value) and "face_crops" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Interrupted and resumed writer


def test_interrupted_writer_leaves_valid_dataset_and_resumes(tmp_path):
    root = tmp_path / "ds"
    samples = [make_sample(i) for i in range(7)]
    w = ShardWriter(root, samples_per_shard=3, null_text=null_text())
    for s in samples[:5]:
        w.add(s)
    # "crash": never closed; samples 3 and 4 are still buffered
    del w
    ds = ShardDataset(root)
    assert len(ds) == 3
    assert_samples_equal(ds[2], samples[2])
    assert not list((root / "shards").glob(".*tmp*"))
    # a crash in the middle of writing a shard leaves only a temporary file, removed on resume
    (root / "shards" / ".00001.safetensors.tmp-123").write_bytes(b"partial")

    done = ShardWriter.completed_keys(root)
    assert done == {s.key for s in samples[:3]}
    with ShardWriter(root, samples_per_shard=3, append=True) as w:
        for s in samples:
            if s.key not in done:
                w.add(s)
    ds = ShardDataset(root)
    assert len(ds) == 7 and ds.keys == [s.key for s in samples]
    for i, s in enumerate(samples):
        assert_samples_equal(ds[i], s)
    assert [sh["name"] for sh in read_index(root)["shards"]] == ["00000", "00001", "00002"]
    assert not list((root / "shards").glob(".*tmp*"))


def test_empty_writer_is_valid(tmp_path):
    w = ShardWriter(tmp_path / "ds")
    assert len(ShardDataset(tmp_path / "ds")) == 0
    w.close()


# ---------------------------------------------------------------------------------------------
# Datamodule


def test_shard_datamodule_without_trainer(tmp_path):
    root = write(tmp_path / "ds", [make_sample(i, n_inst=1 + i % 2) for i in range(6)], per_shard=4)
    dm = ShardDataModule(root, micro_batch_size=2, seed=3, max_instances=4, val_samples=1)
    assert {"instances", "instances.masks", "faces", "regions.depth", "latents"} <= dm.available_fields
    emb, mask = dm.null_text()
    assert emb.shape == (TL, TD) and mask.shape == (TL,)
    dm.setup("fit")
    loader = dm.train_dataloader()
    with pytest.raises(TypeError):
        len(loader)
    it = iter(loader)
    keys = []
    for _ in range(5):  # 10 samples: crosses the 5-sample epoch boundary
        batch = next(it)
        assert isinstance(batch, VideoBatch)
        assert batch.latents.shape == (2, C, FL, HL, WL)
        assert batch.text_embeds.shape == (2, TL, TD) and batch.text_mask.shape == (2, TL)
        n_max = int(batch.instances.valid.sum(1).max())  # padded to the largest count in the batch
        assert batch.instances.boxes.shape == (2, n_max, F, 4)
        assert batch.instances.masks.shape == (2, n_max, F, H, W)
        assert batch.faces.crops.shape == (2, 1, 3, 8, 8)
        assert batch.regions.hed.shape == (2, F, H, W)
        assert batch.micro["original_size"].shape == (2, 2)
        keys += batch.keys
    assert "clip_0005" not in keys  # held out for validation
    assert sorted(keys[:5]) == [f"clip_{i:04d}" for i in range(5)]
    assert sorted(keys[5:]) == [f"clip_{i:04d}" for i in range(5)]
    val = list(dm.val_dataloader())
    assert [b.keys for b in val] == [["clip_0005"]]
    with pytest.raises(DataError, match="data.text_encoder"):
        dm.text_encoder()
    with pytest.raises(DataError, match="data.vae"):
        dm.codec()


def test_shard_datamodule_workers_keep_order(tmp_path):
    root = write(tmp_path / "ds", [make_sample(i) for i in range(5)], per_shard=2)

    def batches(workers: int):
        it = iter(ShardDataModule(root, micro_batch_size=2, seed=1, num_workers=workers).train_dataloader())
        return [next(it) for _ in range(4)]

    serial, parallel = batches(0), batches(2)
    for a, b in zip(serial, parallel):
        assert a.keys == b.keys
        assert torch.equal(a.latents, b.latents)
        assert torch.equal(a.instances.masks, b.instances.masks)
        assert a.instances.prompts == b.instances.prompts


def test_method_extras_round_trip(tmp_path):
    samples = [make_sample(i) for i in range(3)]
    for i, s in enumerate(samples):
        s.extras = {"jdm/mask_latents": torch.full((2, 4, 2, 3, 3), float(i)), "jdm/cmi": torch.tensor(0.5 * i)}
    ds = ShardDataset(write(tmp_path / "ds", samples))
    for i in range(3):
        got = ds[i].extras
        assert set(got) == {"jdm/mask_latents", "jdm/cmi"}
        assert torch.equal(got["jdm/mask_latents"], samples[i].extras["jdm/mask_latents"])
        assert float(got["jdm/cmi"]) == 0.5 * i
