"""JDM data filters (A.2 / A.6): measurements, each rule with its counts, `vidgen jdm filter`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidgen.data import rle
from vidgen.errors import ConfigError
from vidgen.methods.jdm.cli import main
from vidgen.methods.jdm.filters import (
    ClipAnn,
    FilterSettings,
    ObjectAnn,
    apply_filters,
    area_fraction,
    component_sizes,
    fragment_share,
    object_type,
    touches_border,
    visible_runs,
)

F, H, W = 3, 20, 20  # 400 pixels per frame; an 8 x 8 box is 16 % of the clip


def box(y0=5, x0=5, size=8, frames=range(F)) -> np.ndarray:
    m = np.zeros((F, H, W), dtype=bool)
    for f in frames:
        m[f, y0 : y0 + size, x0 : x0 + size] = True
    return m


def obj(masks, kind="thing") -> ObjectAnn:
    return ObjectAnn(kind, masks)


def test_measurements():
    m = np.zeros((6, 6), dtype=bool)
    m[0, 0] = m[1, 1] = True  # diagonal neighbours: one 8-connected component
    m[4:6, 3:6] = True
    m[0, 5] = True
    assert component_sizes(m) == [6, 2, 1]
    assert component_sizes(np.zeros((3, 3), bool)) == []
    ring = np.ones((5, 5), dtype=bool)
    ring[1:4, 1:4] = False
    ring[2, 2] = True  # an island inside a ring
    assert component_sizes(ring) == [16, 1]
    u = np.zeros((4, 5), dtype=bool)
    u[:, 0] = u[:, 4] = u[3, :] = True  # a U shape joins at the bottom row
    assert component_sizes(u) == [11]
    two = box(size=4)
    two[:, 14:18, 14:18] = True
    assert abs(fragment_share(two) - 0.5) < 1e-9 and fragment_share(box()) == 0.0
    assert visible_runs(box(frames=[0, 2])) == 2 and visible_runs(box()) == 1
    assert touches_border(box(y0=0)) and not touches_border(box()) and touches_border(box(y0=1), margin=1)
    assert object_type({"caption": "A man, walking."}) == "man walking"
    assert object_type({"caption": "x", "label": "Dog"}) == "dog"


def test_each_rule_with_counts():
    good = [obj(box(), "cat"), obj(box(y0=6), "dog")]
    truncated = obj(box(y0=0), "t")
    small = obj(box(size=3), "s")  # 9 / 400 = 2 %
    large = obj(box(y0=1, x0=1, size=17), "l")  # 289 / 400 = 72 %, not touching the border
    frag = box(size=6)
    frag[:, 14:16, 14:16] = True  # 4 / 40 = 10 % outside the main blob -> share 0.1, not above
    frag_more = box(size=6)
    frag_more[:, 12:16, 12:16] = True  # 16 / 52 = 31 % outside the largest component
    gap = obj(box(frames=[0, 2]), "g")  # vanishes in frame 1 and comes back
    clips = [
        ClipAnn("same-type", [obj(box(), "man"), obj(box(), "man"), obj(box(), "man"), obj(box(), "dog")]),
        ClipAnn("too-many", [obj(box(), f"o{i}") for i in range(11)]),
        ClipAnn("mixed", [*good, truncated, small, large, obj(frag, "f"), obj(frag_more, "f2"), gap]),
        ClipAnn("too-few", [obj(box(), "a"), obj(box(x0=0), "b")]),
        ClipAnn("clean", [obj(box(), "a"), obj(box(x0=6), "b"), obj(box(y0=4), "a")]),
    ]
    r = apply_filters(clips, FilterSettings(fragment_threshold=0.1))
    rows = {x["rule"]: (x["clips_removed"], x["objects_removed"]) for x in r.rows}
    assert rows == {
        "same_type": (1, 4),
        "truncated": (0, 2),  # "mixed" and "too-few"
        "too_small": (0, 1),
        "too_large": (0, 1),
        "fragmented": (0, 2),  # the 31 % blob and the temporal gap; 10 % is within the threshold
        "too_many": (1, 11),  # counted on the objects left after the object rules (A.6)
        "too_few": (1, 1),
    }
    assert r.kept == [{"key": "mixed", "regions": [0, 1, 5]}, {"key": "clean", "regions": [0, 1, 2]}]
    assert (r.clips_in, r.objects_in, r.clips_kept, r.objects_kept) == (5, 28, 2, 6)
    removed = sum(x["objects_removed"] for x in r.rows)
    assert removed + r.objects_kept == r.objects_in  # each object counted once
    flagged = {x["rule"]: x["flagged"] for x in r.rows}
    assert flagged["truncated"] == 2 and flagged["too_few"] == 0 and flagged["same_type"] == 1
    # the spatial fragment threshold is ours, not the paper's: off by default (the temporal gap stays)
    assert apply_filters(clips).row("fragmented")["objects_removed"] == 1
    # thresholds move the counts
    r = apply_filters(clips, FilterSettings(fragment_threshold=0.05, allow_gaps=True, max_per_type=3))
    assert r.row("same_type")["clips_removed"] == 0 and r.row("fragmented")["objects_removed"] == 2
    with pytest.raises(ConfigError, match="--min-area"):
        FilterSettings(min_area=0.7, max_area=0.6)
    with pytest.raises(ConfigError, match="--area-mode"):
        FilterSettings(area_mode="pixels")


def test_area_is_per_visible_frame_and_the_count_rule_runs_after_small_objects_go():
    # an 8 x 8 box (16 % of a frame) visible in one of three frames: 5.3 % of the clip volume
    brief = box(frames=[0])
    assert area_fraction(brief) == pytest.approx(0.16) and area_fraction(brief, "volume") == pytest.approx(
        0.16 / 3
    )
    clip = ClipAnn("brief", [obj(brief, "a"), obj(box(), "b")])
    assert apply_filters([clip]).clips_kept == 1
    assert apply_filters([clip], FilterSettings(area_mode="volume")).row("too_small")["objects_removed"] == 1
    # 12 objects, 3 of them small: 9 are left, within 2..10, so the clip stays (A.6 order)
    crowd = ClipAnn(
        "crowd", [obj(box(), f"o{i}") for i in range(9)] + [obj(box(size=3), f"s{i}") for i in range(3)]
    )
    r = apply_filters([crowd])
    assert r.kept == [{"key": "crowd", "regions": list(range(9))}] and r.row("too_many")["flagged"] == 1


def _rles(masks: np.ndarray) -> list:
    return [rle.encode(m) if m.any() else None for m in masks]


def test_filter_command_on_annotations_and_shards(tmp_path, capsys):
    lines = [
        {"video": "a.mp4", "caption": "two animals", "regions": [
            {"caption": "a cat", "mask_rle": _rles(box())}, {"caption": "a dog", "mask_rle": _rles(box(y0=6))}]},
        {"video": "b.mp4", "caption": "cut", "regions": [
            {"caption": "a cat", "mask_rle": _rles(box(y0=0))}, {"caption": "a dog", "mask_rle": _rles(box())}]},
        {"video": "c.mp4", "key": "three-men", "caption": "men", "regions": [
            {"caption": "a man", "mask_rle": _rles(box())} for _ in range(3)]},
    ]  # fmt: skip
    ann = tmp_path / "ann.jsonl"
    ann.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "kept.json"
    assert main(["filter", "--annotations", str(ann), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {x["rule"]: (x["clips_removed"], x["objects_removed"]) for x in report["rules"]}
    assert rows["same_type"] == (1, 3) and rows["truncated"] == (0, 1) and rows["too_few"] == (1, 1)
    assert (report["clips_in"], report["clips_kept"], report["objects_kept"]) == (3, 1, 2)
    kept = json.loads(out.read_text())
    assert kept["kept"] == [{"key": "a", "regions": [0, 1]}] and kept["format"] == "vidgen-jdm-filter"
    # the rich table
    assert main(["filter", "--annotations", str(ann), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "same_type" in text and "kept 1 of 3 clips" in text

    # a shard dataset (the shapes world) runs through the same rules
    from vidgen.data.shapes_datamodule import ShapesDataModule
    from vidgen.data.shards import ShardWriter

    dm = ShapesDataModule(num_clips=4, frames=5, height=32, width=32, latent_channels=4, vae_scale=(1, 8, 8),
                          text_dim=8, text_len=8)  # fmt: skip
    with ShardWriter(tmp_path / "data", samples_per_shard=2, null_text=dm.null_text()) as w:
        for i in range(4):
            w.add(dm.dataset[i])
    assert main(["filter", "--data", str(tmp_path / "data"), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clips_in"] == 4
    assert report["objects_in"] == sum(dm.dataset[i].regions.masks.shape[0] for i in range(4))

    # error paths
    missing = tmp_path / "missing"
    assert main(["filter", "--data", str(missing), "--out", str(out)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert main(["filter", "--annotations", str(missing / "a.jsonl"), "--out", str(out)]) == 2
    assert str(missing / "a.jsonl") in capsys.readouterr().err
    assert main(["filter", "--annotations", str(ann), "--out", str(out), "--min-area", "0.9"]) == 2
    assert "--min-area" in capsys.readouterr().err
    assert main(["filter", "--out", str(out)]) == 2
    assert main(["filter", "--data", "x", "--annotations", "y", "--out", str(out)]) == 2


def test_filtered_dataset_holds_only_the_kept_clips_and_regions(tmp_path, capsys):
    """`vidgen jdm filter --data ROOT --write-data ROOT2`: what training then reads."""
    import torch

    from vidgen.data.shapes_datamodule import ShapesDataModule
    from vidgen.data.shards import ShardDataset, ShardWriter

    dm = ShapesDataModule(num_clips=6, frames=5, height=32, width=32, latent_channels=4, vae_scale=(1, 8, 8),
                          text_dim=8, text_len=8)  # fmt: skip
    with ShardWriter(tmp_path / "data", samples_per_shard=4, null_text=dm.null_text()) as w:
        for i in range(6):
            w.add(dm.dataset[i])
    out, filtered = tmp_path / "kept.json", tmp_path / "filtered"
    # loose area and fragment bounds, so clips keep some regions (shapes cut by the border go)
    args = ["filter", "--data", str(tmp_path / "data"), "--out", str(out), "--min-area", "0.0", "--max-area", "1.0",
            "--border-margin", "0", "--min-objects", "1", "--fragment-threshold", "0.99", "--allow-gaps",
            "--write-data", str(filtered)]  # fmt: skip
    assert main(args) == 0
    kept = json.loads(out.read_text())["kept"]
    assert kept, "the loose settings keep clips"
    ds, source = ShardDataset(filtered), ShardDataset(tmp_path / "data")
    assert ds.keys == [k["key"] for k in kept]
    for item, sample in zip(kept, (ds[i] for i in range(len(ds)))):
        original = source[source.keys.index(item["key"])]
        assert sample.regions.captions == [original.regions.captions[r] for r in item["regions"]]
        assert torch.equal(sample.regions.masks, original.regions.masks[item["regions"]])
        assert torch.equal(sample.latents, original.latents)
    dropped = sum(
        source[source.keys.index(k["key"])].regions.masks.shape[0] - len(k["regions"]) for k in kept
    )
    assert dropped > 0 or len(kept) < len(source), "the filter must have removed something"
    assert main(args) == 0  # resumable: a second run writes nothing new
    assert "wrote 0 filtered clips" in capsys.readouterr().out
    assert main(["filter", "--annotations", str(out), "--out", str(out), "--write-data", str(filtered)]) == 2
