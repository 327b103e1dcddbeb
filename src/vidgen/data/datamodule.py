"""Datamodules: the base every data source uses, and the one that reads precomputed shards.

Training is step-based: the train loader's ``ResumableSampler`` is infinite (the loader has no
``len``), so set ``trainer.max_steps``. When Lightning resumes from a checkpoint it restores
``global_step`` before it builds the train dataloader, so ``train_dataloader`` starts the sampler at
``global_step * accumulate_grad_batches * micro_batch_size`` samples per rank and the resumed run
sees exactly the data order of an uninterrupted run, even mid-epoch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from vidgen.data.protocols import LatentCodec, TextEncoder
from vidgen.data.resumable_sampler import ResumableSampler
from vidgen.data.sample import FIELDS, VideoSample, collate
from vidgen.errors import ConfigError, DataError


class TransformedDataset(Dataset):
    """Applies a method's per-sample transform on access (the base dataset keeps its cache)."""

    def __init__(self, base: Dataset[VideoSample], transform: Callable[[VideoSample], VideoSample]):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> VideoSample:
        return self.transform(self.base[index])

    def __getattr__(self, name: str):  # e.g. ShapesDataset.clip(i)
        return getattr(self.__dict__["base"], name)


def loader_workers(configured: int | None, cap: int = 4) -> int:
    """`data.num_workers: null` -> min(cap, the CPUs this process may use): torch warns when a
    DataLoader has more workers than that (its suggested maximum, os.sched_getaffinity), e.g. 4
    workers on 2 cores. An integer is used as given."""
    if configured is not None:
        return int(configured)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cap, cpus)


class VideoDataModule(L.LightningDataModule):
    """Base datamodule: subclasses implement ``build_dataset``, ``available_fields``,
    ``null_text``, ``text_encoder`` and ``codec``.

    ``val_samples > 0`` holds out the last ``val_samples`` samples of the dataset: they are not
    trained on and ``val_dataloader`` iterates them once, in order.
    """

    def __init__(
        self,
        micro_batch_size: int = 1,
        seed: int = 0,
        num_workers: int = 0,
        max_instances: int = 8,
        val_samples: int = 0,
    ) -> None:
        super().__init__()
        if micro_batch_size < 1:
            raise ConfigError(f"micro_batch_size={micro_batch_size} must be >= 1")
        if num_workers < 0:
            raise ConfigError(f"data.num_workers={num_workers} must be >= 0")
        if val_samples < 0:
            raise ConfigError(f"data.val_samples={val_samples} must be >= 0")
        self.micro_batch_size = int(micro_batch_size)
        self.seed = int(seed)
        self.num_workers = int(num_workers)
        self.max_instances = int(max_instances)
        self.val_samples = int(val_samples)
        self._dataset: Dataset | None = None
        self.train_sampler: ResumableSampler | None = None
        # Set by the method before training (DiffusionModule.sample_transform): derives the
        # method's extra tensors (VideoSample.extras) from a sample, e.g. JDM's mask combinations.
        self.transform: Callable[[VideoSample], VideoSample] | None = None

    # -- to implement ---------------------------------------------------------------------

    def build_dataset(self) -> Dataset[VideoSample]:
        raise NotImplementedError(f"{type(self).__name__} must implement build_dataset()")

    @property
    def available_fields(self) -> set[str]:
        raise NotImplementedError(f"{type(self).__name__} must implement available_fields")

    def null_text(self) -> tuple[Tensor, Tensor]:
        """The empty-prompt embedding ``[L, D]`` and its mask ``[L]`` (CFG condition dropout)."""
        raise NotImplementedError(f"{type(self).__name__} must implement null_text()")

    def text_encoder(self) -> TextEncoder:
        raise NotImplementedError(f"{type(self).__name__} must implement text_encoder()")

    def codec(self) -> LatentCodec:
        raise NotImplementedError(f"{type(self).__name__} must implement codec()")

    # -- datasets -------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self._dataset is None:
            self._dataset = self._with_transform(self.build_dataset())
            n = len(self._dataset)
            if self.val_samples >= n:
                raise ConfigError(
                    f"data.val_samples={self.val_samples} leaves no training samples "
                    f"(the dataset has {n}); lower data.val_samples"
                )

    def _with_transform(self, dataset: Dataset[VideoSample]) -> Dataset[VideoSample]:
        return dataset if self.transform is None else TransformedDataset(dataset, self.transform)

    @property
    def dataset(self) -> Dataset[VideoSample]:
        """The whole dataset (train and held-out validation samples)."""
        self.setup()
        assert self._dataset is not None
        return self._dataset

    @property
    def num_train_samples(self) -> int:
        return len(self.dataset) - self.val_samples

    def train_dataset(self) -> Dataset[VideoSample]:
        if self.val_samples == 0:
            return self.dataset
        return Subset(self.dataset, range(self.num_train_samples))

    def val_dataset(self) -> Dataset[VideoSample] | None:
        if self.val_samples == 0:
            return None
        n = len(self.dataset)
        return Subset(self.dataset, range(n - self.val_samples, n))

    # -- loaders --------------------------------------------------------------------------

    def _trainer_position(self) -> tuple[int, int, int]:
        """(rank, world_size, samples already consumed by this rank)."""
        trainer = None
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached
            trainer = None
        if trainer is None:
            return 0, 1, 0
        accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
        start = int(trainer.global_step) * accumulate * self.micro_batch_size
        return int(trainer.global_rank), int(trainer.world_size), start

    def _loader_kwargs(self) -> dict[str, Any]:
        return {
            "batch_size": self.micro_batch_size,
            "collate_fn": collate,
            "num_workers": self.num_workers,
            "persistent_workers": False,
            "pin_memory": False,
        }

    def train_dataloader(self) -> DataLoader:
        rank, world_size, start = self._trainer_position()
        dataset = self.train_dataset()
        self.train_sampler = ResumableSampler(
            len(dataset), seed=self.seed, rank=rank, world_size=world_size, start=start, shuffle=True
        )
        return DataLoader(dataset, sampler=self.train_sampler, **self._loader_kwargs())

    def val_dataloader(self) -> DataLoader | list:
        dataset = self.val_dataset()
        if dataset is None:
            return []  # Lightning: no validation batches
        return DataLoader(dataset, shuffle=False, **self._loader_kwargs())


