"""ResumableSampler: determinism, rank sharding, exact continuation; datamodule resume position."""

from __future__ import annotations

from itertools import islice
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import Dataset

from vidgen.data.datamodule import VideoDataModule
from vidgen.data.resumable_sampler import ResumableSampler, seeded
from vidgen.data.sample import VideoBatch, VideoSample
from vidgen.errors import DataError


def take(sampler, n: int) -> list[int]:
    return list(islice(iter(sampler), n))


def test_deterministic_and_seed_dependent():
    a = take(ResumableSampler(50, seed=7), 120)
    assert a == take(ResumableSampler(50, seed=7), 120)
    assert a != take(ResumableSampler(50, seed=8), 120)
    # epoch e is randperm(seeded(seed, e)); epochs differ from each other
    assert a[:50] == torch.randperm(50, generator=seeded(7, 0)).tolist()
    assert a[50:100] == torch.randperm(50, generator=seeded(7, 1)).tolist()
    assert a[:50] != a[50:100]
    assert sorted(a[:50]) == list(range(50))


def test_no_shuffle_is_in_order():
    assert take(ResumableSampler(5, shuffle=False), 12) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert take(ResumableSampler(5, rank=1, world_size=2, shuffle=False), 6) == [1, 3, 0, 1, 3, 0]


@pytest.mark.parametrize("n,world", [(12, 3), (10, 4), (7, 2), (3, 4)])
def test_ranks_disjoint_and_cover_epoch(n, world):
    per_rank = -(-n // world)
    for epoch in range(3):
        parts = []
        for rank in range(world):
            s = ResumableSampler(n, seed=1, rank=rank, world_size=world)
            parts.append(take(s, per_rank * (epoch + 1))[per_rank * epoch :])
        assert all(len(p) == per_rank for p in parts)  # same count on every rank
        flat = [i for p in parts for i in p]
        assert set(flat) == set(range(n))  # the epoch is covered
        if n % world == 0:
            assert len(set(flat)) == len(flat)  # disjoint when no padding is needed
        else:
            # only the padding repeats: exactly per_rank * world - n duplicates
            assert len(flat) - len(set(flat)) == per_rank * world - n
        # interleaved positions of the padded permutation
        perm = torch.randperm(n, generator=seeded(1, epoch)).repeat(world + 1)[: per_rank * world]
        for rank in range(world):
            assert parts[rank] == perm[rank::world].tolist()


@pytest.mark.parametrize("k", [0, 1, 9, 10, 11, 25, 47])
@pytest.mark.parametrize("rank,world", [(0, 1), (1, 3)])
def test_start_continues_exactly(k, rank, world):
    n = 31  # per_rank = 31 (world 1) or 11 (world 3): k crosses several epoch boundaries
    full = take(ResumableSampler(n, seed=5, rank=rank, world_size=world), k + 40)
    resumed = take(ResumableSampler(n, seed=5, rank=rank, world_size=world, start=k), 40)
    assert resumed == full[k:]


def test_state_dict_round_trip():
    s = ResumableSampler(20, seed=2, rank=0, world_size=2)
    it = iter(s)
    first = [next(it) for _ in range(13)]
    state = s.state_dict()
    assert state["consumed"] == 13
    t = ResumableSampler(20, seed=2, rank=0, world_size=2)
    t.load_state_dict(state)
    assert take(t, 10) == (first + [next(it) for _ in range(10)])[13:]
    with pytest.raises(DataError, match="seed"):
        ResumableSampler(20, seed=3, world_size=2).load_state_dict(state)


def test_infinite_has_no_len_and_rejects_empty():
    with pytest.raises(TypeError):
        len(ResumableSampler(4))
    with pytest.raises(DataError):
        ResumableSampler(0)


# ---------------------------------------------------------------------------------------------
# The base datamodule: rank / world size / start from the trainer


class _Toy(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> VideoSample:
        return VideoSample(
            key=str(i),
            latents=torch.full((2, 1, 2, 2), float(i)),
            text_embeds=torch.zeros(3, 4),
            text_mask=torch.ones(3, dtype=torch.bool),
            caption=f"c{i}",
        )


class _ToyDM(VideoDataModule):
    def __init__(self, n: int = 9, **kw):
        super().__init__(**kw)
        self.n = n

    def build_dataset(self):
        return _Toy(self.n)

    @property
    def available_fields(self):
        return {"latents", "text_embeds"}


def _keys(loader, batches: int) -> list[str]:
    it = iter(loader)
    return [k for _ in range(batches) for k in next(it).keys]


def test_datamodule_resumes_from_global_step():
    dm = _ToyDM(micro_batch_size=2, seed=4)
    loader = dm.train_dataloader()
    batch = next(iter(loader))
    assert isinstance(batch, VideoBatch) and batch.latents.shape == (2, 2, 1, 2, 2)
    full = _keys(loader, 20)

    # a resumed rank-0 run at global_step 3 with 2-step accumulation: 3 * 2 * 2 = 12 samples in
    dm2 = _ToyDM(micro_batch_size=2, seed=4)
    dm2.trainer = SimpleNamespace(global_step=3, accumulate_grad_batches=2, global_rank=0, world_size=1)
    resumed = _keys(dm2.train_dataloader(), 8)
    assert dm2.train_sampler.start == 12
    assert resumed == full[12:28]

    dm3 = _ToyDM(micro_batch_size=2, seed=4)
    dm3.trainer = SimpleNamespace(global_step=0, accumulate_grad_batches=1, global_rank=1, world_size=2)
    rank1 = _keys(dm3.train_dataloader(), 3)
    expected = take(ResumableSampler(9, seed=4, rank=1, world_size=2), 6)
    assert rank1 == [str(i) for i in expected]


def test_datamodule_workers_keep_order():
    serial = _keys(_ToyDM(micro_batch_size=2, seed=1).train_dataloader(), 6)
    parallel = _keys(_ToyDM(micro_batch_size=2, seed=1, num_workers=2).train_dataloader(), 6)
    assert serial == parallel


def test_lightning_resume_continues_data_order(tmp_path):
    """A real Trainer: fit 3 steps, checkpoint, resume to 8 == one uninterrupted 8-step fit."""
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[str] = []

        def training_step(self, batch, batch_idx):
            self.seen += batch.keys
            return (self.w * batch.latents.mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def trainer(steps):
        return L.Trainer(
            max_steps=steps,
            accumulate_grad_batches=2,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=tmp_path,
            accelerator="cpu",
        )

    full = Module()
    trainer(8).fit(full, _ToyDM(micro_batch_size=2, seed=3))
    first = Module()
    t = trainer(3)
    t.fit(first, _ToyDM(micro_batch_size=2, seed=3))
    t.save_checkpoint(tmp_path / "step3.ckpt")
    second = Module()
    trainer(8).fit(second, _ToyDM(micro_batch_size=2, seed=3), ckpt_path=tmp_path / "step3.ckpt")
    assert len(full.seen) == 8 * 2 * 2
    assert first.seen + second.seen == full.seen
