"""Checks of a shard dataset run once in the main process, before any DataLoader worker starts.

`check_dataset` is what `ShardDataModule.setup` runs: the dataset fits the backbone (text length
and width, latent channels, from index.json), every annotation is valid, and every sample's tensor
headers (dtype and shape, read without loading the tensors) match the index. A problem is a
DataError naming the file, the sample, the field and the fix, raised before training starts, so
it never surfaces as a worker's traceback and the run's summary.json records it as `failed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors import safe_open

from vidgen.errors import DataError

# safetensors header dtypes that hold latents (the VAE's output, in any float precision)
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
_REENCODE = "re-encode this sample with `vidgen precompute`"


def check_backbone_fit(index: dict[str, Any], index_path: Path, spec: Any, size: str) -> None:
    """The dataset was encoded for this backbone: text [L, D] and latent channels match its spec."""
    want = {
        "text_len": spec.text_len_for(size),
        "text_dim": spec.text_dim_for(size),
        "latent_channels": spec.latent_channels,
    }
    for field, expected in want.items():
        got = index.get(field)
        if got is not None and int(got) != int(expected):
            what = "text encoder (its max length and width)" if field.startswith("text") else "VAE"
            raise DataError(
                f"{index_path}: field {field} is {got}, but backbone {spec.name} at backbone.size={size} "
                f"expects {expected}. Fix: precompute the dataset with {spec.name}'s {what} "
                f"(`vidgen precompute ... --out {index_path.parent}`), or train the backbone and size the "
                "dataset was encoded for."
            )


def check_tensor_headers(dataset: Any) -> None:
    """Every sample's latents are floating point and shaped as the index says; text is [L, D]."""
    index = dataset.index
    latent_shape = index.get("latent_shape")
    text_shape = [index.get("text_len"), index.get("text_dim")]
    for shard in dataset.index["shards"]:
        path = dataset.root / shard["tensors"]
        try:
            with safe_open(str(path), framework="pt") as fh:
                names = set(fh.keys())
                for key in shard["keys"]:
                    _check_sample(fh, names, path, key, latent_shape, text_shape)
        except DataError:
            raise
        except Exception as e:  # SafetensorError, OSError, ...
            raise DataError(
                f"{path}: unreadable or corrupt safetensors file ({e}). Fix: rebuild this shard with "
                "`vidgen precompute`."
            ) from e


def _check_sample(fh, names: set[str], path: Path, key: str, latent_shape, text_shape) -> None:
    where = f"{path}: sample {key!r}"
    for suffix in ("latents", "text_embeds", "text_mask"):
        if f"{key}/{suffix}" not in names:
            raise DataError(f"{where}: field {suffix}: tensor is missing from the shard. Fix: {_REENCODE}.")
    latents = fh.get_slice(f"{key}/latents")
    dtype = latents.get_dtype()
    if dtype not in FLOAT_DTYPES:
        raise DataError(
            f"{where}: field latents: dtype {dtype}, not a floating-point dtype. Fix: store the VAE's "
            "latents as float32/bfloat16/float16 (re-encode with `vidgen precompute`)."
        )
    shape = list(latents.get_shape())
    if latent_shape is not None and shape != list(latent_shape):
        raise DataError(
            f"{where}: field latents: shape {shape} does not match index.json latent_shape "
            f"{list(latent_shape)}. Fix: {_REENCODE}."
        )
    text = list(fh.get_slice(f"{key}/text_embeds").get_shape())
    if len(text) != 2 or any(w is not None and g != w for g, w in zip(text, text_shape)):
        raise DataError(
            f"{where}: field text_embeds: shape {text} does not match index.json [text_len, text_dim] "
            f"{text_shape}. Fix: {_REENCODE}."
        )


def check_dataset(dataset: Any, spec: Any | None = None, size: str | None = None) -> int:
    """All of the above (the backbone fit only when `spec` and `size` are given); returns the
    number of samples checked."""
    from vidgen.data.shards import INDEX_FILE

    if spec is not None and size is not None:
        check_backbone_fit(dataset.index, dataset.root / INDEX_FILE, spec, size)
    n = dataset.validate()  # every annotation
    check_tensor_headers(dataset)
    return n
