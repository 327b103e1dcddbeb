"""The InstanceV data transform: instance checks and SAUG's sentinel embeddings per sample."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor

from vidgen.data.sample import VideoSample
from vidgen.errors import DataError
from vidgen.instances.sentinels import check_sentinels, sentinel_prompts
from vidgen.instances.validate import check_instances
from vidgen.methods.instancev.config import InstanceVConfig

SENTINEL_EMBEDS = "instancev/sentinel_embeds"  # [max_instances, SENTINEL_LEN, D]: <extra_id_k> encoded
SENTINEL_LEN = 4  # tokens kept of each encoded sentinel ("<extra_id_k>" + </s> in umT5); the rest is padding


def encode_sentinels(text_encoder, n: int, where: str) -> Tensor:
    """``<extra_id_0..n-1>`` encoded in isolation like instance prompts, zero where padded -> [n, SENTINEL_LEN, D]."""
    tokenizer = getattr(text_encoder, "tokenizer", None)
    if tokenizer is not None:  # a real tokenizer; the shapes world's word embedder has no fixed vocabulary
        check_sentinels(tokenizer, n, where)
    emb, mask = text_encoder.encode(sentinel_prompts(n))
    emb = emb * mask[..., None].to(emb.dtype)
    if bool(mask[:, SENTINEL_LEN:].any()):
        raise ValueError(f"{where}: a sentinel prompt encodes to more than {SENTINEL_LEN} tokens")
    out = emb.new_zeros(n, SENTINEL_LEN, emb.shape[-1])
    k = min(SENTINEL_LEN, emb.shape[1])
    out[:, :k] = emb[:, :k]
    return out.float().cpu()


def make_transform(cfg, datamodule) -> Callable[[VideoSample], VideoSample]:
    hp = InstanceVConfig.from_cfg(cfg)
    source = f"data={cfg.data.name}" + (f" (data.root={cfg.data.root})" if cfg.data.get("root") else "")
    where = (
        f"data.text_encoder={cfg.data.get('text_encoder')}"
        if cfg.data.name == "shards"
        else f"data={cfg.data.name}"
    )
    sentinels = encode_sentinels(datamodule.text_encoder(), hp.max_instances, where) if hp.saug else None

    def transform(sample: VideoSample) -> VideoSample:
        check_instances(sample.instances, sample.key, hp.max_instances, source)
        if hp.grounding == "mask" and sample.instances.masks is None:
            raise DataError(
                f"{source}, sample {sample.key!r}: method.grounding=mask needs instances.masks. "
                "Fix: precompute instance masks (mask_rle) or set method.grounding=box"
            )
        if sentinels is not None:
            return dataclasses.replace(sample, extras={**sample.extras, SENTINEL_EMBEDS: sentinels})
        return sample

    return transform


def pad_tokens(x: Tensor, length: int) -> Tensor:
    """[..., L, D] -> [..., length, D]: truncated or zero padded."""
    if x.shape[-2] >= length:
        return x[..., :length, :]
    pad = x.new_zeros(*x.shape[:-2], length - x.shape[-2], x.shape[-1])
    return torch.cat([x, pad], dim=-2)
