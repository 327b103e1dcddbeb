"""JDM mask-caption combinations, regional signals and `vidgen jdm combos`."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from omegaconf import OmegaConf

from fixtures_models import make_tiny_text_encoder, make_tiny_vae
from vidgen.data.datamodule import ShardDataModule
from vidgen.data.sample import Regions
from vidgen.data.shapes_datamodule import ShapesDataModule
from vidgen.data.shards import ShardDataset, ShardWriter
from vidgen.errors import ConfigError, DataError
from vidgen.methods.jdm.cli import main
from vidgen.methods.jdm.cmi import save_cmi
from vidgen.methods.jdm.cmi_shapes import shapes_cmi
from vidgen.methods.jdm.combinations import (
    JDM_EXTRAS,
    MEMBERS,
    join_captions,
    make_transform,
    sample_combinations,
)
from vidgen.methods.jdm.signals import regional_signal, signal_video

# CogVideoX tiny settings: 9 frames of 64 x 64, 16 latent channels, vae_scale (4, 8, 8), text 16 x 32
FRAMES, H, W, C, TEXT_LEN, TEXT_DIM = 9, 64, 64, 16, 16, 32


def shapes(num_clips: int = 12, height: int = H, width: int = W, seed: int = 0) -> ShapesDataModule:
    return ShapesDataModule(
        num_clips=num_clips, frames=FRAMES, height=height, width=width, latent_channels=C,
        vae_scale=(4, 8, 8), text_dim=TEXT_DIM, text_len=TEXT_LEN, max_instances=4, seed=seed,
    )  # fmt: skip


def config(
    signal: str = "mask", k: int = 4, max_objects: int = 3, seed: int = 0, cmi_file=None, dynamic=True
):
    return OmegaConf.create(
        {
            "seed": seed,
            "method": {
                "signal": signal,
                "num_combinations": k,
                "max_objects_per_combination": max_objects,
                "cmi_file": None if cmi_file is None else str(cmi_file),
                "dynamic_weighting": dynamic,
            },
        }
    )


def multi_region(dm: ShapesDataModule, min_regions: int = 2) -> list[int]:
    return [i for i in range(len(dm.dataset)) if dm.dataset[i].regions.masks.shape[0] >= min_regions]


# ---------------------------------------------------------------------------------------------
# the sampler


def test_sampler_properties():
    for r in range(1, 7):
        for key in ("a", "b", "clip-3"):
            combos = sample_combinations(key, r, 5, 3, seed=0)
            assert len(combos) == 5
            assert combos[0] == tuple(range(r))  # combination 0: every region
            for c in combos[1:]:
                assert 1 <= len(c) <= min(3, r)
                assert list(c) == sorted(set(c)) and all(0 <= i < r for i in c)
            assert combos == sample_combinations(key, r, 5, 3, seed=0)  # deterministic per (seed, key)
    # distinct subsets while there are enough of them
    combos = sample_combinations("x", 5, 8, 2, seed=1)
    assert len(set(combos[1:])) == 7
    # the seed and the key both matter
    draws = {tuple(sample_combinations(f"k{i}", 6, 4, 3, seed=s)) for i in range(5) for s in range(3)}
    assert len(draws) > 10


def test_join_captions_keeps_order():
    assert (
        join_captions(["a red circle.", " a blue square ", "a dog"]) == "a red circle, a blue square, a dog"
    )


# ---------------------------------------------------------------------------------------------
# the transform on the shapes world


def test_transform_shapes_and_contents():
    dm = shapes()
    t = make_transform(config(), dm)
    codec, emb = dm.codec(), dm.text_encoder()
    cmi = shapes_cmi(dm.world, len(dm.dataset))
    idx = multi_region(dm)
    assert idx, "the shapes world should have clips with several regions"
    for i in range(len(dm.dataset)):
        base = dm.dataset[i]
        s = t(base)
        assert s is not base and set(JDM_EXTRAS) <= set(s.extras) and not base.extras  # no in-place change
        ex = s.extras
        R = base.regions.masks.shape[0]
        assert ex["jdm/mask_latents"].shape == (4, C, 3, H // 8, W // 8)
        assert ex["jdm/caption_embeds"].shape == (4, TEXT_LEN, TEXT_DIM)
        assert ex["jdm/caption_mask"].shape == (4, TEXT_LEN) and ex["jdm/caption_mask"].dtype == torch.bool
        assert ex["jdm/masks"].shape == (4, FRAMES, H, W) and ex["jdm/masks"].dtype == torch.bool
        assert ex["jdm/cmi"].shape == () and float(ex["jdm/cmi"]) == pytest.approx(
            cmi[base.key]
        )  # the stand-in
        # combination 0: union of every region + the global caption
        assert torch.equal(ex["jdm/masks"][0], base.regions.masks.any(0))
        assert torch.equal(ex["jdm/caption_embeds"][0], base.text_embeds)
        assert torch.equal(ex["jdm/caption_mask"][0], base.text_mask)
        combos = sample_combinations(base.key, R, 4, 3, seed=0)
        for k, c in enumerate(combos):
            union = base.regions.masks[list(c)].any(0)
            assert torch.equal(ex["jdm/masks"][k], union)
            want = codec.encode(signal_video(union.float())[None])[0]
            assert torch.allclose(ex["jdm/mask_latents"][k], want, atol=1e-5)
            if k:
                e, m = emb.encode([join_captions([base.regions.captions[j] for j in c])])
                assert torch.equal(ex["jdm/caption_embeds"][k], e[0]) and torch.equal(
                    ex["jdm/caption_mask"][k], m[0]
                )
    # a clip with several regions has random subsets that differ from "all"
    i = idx[0]
    masks = t(dm.dataset[i]).extras["jdm/masks"]
    assert (
        any(not torch.equal(masks[k], masks[0]) for k in range(1, 4))
        or dm.dataset[i].regions.masks.shape[0] == 1
    )


def test_transform_is_deterministic_per_seed_and_key():
    dm1, dm2 = shapes(), shapes()
    a = [make_transform(config(seed=3), dm1)(dm1.dataset[i]).extras for i in range(12)]
    b = [make_transform(config(seed=3), dm2)(dm2.dataset[i]).extras for i in range(12)]
    for x, y in zip(a, b):
        for k in JDM_EXTRAS:
            assert torch.equal(x[k], y[k])
    c = [make_transform(config(seed=4), dm1)(dm1.dataset[i]).extras for i in multi_region(dm1, 3)]
    a3 = [a[i] for i in multi_region(dm1, 3)]
    if a3:
        assert any(not torch.equal(x["jdm/masks"], y["jdm/masks"]) for x, y in zip(a3, c))
    # collates into a batch
    from vidgen.data.sample import collate

    batch = collate([make_transform(config(), dm1)(dm1.dataset[i]) for i in range(3)])
    assert batch.extras["jdm/mask_latents"].shape == (3, 4, C, 3, H // 8, W // 8)
    assert batch.extras["jdm/cmi"].shape == (3,)


def test_precomputed_extras_pass_through_and_stored_form():
    dm = shapes(4)
    t = make_transform(config(dynamic=False), dm)
    full = t(dm.dataset[0])
    assert t(full) is full  # complete extras: untouched
    # the stored form (members instead of pixel masks): masks are derived, members dropped
    stored = {k: v for k, v in full.extras.items() if k not in ("jdm/masks", "jdm/cmi")}
    R = full.regions.masks.shape[0]
    combos = sample_combinations(full.key, R, 4, 3, seed=0)
    members = torch.zeros(4, R, dtype=torch.bool)
    for k, c in enumerate(combos):
        members[k, list(c)] = True
    sentinel = torch.full_like(stored["jdm/mask_latents"], 7.0)
    s = t(replace(full, extras={**stored, "jdm/mask_latents": sentinel, MEMBERS: members}))
    assert s.extras["jdm/mask_latents"] is sentinel  # not re-encoded
    assert torch.equal(s.extras["jdm/masks"], full.extras["jdm/masks"])
    assert MEMBERS not in s.extras and set(s.extras) == set(JDM_EXTRAS)


def test_sample_without_regions_is_a_data_error():
    dm = shapes(2)
    t = make_transform(config(), dm)
    s = replace(dm.dataset[0], regions=None)
    with pytest.raises(DataError, match=r"shapes-0-000000.*regional masks \+ captions"):
        t(s)
    empty = Regions(masks=torch.zeros(0, FRAMES, H, W, dtype=torch.bool), captions=[])
    with pytest.raises(DataError, match="regions"):
        t(replace(dm.dataset[0], regions=empty))


def test_bad_config_values():
    dm = shapes(2)
    with pytest.raises(ConfigError, match="method.signal"):
        make_transform(config(signal="canny"), dm)
    with pytest.raises(ConfigError, match="num_combinations"):
        make_transform(config(k=0), dm)


def test_cmi_file_values(tmp_path):
    dm = shapes(3)
    keys = [dm.dataset[i].key for i in range(3)]
    path = save_cmi(tmp_path / "cmi.json", {k: 0.5 + i for i, k in enumerate(keys)})
    t = make_transform(config(cmi_file=path), dm)
    assert [float(t(dm.dataset[i]).extras["jdm/cmi"]) for i in range(3)] == [0.5, 1.5, 2.5]
    save_cmi(tmp_path / "part.safetensors", {keys[0]: 0.25})
    t = make_transform(config(cmi_file=tmp_path / "part.safetensors"), dm)
    assert float(t(dm.dataset[0]).extras["jdm/cmi"]) == 0.25
    with pytest.raises(DataError, match=r"part.safetensors.*shapes-0-000001"):
        t(dm.dataset[1])
    with pytest.raises(DataError, match="missing.json"):
        make_transform(config(cmi_file=tmp_path / "missing.json"), dm)


# ---------------------------------------------------------------------------------------------
# regional HED / depth


def test_regional_hed_and_depth_are_cropped_by_the_union_mask():
    dm = shapes(6)
    for i in range(6):
        reg = dm.dataset[i].regions
        union = reg.masks[:1].any(0)
        for name in ("hed", "depth"):
            sig = regional_signal(reg, union, name)
            scene = getattr(reg, name)
            assert sig[~union].abs().max() == 0  # zero outside the union mask
            assert torch.equal(sig[union], scene[union])  # the whole-scene map inside it
        assert torch.equal(regional_signal(reg, union, "mask"), union.float())
    video = signal_video(torch.tensor([[[[0.0, 0.5, 1.0]]]]))
    assert video.shape == (1, 3, 1, 1, 3) and video[0, :, 0, 0].tolist() == [[-1.0, 0.0, 1.0]] * 3

    t = make_transform(config(signal="depth"), dm)
    s = t(dm.dataset[0])
    union = s.extras["jdm/masks"][0]
    want = dm.codec().encode(signal_video(s.regions.depth * union)[None])[0]
    assert torch.allclose(s.extras["jdm/mask_latents"][0], want, atol=1e-5)
    no_hed = replace(dm.dataset[1], regions=replace(dm.dataset[1].regions, hed=None))
    with pytest.raises(DataError, match=r"regions\.hed"):
        make_transform(config(signal="hed"), dm)(no_hed)


# ---------------------------------------------------------------------------------------------
# `vidgen jdm combos`


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jdm-models")
    root = tmp / "pipeline"
    make_tiny_vae(tmp, "AutoencoderKLCogVideoX", root=root)
    make_tiny_text_encoder(tmp, "T5EncoderModel", dim=TEXT_DIM, root=root)
    return root


def write_shards(root, num_clips: int = 5, per_shard: int = 2):
    dm = shapes(num_clips, height=32, width=32)
    with ShardWriter(root, samples_per_shard=per_shard, null_text=dm.null_text()) as w:
        for i in range(num_clips):
            w.add(dm.dataset[i])
    return dm


def test_combos_command_in_place_copy_and_resume(tmp_path, tiny_models, capsys):
    data = tmp_path / "data"
    write_shards(data)
    flags = ["--vae", str(tiny_models), "--text-encoder", str(tiny_models), "--backbone", "cogvideox-2b",
             "--max-objects", "3", "--no-progress"]  # fmt: skip
    assert main(["combos", "--data", str(data), "--out", str(tmp_path / "copy"), *flags]) == 0
    assert main(["combos", "--data", str(data), *flags]) == 0  # in place
    assert "wrote 5 clips" in capsys.readouterr().out
    assert main(["combos", "--data", str(data), *flags]) == 0  # resume: nothing left
    assert "wrote 0 clips, 5 already done" in capsys.readouterr().out

    dm = ShardDataModule(data, text_encoder_path=tiny_models, vae_path=tiny_models, backbone="cogvideox-2b")
    # Eq. 13 needs the clips' CMI: real shards without `vidgen jdm cmi`'s file stop at start-up
    with pytest.raises(ConfigError, match=r"vidgen jdm cmi --data .*method.dynamic_weighting=false"):
        make_transform(config(), dm)
    (data / "jdm_cmi.json").write_text(json.dumps({ShardDataset(data)[i].key: 0.5 * i for i in range(5)}))
    assert float(make_transform(config(), dm)(ShardDataset(data)[3]).extras["jdm/cmi"]) == 1.5
    t = make_transform(config(dynamic=False), dm)
    online = make_transform(config(dynamic=False), dm)
    for root in (data, tmp_path / "copy"):
        ds = ShardDataset(root)
        assert len(ds) == 5
        for i in range(5):
            raw = ds[i]
            assert raw.extras["jdm/mask_latents"].shape == (4, 4, 3, 4, 4)  # the tiny VAE: 4 channels
            assert raw.extras[MEMBERS].shape == (4, raw.regions.masks.shape[0])
            s = t(raw)
            assert set(s.extras) == set(JDM_EXTRAS)
            assert s.extras["jdm/mask_latents"] is raw.extras["jdm/mask_latents"]
            # the stored combinations equal what the transform computes online from the same models
            o = online(replace(raw, extras={})).extras
            for k in JDM_EXTRAS:
                assert torch.allclose(s.extras[k].float(), o[k].float(), atol=1e-5), k
    # the settings are recorded: other settings are refused instead of silently mixed
    with pytest.raises(ConfigError, match="num_combinations"):
        make_transform(config(k=3, dynamic=False), dm)
    assert main(["combos", "--data", str(data), "--k", "3", *flags]) == 2
    assert "num_combinations" in capsys.readouterr().err


def test_cli_error_paths(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert (
        main(["combos", "--data", str(missing), "--vae", str(tmp_path), "--text-encoder", str(tmp_path)]) == 2
    )
    assert str(missing) in capsys.readouterr().err
    assert main(["combos", "--data", str(tmp_path), "--vae", "v", "--text-encoder", "t", "--bogus"]) == 2
    assert "--bogus" in capsys.readouterr().err
    assert main(["combos", "--data", str(tmp_path), "--vae", str(tmp_path), "--text-encoder", str(tmp_path),
                 "--signal", "canny"]) == 2  # fmt: skip
    assert "--signal" in capsys.readouterr().err
    assert main(["explode"]) == 2
    assert main(["combos", "--data", str(tmp_path), "--vae", str(tmp_path), "--text-encoder", str(tmp_path),
                 "--backbone", "cogvideox-2b"]) == 2  # fmt: skip
    assert str(tmp_path / "index.json") in capsys.readouterr().err
