"""JDM's CMI precompute (Eq. 12): the estimator, the nearest-neighbour indexes, `vidgen jdm cmi`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fixtures_models import make_tiny_tokenizer
from vidgen.data.shapes_datamodule import ShapesDataModule
from vidgen.data.shards import ShardWriter
from vidgen.data.video_io import from_model_pixels
from vidgen.errors import ConfigError
from vidgen.methods.jdm.cli import main
from vidgen.methods.jdm.cmi import (
    ClipEncoder,
    ExactIndex,
    IVFIndex,
    average_cmi,
    context_similarity,
    load_cmi,
    open_embeddings,
    pair_log_ratios,
)

ALPHA = 1.0


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def test_context_similarity_is_the_cosine_of_the_concatenation():
    g = torch.Generator().manual_seed(0)
    a, b, c = torch.randn(3, 8, generator=g), torch.randn(5, 8, generator=g), torch.randn(8, generator=g)
    sim = context_similarity(a, b, c)
    ua = torch.cat([unit(a), unit(c).expand(3, -1)], 1)
    ub = torch.cat([unit(b), unit(c).expand(5, -1)], 1)
    assert torch.allclose(sim, unit(ua) @ unit(ub).T, atol=1e-6)
    assert torch.allclose(sim, (unit(a) @ unit(b).T + 1) / 2, atol=1e-6)
    assert sim.min() >= 0 and sim.max() <= 1


def test_eq12_as_printed_on_a_hand_computed_case():
    # two regions and two negatives in 2-D, context e_x0 = (1, 0):
    # sim(a, b | c) = (a . b + 1) / 2, so Eq. 12 is log sim_ij - log mean_k sim_ik
    t1, t2 = torch.tensor([1.0, 0.0]), torch.tensor([0.6, 0.8])
    n1, n2 = torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 0.0])
    regions, negatives, ctx = torch.stack([t1, t2]), torch.stack([n1, n2]), torch.tensor([1.0, 0.0])
    # (1, 2): sim = (0.6 + 1)/2 = 0.8; negatives: (0 + 1)/2 = 0.5, (-1 + 1)/2 = 0 -> mean 0.25
    # (2, 1): sim = 0.8;              negatives: (0.8 + 1)/2 = 0.9, (-0.6 + 1)/2 = 0.2 -> mean 0.55
    want_12, want_21 = math.log(0.8 / 0.25), math.log(0.8 / 0.55)
    r = pair_log_ratios(regions, negatives, ctx)
    assert abs(float(r[0, 1]) - want_12) < 1e-6 and abs(float(r[1, 0]) - want_21) < 1e-6
    assert abs(average_cmi(regions, negatives, ctx) - (want_12 + want_21) / 2) < 1e-6
    # the exp critic is a different estimator (the named knob), not Eq. 12
    assert abs(average_cmi(regions, negatives, ctx, critic="exp") - (want_12 + want_21) / 2) > 0.1


def test_identical_captions_give_large_cmi_and_small_weight():
    g = torch.Generator().manual_seed(1)
    d = 256
    ctx = torch.randn(d, generator=g)
    same = unit(torch.randn(d, generator=g)).expand(3, -1)  # three regions with one caption
    negatives = torch.randn(1024, d, generator=g)  # other clips' captions: unrelated
    cmi = average_cmi(same, negatives, ctx)
    # Eq. 12: sim = 1 for the pair, ~1/2 for unrelated negatives: log 2
    assert abs(cmi - math.log(2)) < 0.02
    assert math.exp(-ALPHA * cmi) < 0.52
    # the exp critic (knob): critic exp(sim / T), much sharper
    cmi_exp = average_cmi(same, negatives, ctx, critic="exp", temperature=0.07)
    s_neg = (unit(same[0]) @ unit(negatives).T + 1) / 2 / 0.07
    want = 1 / 0.07 - (torch.logsumexp(s_neg, 0) - math.log(1024))
    assert abs(cmi_exp - float(want)) < 1e-4 and cmi_exp > 5.0


def test_unrelated_captions_give_weight_near_one():
    g = torch.Generator().manual_seed(2)
    d = 512
    ctx = torch.randn(d, generator=g)
    regions = torch.randn(4, d, generator=g)  # unrelated to each other and to the negatives
    negatives = torch.randn(1024, d, generator=g)
    cmi = average_cmi(regions, negatives, ctx)
    assert 0.0 <= cmi < 0.1
    assert math.exp(-ALPHA * cmi) > 0.9
    raw = average_cmi(regions, negatives, ctx, clamp=False)
    assert raw < 0.1
    # fewer than two regions: no pairs, no dependence
    assert average_cmi(regions[:1], negatives, ctx) == 0.0
    r = pair_log_ratios(regions, negatives, ctx)
    assert r.shape == (4, 4) and torch.isnan(r.diagonal()).all()
    with pytest.raises(ConfigError, match="--critic"):
        average_cmi(regions, negatives, ctx, critic="softmax")


def test_related_captions_rank_between():
    g = torch.Generator().manual_seed(3)
    d = 256
    ctx, base = torch.randn(d, generator=g), torch.randn(d, generator=g)
    negatives = torch.randn(512, d, generator=g)
    related = base + 0.7 * torch.randn(3, d, generator=g)
    unrelated = torch.randn(3, d, generator=g)
    same = base.expand(3, -1)
    values = [average_cmi(x, negatives, ctx) for x in (unrelated, related, same)]
    assert values == sorted(values) and values[0] < values[1] < values[2]


def brute(db: torch.Tensor, q: torch.Tensor, k: int, exclude=None):
    s = unit(q) @ db.T  # rows are stored L2-normalised
    if exclude is not None:
        s[torch.arange(len(q)), exclude] = -math.inf
    return s.topk(k, dim=1)


@pytest.mark.parametrize("memmap", [False, True])
def test_exact_index_equals_brute_force(tmp_path, memmap):
    g = torch.Generator().manual_seed(4)
    db = unit(torch.randn(300, 16, generator=g))
    q = torch.randn(45, 16, generator=g)
    store = db
    if memmap:
        store = open_embeddings(tmp_path / "db.npy", 300, 16)
        store[:] = db.numpy().astype(np.float16)
        db = torch.from_numpy(np.asarray(store)).float()
    index = ExactIndex(store, chunk_size=37)
    scores, ids = index.search(q, 10, query_batch=16)
    ref = brute(db, q, 10)
    assert torch.equal(ids, ref.indices)
    assert torch.allclose(scores, ref.values, atol=1e-5)
    exclude = ref.indices[:, 0]  # each query's nearest row is "itself"
    scores, ids = index.search(q, 10, exclude=exclude)
    ref = brute(db, q, 10, exclude)
    assert torch.equal(ids, ref.indices) and not (ids == exclude[:, None]).any()
    # k larger than the database: everything but the excluded row
    _, ids = ExactIndex(store[:5], chunk_size=2).search(q[:3], 10, exclude=torch.tensor([0, 1, 2]))
    assert ids.shape == (3, 4)


def test_ivf_index_full_probe_equals_brute_force_and_partial_probe_recalls():
    g = torch.Generator().manual_seed(5)
    centres = unit(torch.randn(12, 16, generator=g))
    db = unit(centres[torch.randint(0, 12, (600,), generator=g)] + 0.3 * torch.randn(600, 16, generator=g))
    q = unit(centres[torch.randint(0, 12, (40,), generator=g)] + 0.3 * torch.randn(40, 16, generator=g))
    ref = brute(db, q, 8, exclude=torch.arange(40))
    full = IVFIndex(db, nlist=12, nprobe=12, seed=0)
    scores, ids = full.search(q, 8, exclude=torch.arange(40))
    assert torch.equal(ids, ref.indices) and torch.allclose(scores, ref.values, atol=1e-5)
    part = IVFIndex(db, nlist=12, nprobe=3, seed=0)
    _, ids = part.search(q, 8, exclude=torch.arange(40))
    recall = np.mean([len(set(a.tolist()) & set(b.tolist())) / 8 for a, b in zip(ids, ref.indices)])
    assert recall > 0.8


# ---------------------------------------------------------------------------------------------
# end to end with a tiny random-init CLIP folder


def make_tiny_clip(folder):
    from transformers import CLIPConfig, CLIPModel

    tok = make_tiny_tokenizer("CLIPTextModel", max_length=77)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, pad_token_id=0, bos_token_id=1,
                         eos_token_id=0),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4),
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_cmi_command_end_to_end(tmp_path, capsys):
    from PIL import Image

    clip = make_tiny_clip(tmp_path / "clip")
    enc = ClipEncoder(clip)
    assert enc.encode_text(["a red circle", "a dog"]).shape == (2, 16)

    dm = ShapesDataModule(
        num_clips=10, frames=9, height=32, width=32, latent_channels=16, text_dim=32, text_len=16
    )
    data, frames = tmp_path / "data", tmp_path / "frames"
    frames.mkdir()
    keys = []
    with ShardWriter(data, samples_per_shard=4, null_text=dm.null_text()) as w:
        for i in range(10):
            s = dm.dataset[i]
            if i == 0:  # three regions with one caption: strongly dependent
                masks = torch.zeros(3, 9, 32, 32, dtype=torch.bool)
                masks[:, :, 4:12, 4:12] = True
                s.regions.masks, s.regions.captions = masks, ["the red ball"] * 3
                s.regions.caption_embeds = s.regions.caption_mask = None
            w.add(s)
            keys.append(s.key)
            clip_frames = dm.dataset.clip(i).video
            Image.fromarray(from_model_pixels(clip_frames[:, 4:5])[0].numpy()).save(frames / f"{s.key}.png")

    out = tmp_path / "cmi.json"
    args = ["cmi", "--data", str(data), "--clip", str(clip), "--frames", str(frames), "--out", str(out),
            "--negatives", "4", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    values = load_cmi(out)
    assert sorted(values) == sorted(keys)
    assert all(math.isfinite(v) and v >= 0 for v in values.values())
    assert values[keys[0]] > 0  # identical regional captions: the pair beats its negatives
    single = [k for i, k in enumerate(keys) if len(dm.dataset[i].regions.captions) < 2 and i]
    assert all(values[k] == 0.0 for k in single)
    meta = json.loads(out.read_text())
    assert meta["meta"]["negatives"] == 4 and meta["meta"]["critic"] == "ratio"
    assert main(args) == 2  # an existing --out is not replaced without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert not (tmp_path / "cmi.json.work").exists()
    # the IVF index and the safetensors output give the same values here (full probe)
    out2 = tmp_path / "cmi.safetensors"
    assert main([*args[:-4], str(out2), "--negatives", "4", "--index", "ivf", "--nlist", "2", "--nprobe", "2",
                 "--no-progress"]) == 0  # fmt: skip
    v2 = load_cmi(out2)
    assert all(abs(v2[k] - values[k]) < 1e-4 for k in keys)

    # error paths: missing folders are named, no traceback, exit 2
    missing = tmp_path / "no-clip"
    assert (
        main(["cmi", "--data", str(data), "--clip", str(missing), "--frames", str(frames), "--out", str(out)])
        == 2
    )
    assert str(missing) in capsys.readouterr().err
    assert main(["cmi", "--data", str(tmp_path / "nodata"), "--clip", str(clip), "--out", str(out)]) == 2
    assert str(tmp_path / "nodata") in capsys.readouterr().err
    assert main(["cmi", "--data", str(data), "--clip", str(clip), "--frames", str(tmp_path / "noframes"),
                 "--out", str(out)]) == 2  # fmt: skip
    assert str(tmp_path / "noframes") in capsys.readouterr().err
    assert main(["cmi", "--data", str(data), "--clip", str(clip), "--out", str(out)]) == 2
    assert "--frames" in capsys.readouterr().err
    assert main(["cmi", "--data", str(data), "--clip", str(clip), "--frames", str(frames), "--out", str(out),
                 "--negatives", "many"]) == 2  # fmt: skip
    assert "--negatives" in capsys.readouterr().err


def test_shapes_stand_in_cmi_separates_independent_from_correlated_captions():
    from vidgen.data.shapes import ShapesWorld
    from vidgen.methods.jdm.cmi_shapes import clips_cmi, shapes_cmi
    from vidgen.methods.jdm.loss_weighting import dynamic_weight

    world = ShapesWorld(9, 32, 32, max_instances=4, seed=0)
    clips = [c for c in map(world.render_clip, range(64)) if len(c.prompts) >= 2]
    frames = torch.stack([c.video[:, 4] for c in clips])
    # independent: every object of the world is drawn on its own; correlated: each clip's two
    # regional captions name the same kind of object ("rain" always with "umbrella")
    independent = [[c.prompts[0], c.prompts[-1]] for c in clips]
    correlated = [[c.prompts[0], c.prompts[0].replace("a ", "one ", 1)] for c in clips]
    w_ind = dynamic_weight(torch.tensor(clips_cmi(independent, frames, negatives=16)))
    w_cor = dynamic_weight(torch.tensor(clips_cmi(correlated, frames, negatives=16)))
    assert w_ind.mean() > 0.85 and w_cor.mean() < w_ind.mean() - 0.2, (w_ind.mean(), w_cor.mean())
    # deterministic, keyed like the shapes dataset's samples
    dm = ShapesDataModule(
        num_clips=6, frames=9, height=32, width=32, latent_channels=16, text_dim=32, text_len=16
    )
    values = shapes_cmi(dm.world, 6)
    assert list(values) == [dm.dataset[i].key for i in range(6)] and values == shapes_cmi(dm.world, 6)