class ShardDataModule(VideoDataModule):
    """Reads a dataset written by ``vidgen precompute`` (see ``vidgen.data.shards`` and docs/data.md).

    ``text_encoder_path`` / ``vae_path`` are local model folders (config keys ``data.text_encoder``
    and ``data.vae``), needed only to encode new prompts and decode samples; ``backbone`` (a
    registry name or spec) tells which model classes they hold, and with ``backbone_size`` which
    text length and latent channels the data must have (checked before training starts).
    """

    def __init__(
        self,
        root: str | Path,
        text_encoder_path: str | Path | None = None,
        vae_path: str | Path | None = None,
        backbone: Any = None,
        micro_batch_size: int = 1,
        seed: int = 0,
        num_workers: int = 0,
        max_instances: int = 8,
        val_samples: int = 0,
        fields: list[str] | None = None,
        backbone_size: str | None = None,
        num_clips: int | None = None,
        check: bool = True,
    ) -> None:
        super().__init__(
            micro_batch_size=micro_batch_size,
            seed=seed,
            num_workers=num_workers,
            max_instances=max_instances,
            val_samples=val_samples,
        )
        from vidgen.data.shards import missing_root_error

        self.root = Path(root)
        if not self.root.exists():
            raise missing_root_error(self.root)
        self.text_encoder_path = text_encoder_path
        self.vae_path = vae_path
        self.backbone = backbone
        self.fields = fields
        self.backbone_size = backbone_size
        self.num_clips = num_clips
        self.check = check
        self._index: dict[str, Any] | None = None
        self._null_text: tuple[Tensor, Tensor] | None = None

    @property
    def index(self) -> dict[str, Any]:
        if self._index is None:
            from vidgen.data.shards import read_index

            self._index = read_index(self.root)
        return self._index

    def build_dataset(self) -> Dataset[VideoSample]:
        """The shard dataset, checked in full here, in the main process, before workers start
        (`vidgen.data.shard_checks`) unless `check=False`; `num_clips` keeps the first N samples."""
        from vidgen.data.shard_checks import check_dataset
        from vidgen.data.shards import ShardDataset

        self.check_backbone_fit()
        dataset = ShardDataset(self.root, max_instances=self.max_instances, fields=self.fields)
        if self.check:  # data.check: every annotation and tensor header, here, not in a worker
            check_dataset(dataset)
        if self.num_clips is not None and self.num_clips < len(dataset):
            return Subset(dataset, range(self.num_clips))
        return dataset

    @property
    def available_fields(self) -> set[str]:
        have = {f for f in self.index.get("fields", []) if f in FIELDS}
        return have | {"latents", "text_embeds"}

    def check_backbone_fit(self) -> None:
        """The data's text [L, D] and latent channels are the backbone's (with `backbone_size`)."""
        if self.backbone is not None and self.backbone_size is not None:
            from vidgen.data.shard_checks import check_backbone_fit
            from vidgen.data.shards import INDEX_FILE

            check_backbone_fit(self.index, self.root / INDEX_FILE, self._spec("text encoder"), self.backbone_size)

    def null_text(self) -> tuple[Tensor, Tensor]:
        if self._null_text is None:
            from vidgen.data.shards import load_null_text

            self.check_backbone_fit()  # the first use of the text shape (the CFG null text)
            self._null_text = load_null_text(self.root)
        return self._null_text

    def _spec(self, what: str):
        if self.backbone is None:
            raise ConfigError(
                f"the shard datamodule needs the backbone name to know which {what} class to load; "
                "set data.backbone (e.g. `data.backbone=${backbone.name}`)"
            )
        from vidgen.backbones import get_backbone

        return get_backbone(self.backbone)

    def text_encoder(self) -> TextEncoder:
        if self.text_encoder_path is None:
            raise DataError(
                "no text encoder configured: data.text_encoder is null. Fix: set data.text_encoder=PATH "
                "to the local text-encoder folder (the one used by `vidgen precompute`) to encode prompts."
            )
        spec = self._spec("text encoder")
        from vidgen.data.encoders import load_text_encoder

        max_length = self.index.get("text_len") or spec.text_len
        return load_text_encoder(self.text_encoder_path, spec.text_encoder_cls, int(max_length))

    def codec(self) -> LatentCodec:
        if self.vae_path is None:
            raise DataError(
                "no VAE configured: data.vae is null. Fix: set data.vae=PATH to the local VAE folder "
                "(the one used by `vidgen precompute`) to decode samples."
            )
        spec = self._spec("VAE")
        from vidgen.data.encoders import load_vae

        return load_vae(self.vae_path, spec.vae_cls)
