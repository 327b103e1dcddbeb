"""An infinite, deterministic, resumable sampler for step-based training.

Epoch ``e`` is ``torch.randperm(num_samples, generator=seeded(seed, e))`` (or ``arange`` when
``shuffle=False``), padded by wrapping around to a multiple of ``world_size`` so that every rank
gets the same count per epoch, ``per_rank = ceil(num_samples / world_size)``. Rank ``r`` takes the
interleaved positions ``r, r + world_size, ...`` of the padded permutation. Epochs follow each other
forever.

``start`` is the number of samples this rank has already consumed; iterating a sampler built with
``start=k`` yields exactly what an uninterrupted sampler yields after its first ``k`` items, also
across epoch boundaries. The datamodule derives it from ``trainer.global_step`` when Lightning
rebuilds the train dataloader after restoring a checkpoint, so a resumed run continues the data
order exactly, mid-epoch.

It subclasses ``DistributedSampler`` only so that Lightning does not wrap it in its own
distributed sampler (it already shards by rank); it has no ``__len__`` (``len()`` raises
``TypeError``) because it never ends: train with ``max_steps``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DistributedSampler

from vidgen.errors import DataError

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant to spread (seed, epoch) over the seed space


def seeded(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator seeded deterministically from ``(seed, epoch)``."""
    g = torch.Generator()
    g.manual_seed((int(seed) * _MIX + int(epoch)) % (2**63 - 1))
    return g


class ResumableSampler(DistributedSampler):
    def __init__(
        self,
        num_samples: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
        shuffle: bool = True,
    ) -> None:
        # DistributedSampler.__init__ is deliberately not called (it needs a dataset / process group).
        if num_samples <= 0:
            raise DataError(
                f"the dataset is empty (num_samples={num_samples}); nothing to train on. "
                "Check the data root or re-run `vidgen precompute`."
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid rank {rank} for world_size {world_size}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.size = int(num_samples)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.start = int(start)
        self.shuffle = bool(shuffle)
        self.consumed = self.start  # advanced as the iterator yields
        self.per_rank = -(-self.size // self.world_size)
        # DistributedSampler-compatible attributes (read by some tools).
        self.num_replicas = self.world_size
        self.num_samples = self.per_rank
        self.total_size = self.per_rank * self.world_size
        self.drop_last = False
        self.epoch = self.start // self.per_rank

    def __len__(self) -> int:
        raise TypeError("ResumableSampler is infinite and has no length; train with max_steps")

    def set_epoch(self, epoch: int) -> None:
        """Ignored: the epoch follows from the number of samples consumed (Lightning calls this)."""

    def epoch_indices(self, epoch: int) -> list[int]:
        """The indices this rank visits in ``epoch`` (``per_rank`` of them)."""
        if self.shuffle:
            perm = torch.randperm(self.size, generator=seeded(self.seed, epoch))
        else:
            perm = torch.arange(self.size)
        total = self.total_size
        if total > self.size:
            reps = -(-total // self.size)
            perm = perm.repeat(reps)[:total]
        return perm[self.rank : total : self.world_size].tolist()

    def __iter__(self) -> Iterator[int]:
        position = self.start
        epoch, offset = divmod(position, self.per_rank)
        while True:
            self.epoch = epoch
            indices = self.epoch_indices(epoch)
            for i in range(offset, self.per_rank):
                self.consumed = position + 1
                position += 1
                yield indices[i]
            offset = 0
            epoch += 1

    def state_dict(self) -> dict[str, Any]:
        """Where this rank stands. Under a DataLoader the sampler runs ahead of training by the
        prefetched batches; the datamodule therefore resumes from ``trainer.global_step`` instead."""
        return {
            "num_samples": self.size,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "shuffle": self.shuffle,
            "consumed": self.consumed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state["consumed"]``; the order must be the same one (same dataset and seed)."""
        for key in ("num_samples", "seed", "world_size", "shuffle"):
            mine = getattr(self, "size" if key == "num_samples" else key)
            if key in state and state[key] != mine:
                raise DataError(
                    f"sampler state was saved with {key}={state[key]!r} but this run has {key}={mine!r}; "
                    "the data order cannot be resumed. Use the same dataset, seed and world size, "
                    "or start a fresh run."
                )
        self.start = int(state["consumed"])
        self.consumed = self.start
        self.epoch = self.start // self.per_rank
