"""Fresh mask-caption combinations at every step (JDM Fig. 2, ``method.combinations=fresh``).

"Masks and their corresponding regional captions are randomly sampled from all combinations ...
Different combinations are sampled across training epochs." Each step draws, per sample, a
non-empty subset of the clip's R regions from the step generator (so from (seed, step, rank,
position in the batch): a resumed run draws the same subsets), then builds its union signal and
its prompt (the regional captions joined, ``combinations.join_captions``) and encodes them with
the data's codec / VAE and text encoder on the training device.

Subset law (``method.subset_sampling``): ``uniform`` (default) = uniform over all non-empty
subsets of size <= cap (size s drawn with probability C(R, s) / sum, then s regions uniformly);
``size_first`` = size uniform in 1..cap, then regions (the fixed pool's law). The cap is
``method.max_objects_per_combination`` (null: R, the paper's "all combinations").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vidgen.data.sample import Regions, VideoBatch
from vidgen.errors import ConfigError, DataError
from vidgen.methods.jdm.combinations import join_captions
from vidgen.methods.jdm.signals import regional_signal, signal_latents, union_mask

SUBSET_SAMPLING = ("uniform", "size_first")


def check_sampling(name: str) -> str:
    if name not in SUBSET_SAMPLING:
        raise ConfigError(
            f"method.subset_sampling={name!r} is not valid; use one of {', '.join(SUBSET_SAMPLING)}"
        )
    return name


def draw_subset(num_regions: int, gen: torch.Generator, cap: int | None, sampling: str) -> tuple[int, ...]:
    """One non-empty subset of ``range(num_regions)`` (sorted), drawn from ``gen``."""
    if num_regions < 1:
        raise ValueError("a combination needs at least one region")
    c = num_regions if cap is None else min(int(cap), num_regions)
    sizes = torch.arange(1, c + 1)
    if sampling == "uniform":
        weights = torch.tensor([math.comb(num_regions, int(s)) for s in sizes], dtype=torch.float64)
    else:
        weights = torch.ones(c, dtype=torch.float64)
    size = int(sizes[torch.multinomial(weights, 1, generator=gen)])
    members = torch.randperm(num_regions, generator=gen)[:size]
    return tuple(sorted(members.tolist()))


def region_counts(batch: VideoBatch) -> list[int]:
    if batch.regions is None:
        raise DataError(
            f"samples {batch.keys[:3]}: field regions: method.combinations=fresh builds each step's combination "
            "from the clip's regions, and the batch has none. Fix: use data with regions, or "
            "method.combinations=pool with combinations precomputed by `vidgen jdm combos`."
        )
    return batch.regions.valid.sum(dim=1).tolist()


def _sample_regions(batch: VideoBatch, b: int, r: int) -> Regions:
    g = batch.regions
    scene = {k: g.tensors[k][b].cpu() for k in ("hed", "depth") if k in g.tensors}
    return Regions(masks=g.tensors["masks"][b, :r].cpu(), captions=g.texts["captions"][b][:r], **scene)


@torch.no_grad()
def encode_subsets(
    batch: VideoBatch, subsets: list[tuple[int, ...] | None], codec, text_encoder, signal: str
) -> tuple[Tensor, Tensor, Tensor]:
    """Signal latents [B, C, F', H', W'], prompt embeds [B, L, D] and mask [B, L] of each sample's subset.

    Rows whose subset is None (not needed this step) stay zero."""
    b, c = len(batch), batch.latents.shape[1]
    _, length, dim = batch.text_embeds.shape
    latents = batch.latents.new_zeros((b, c, *batch.latents.shape[2:]))
    embeds = batch.text_embeds.new_zeros((b, length, dim))
    tmask = torch.zeros((b, length), dtype=torch.bool, device=batch.text_embeds.device)
    rows = [i for i, s in enumerate(subsets) if s is not None]
    if not rows:
        return latents, embeds, tmask
    counts = region_counts(batch)
    signals, prompts = [], []
    for i in rows:
        regions = _sample_regions(batch, i, counts[i])
        signals.append(regional_signal(regions, union_mask(regions.masks, subsets[i]), signal, batch.keys[i]))
        prompts.append(join_captions([regions.captions[j] for j in subsets[i]]))
    lat = signal_latents(codec, torch.stack(signals), dtype=batch.latents.dtype)
    e, m = text_encoder.encode(prompts)
    if tuple(e.shape[1:]) != (length, dim):
        raise DataError(
            f"the text encoder gives [L, D] = {list(e.shape[1:])} but the batch's text_embeds are {[length, dim]}. "
            "Fix: use the text encoder the data was precomputed with (data.text_encoder)."
        )
    index = torch.tensor(rows, device=latents.device)
    latents[index] = lat.to(latents.device)
    embeds[index] = e.to(embeds.device, embeds.dtype)
    tmask[index] = m.to(tmask.device).bool()
    return latents, embeds, tmask
