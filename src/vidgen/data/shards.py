"""On-disk dataset format: ``index.json`` + per-shard safetensors tensors + JSON annotations.

Layout of a dataset root (the full specification is in ``docs/data.md``)::

    ROOT/index.json                 format, version, counts, shapes, fields, shard list
    ROOT/null_text.safetensors      "embeds" [L, D], "mask" [L]: the empty-prompt embedding (CFG dropout)
    ROOT/shards/00000.safetensors   tensors "<key>/latents", "<key>/text_embeds", "<key>/text_mask", ...
    ROOT/shards/00000.json          [ {"key", "caption", "frame_size", "instances", "regions", "faces", "micro"} ]

``ShardWriter`` writes shards atomically (temporary name, then ``os.replace``) and rewrites
``index.json`` atomically after every shard, so an interrupted producer leaves a valid dataset of
its completed shards; ``ShardWriter(root, append=True)`` resumes it and
``ShardWriter.completed_keys(root)`` tells a producer which samples to skip.

``ShardDataset`` is a map-style dataset of ``VideoSample``. Safetensors files are opened lazily in
each worker; every annotation is validated when it is loaded, and any problem raises ``DataError``
naming the file, the sample key, the field and the fix.
"""

from __future__ import annotations

import bisect
import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from torch.utils.data import Dataset

from vidgen.data import rle
from vidgen.data.annotations import _REPRODUCE, _Ctx, validate_annotation  # noqa: F401 (re-exported)
from vidgen.data.sample import (
    FIELDS,
    Faces,
    Instances,
    MicroConditions,
    Regions,
    VideoSample,
    check_fields,
    sample_fields,
)
from vidgen.errors import DataError

FORMAT = "vidgen-shards"
VERSION = 1
INDEX_FILE = "index.json"
NULL_TEXT_FILE = "null_text.safetensors"
SHARD_DIR = "shards"

# Tensor names inside a shard: f"{key}/{suffix}".
T_LATENTS = "latents"
T_TEXT_EMBEDS = "text_embeds"
T_TEXT_MASK = "text_mask"
T_IMAGE_LATENTS = "image_latents"
T_INSTANCE_EMBEDS = "instance_prompt_embeds"
T_INSTANCE_MASK = "instance_prompt_mask"
T_REGION_EMBEDS = "region_caption_embeds"
T_REGION_MASK = "region_caption_mask"
T_HED = "hed"
T_DEPTH = "depth"
T_FACE_CROPS = "face_crops"
T_FACE_EMBEDS = "face_embeds"
T_FACE_LOCAL = "face_local_embeds"
T_EXTRA = "extra/"  # + the extras key, e.g. "extra/jdm/mask_latents"

LATENT_FIX = "store the VAE's latents as float32/bfloat16/float16 (re-encode with `vidgen precompute`)"
PRECOMPUTE_FIX = (
    "run `vidgen precompute ... --out {root}` to build it, or use `data=shapes` for synthetic data"
)


# RecursionError: a JSON file nested deeper than Python's recursion limit ("[[[[...").
JSON_ERRORS = (OSError, UnicodeDecodeError, ValueError, RecursionError)


def _unreadable_json(e: BaseException) -> str:
    return "nested too deep" if isinstance(e, RecursionError) else str(e)


def missing_root_error(root: Path | str) -> DataError:
    return DataError(
        f"data root {str(root)!r} does not exist. Fix: " + PRECOMPUTE_FIX.format(root=root) + "."
    )


# ---------------------------------------------------------------------------------------------
# Small IO helpers


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _atomic_write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    tmp = _tmp(path)
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=indent, allow_nan=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _atomic_save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    tmp = _tmp(path)
    # clone: safetensors refuses tensors that share storage (e.g. views of one batch tensor)
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(tmp), metadata)
    _fsync(tmp)
    os.replace(tmp, path)


def read_index(root: Path | str) -> dict[str, Any]:
    """Load and check ``ROOT/index.json`` (DataError naming the file and the fix)."""
    root = Path(root)
    if not root.exists():
        raise missing_root_error(root)
    path = root / INDEX_FILE
    if not path.is_file():
        raise DataError(
            f"{path} not found: {root} is not a vidgen shard dataset (or its producer never finished a "
            f"shard). Fix: " + PRECOMPUTE_FIX.format(root=root) + "."
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except JSON_ERRORS as e:
        raise DataError(
            f"{path}: cannot parse the dataset index ({_unreadable_json(e)}). Fix: restore it or re-run "
            "`vidgen precompute`."
        ) from e
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataError(f"{path}: field 'format' must be {FORMAT!r}; this is not a vidgen shard index.")
    if index.get("version") != VERSION:
        raise DataError(
            f"{path}: field 'version' is {index.get('version')!r}, this vidgen reads version {VERSION}. "
            "Fix: re-run `vidgen precompute` with this version of vidgen."
        )
    shards = index.get("shards")
    if not isinstance(shards, list):
        raise DataError(f"{path}: field 'shards' must be a list. Fix: re-run `vidgen precompute`.")
    for i, shard in enumerate(shards):
        if not isinstance(shard, dict) or not all(k in shard for k in ("tensors", "annotations", "keys")):
            raise DataError(
                f"{path}: field shards[{i}] must have 'tensors', 'annotations' and 'keys'. "
                "Fix: re-run `vidgen precompute`."
            )
        for field in ("tensors", "annotations"):
            _check_inside(root, path, f"shards[{i}].{field}", shard[field])
    return index


def _check_inside(root: Path, index_path: Path, field: str, rel: Any) -> None:
    """A shard path of index.json must be a relative path that stays inside the dataset root
    (lexically: `..` and absolute paths are refused; a symlink the dataset's owner made is followed)."""
    norm = os.path.normpath(rel) if isinstance(rel, str) and rel else ""
    if not norm or os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep):
        raise DataError(
            f"{index_path}: field {field} is {rel!r}, which is not a path inside the dataset root {root}; "
            "shard files must be given relative to the root (e.g. 'shards/00000.safetensors'). Fix: "
            "correct index.json or re-run `vidgen precompute`."
        )


def iter_annotations(root: Path | str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(annotation file, raw annotation) of every sample, shard by shard, without loading tensors."""
    root = Path(root)
    for shard in read_index(root)["shards"]:
        path = root / shard["annotations"]
        try:
            anns = json.loads(path.read_text(encoding="utf-8"))
        except JSON_ERRORS as exc:
            raise DataError(
                f"{path}: unreadable annotations ({_unreadable_json(exc)}). Fix: re-run `vidgen precompute`."
            ) from exc
        for ann in anns:
            yield path, ann


def load_null_text(root: Path | str) -> tuple[Tensor, Tensor]:
    """The empty-prompt embedding ``[L, D]`` and mask ``[L]`` of a dataset."""
    root = Path(root)
    if not root.exists():
        raise missing_root_error(root)
    path = root / NULL_TEXT_FILE
    if not path.is_file():
        raise DataError(
            f"{path} not found: the dataset has no empty-prompt embedding (needed for CFG condition "
            "dropout). Fix: re-run `vidgen precompute` (it writes null_text.safetensors)."
        )
    try:
        with safe_open(str(path), framework="pt") as fh:
            return fh.get_tensor("embeds"), fh.get_tensor("mask").bool()
    except Exception as e:  # safetensors raises its own error types
        raise DataError(
            f"{path}: unreadable or corrupt ({e}); it must hold tensors 'embeds' [L, D] and 'mask' [L]. "
            "Fix: re-run `vidgen precompute`."
        ) from e


def _boxes_to_json(boxes: Tensor, visible: Tensor | None) -> list:
    out = []
    for f in range(boxes.shape[0]):
        if visible is not None and not bool(visible[f]):
            out.append(None)
        else:
            out.append([float(v) for v in boxes[f].tolist()])
    return out


def _masks_to_json(masks: Tensor) -> list:
    return [rle.encode(m) if bool(m.any()) else None for m in masks.bool()]


def sample_to_record(sample: VideoSample) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Split a sample into its JSON annotation and its tensors (names without the key prefix)."""
    ann: dict[str, Any] = {
        "key": sample.key,
        "caption": sample.caption,
        "frame_size": [int(v) for v in sample.frame_size],
    }
    tensors: dict[str, Tensor] = {
        T_LATENTS: sample.latents,
        T_TEXT_EMBEDS: sample.text_embeds,
        T_TEXT_MASK: sample.text_mask.bool(),
    }
    if sample.image_latents is not None:
        tensors[T_IMAGE_LATENTS] = sample.image_latents
    for name, value in sample.extras.items():
        tensors[T_EXTRA + name] = value
    inst = sample.instances
    if inst is not None:
        items = []
        for i in range(inst.boxes.shape[0]):
            item: dict[str, Any] = {
                "prompt": inst.prompts[i],
                "boxes": _boxes_to_json(inst.boxes[i], inst.visible[i]),
            }
            if inst.masks is not None:
                item["mask_rle"] = _masks_to_json(inst.masks[i])
            items.append(item)
        ann["instances"] = items
        if inst.prompt_embeds is not None:
            tensors[T_INSTANCE_EMBEDS] = inst.prompt_embeds
            mask = inst.prompt_mask
            if mask is None:
                mask = torch.ones(inst.prompt_embeds.shape[:2], dtype=torch.bool)
            tensors[T_INSTANCE_MASK] = mask.bool()
    reg = sample.regions
    if reg is not None:
        ann["regions"] = [
            {"caption": reg.captions[i], "mask_rle": _masks_to_json(reg.masks[i])}
            for i in range(reg.masks.shape[0])
        ]
        if reg.hed is not None:
            tensors[T_HED] = reg.hed
        if reg.depth is not None:
            tensors[T_DEPTH] = reg.depth
        if reg.caption_embeds is not None:
            tensors[T_REGION_EMBEDS] = reg.caption_embeds
            mask = reg.caption_mask
            if mask is None:
                mask = torch.ones(reg.caption_embeds.shape[:2], dtype=torch.bool)
            tensors[T_REGION_MASK] = mask.bool()
    faces = sample.faces
    if faces is not None:
        ann["faces"] = [
            {
                "id_index": int(faces.id_index[i]),
                "boxes": _boxes_to_json(faces.boxes[i], None),
                "mask_rle": _masks_to_json(faces.id_masks[i]),
            }
            for i in range(faces.boxes.shape[0])
        ]
        tensors[T_FACE_CROPS] = faces.crops
        if faces.embeds is not None:
            tensors[T_FACE_EMBEDS] = faces.embeds
        if faces.local_embeds is not None:
            tensors[T_FACE_LOCAL] = faces.local_embeds
    if sample.micro is not None:
        m = sample.micro
        ann["micro"] = {
            "original_size": [int(v) for v in m.original_size],
            "crop": [int(v) for v in m.crop],
            "stride": int(m.stride),
            "fps": float(m.fps),
        }
    return ann, tensors


# ---------------------------------------------------------------------------------------------
# Writer


class ShardWriter:
    """Write ``VideoSample``s to a shard dataset root.

    ``append=True`` resumes a root that already holds a dataset (new shards are added after the
    completed ones); without it, a root that already has an ``index.json`` is refused.
    ``null_text=(embeds [L, D], mask [L])`` writes ``null_text.safetensors``. ``num_identities``
    is the size of the face identity table (default: largest ``id_index`` seen + 1).
    """

    def __init__(
        self,
        root: Path | str,
        samples_per_shard: int = 256,
        *,
        null_text: tuple[Tensor, Tensor] | None = None,
        num_identities: int | None = None,
        append: bool = False,
    ) -> None:
        if samples_per_shard < 1:
            raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
        self.root = Path(root)
        self.samples_per_shard = int(samples_per_shard)
        self._fixed_identities = num_identities
        self._buffer: list[tuple[dict[str, Any], dict[str, Tensor]]] = []
        self._buffer_fields: set[str] | None = None
        self._closed = False
        index_path = self.root / INDEX_FILE
        if index_path.exists():
            if not append:
                raise DataError(
                    f"{index_path} already exists: {self.root} already holds a dataset. Fix: resume it "
                    "with append mode (`vidgen precompute ... --append`) or choose another --out."
                )
            index = read_index(self.root)
            self._index = index
            if num_identities is not None:
                self._index["num_identities"] = max(int(num_identities), int(index.get("num_identities", 0)))
        else:
            self._index = {
                "format": FORMAT,
                "version": VERSION,
                "num_samples": 0,
                "latent_shape": None,
                "latent_channels": None,
                "text_len": None,
                "text_dim": None,
                "fields": [],
                "max_instances": 0,
                "num_identities": int(num_identities or 0),
                "shards": [],
            }
        (self.root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        # temporary files of an interrupted writer (their shards never reached the index)
        for stale in (self.root / SHARD_DIR).glob(".*.tmp-*"):
            stale.unlink(missing_ok=True)
        self._keys: set[str] = {k for shard in self._index["shards"] for k in shard["keys"]}
        if null_text is not None:
            self.set_null_text(*null_text)
        if not index_path.exists():
            self._write_index()

    # -- public API -------------------------------------------------------------------------

    @staticmethod
    def completed_keys(root: Path | str) -> set[str]:
        """Keys of the samples in completed shards of ``root`` (empty when there is no dataset yet)."""
        root = Path(root)
        if not (root / INDEX_FILE).exists():
            return set()
        return {k for shard in read_index(root)["shards"] for k in shard["keys"]}

    def set_null_text(self, embeds: Tensor, mask: Tensor) -> None:
        _atomic_save_tensors(
            self.root / NULL_TEXT_FILE,
            {"embeds": embeds, "mask": mask.bool()},
            {"format": FORMAT, "version": str(VERSION)},
        )

    def add(self, sample: VideoSample) -> None:
        if self._closed:
            raise RuntimeError("ShardWriter is closed")
        key = sample.key
        where = f"sample given to ShardWriter({self.root})"
        if not isinstance(key, str) or not key:
            raise DataError(f"{where}: field key: must be a non-empty string, got {key!r}.")
        if key in self._keys:
            raise DataError(
                f"{where}: sample {key!r}: field key: duplicate key (already written or buffered). "
                "Fix: keys must be unique; skip samples in ShardWriter.completed_keys(root) when resuming."
            )
        self._check_shapes(sample, where)
        ann, tensors = sample_to_record(sample)
        num_ids = self._fixed_identities if self._fixed_identities is not None else None
        validate_annotation(ann, file=where, key=key, num_identities=num_ids)
        self._keys.add(key)
        have = sample_fields(sample)
        self._buffer_fields = have if self._buffer_fields is None else self._buffer_fields & have
        self._buffer.append((ann, tensors))
        if len(self._buffer) >= self.samples_per_shard:
            self.flush()

    def flush(self) -> None:
        """Write the buffered samples as one shard (even if it is not full) and update the index."""
        if not self._buffer:
            return
        shards = self._index["shards"]
        shard_id = 1 + max((int(s["name"]) for s in shards), default=-1)
        name = f"{shard_id:05d}"
        tensors_rel = f"{SHARD_DIR}/{name}.safetensors"
        ann_rel = f"{SHARD_DIR}/{name}.json"
        flat: dict[str, Tensor] = {}
        anns = []
        for ann, tensors in self._buffer:
            anns.append(ann)
            for suffix, t in tensors.items():
                flat[f"{ann['key']}/{suffix}"] = t
        _atomic_save_tensors(self.root / tensors_rel, flat, {"format": FORMAT, "version": str(VERSION)})
        _atomic_write_json(self.root / ann_rel, anns)

        idx = self._index
        first_shard = idx["num_samples"] == 0
        buffer_fields = self._buffer_fields or set()
        fields = buffer_fields if first_shard else set(idx["fields"]) & buffer_fields
        idx["fields"] = sorted(fields, key=FIELDS.index)
        idx["num_samples"] += len(anns)
        idx["max_instances"] = max([idx["max_instances"]] + [len(a.get("instances") or []) for a in anns])
        ids = [f["id_index"] for a in anns for f in (a.get("faces") or [])]
        if ids:
            idx["num_identities"] = max(idx["num_identities"], max(ids) + 1)
        shards.append(
            {"name": name, "tensors": tensors_rel, "annotations": ann_rel, "keys": [a["key"] for a in anns]}
        )
        self._buffer = []
        self._buffer_fields = None
        self._write_index()

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._write_index()
        self._closed = True

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _write_index(self) -> None:
        _atomic_write_json(self.root / INDEX_FILE, self._index, indent=1)

    def _check_shapes(self, sample: VideoSample, where: str) -> None:
        idx = self._index
        shape = list(sample.latents.shape)
        L, D = (list(sample.text_embeds.shape) + [0, 0])[:2]
        if sample.text_embeds.ndim != 2 or list(sample.text_mask.shape) != [L]:
            raise DataError(
                f"{where}: sample {sample.key!r}: field text_embeds/text_mask: expected [L, D] and [L], got "
                f"{list(sample.text_embeds.shape)} and {list(sample.text_mask.shape)}."
            )
        if idx["latent_shape"] is None:
            idx["latent_shape"] = shape
            idx["latent_channels"] = shape[0] if shape else None
            idx["text_len"], idx["text_dim"] = L, D
            return
        if shape != idx["latent_shape"]:
            raise DataError(
                f"{where}: sample {sample.key!r}: field latents: shape {shape} differs from the dataset's "
                f"latent_shape {idx['latent_shape']}. Fix: samples of one dataset must share one resolution "
                "and frame count; write other resolutions to another root."
            )
        if [L, D] != [idx["text_len"], idx["text_dim"]]:
            raise DataError(
                f"{where}: sample {sample.key!r}: field text_embeds: shape {[L, D]} differs from the dataset's "
                f"[text_len, text_dim] = {[idx['text_len'], idx['text_dim']]}. Fix: encode every prompt with "
                "the same text encoder and max length."
            )


# ---------------------------------------------------------------------------------------------
# Reader


class _LRU(OrderedDict):
    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        if len(self) > self.capacity:
            self.popitem(last=False)
        return value


class ShardDataset(Dataset):
    """Map-style dataset of ``VideoSample`` read from a shard root.

    ``fields``: the sample fields to load (names from ``sample.FIELDS``); ``None`` loads everything
    the dataset provides. Asking for a field the dataset lacks raises ``ConfigError`` at once.
    ``max_instances`` is the configured maximum (``data.max_instances``).
    """

    def __init__(
        self,
        root: Path | str,
        max_instances: int = 8,
        fields: Iterable[str] | None = None,
        max_open_shards: int = 16,
    ) -> None:
        self.root = Path(root)
        self.index = read_index(self.root)
        self.max_instances = int(max_instances)
        self.num_identities = int(self.index.get("num_identities") or 0)
        self.available = {f for f in self.index.get("fields", []) if f in FIELDS}
        if fields is not None:
            fields = set(fields)
            check_fields(fields, self.available | {"latents", "text_embeds"}, f"shard dataset {self.root}")
        self.fields = fields
        self._shards = self.index["shards"]
        self._starts: list[int] = []
        self.keys: list[str] = []
        for shard in self._shards:
            self._starts.append(len(self.keys))
            self.keys.extend(shard["keys"])
            for rel in (shard["tensors"], shard["annotations"]):
                path = self.root / rel
                if not path.is_file():
                    raise DataError(
                        f"{path} is listed in {self.root / INDEX_FILE} but does not exist. Fix: restore the "
                        "file, or re-run `vidgen precompute` for this dataset."
                    )
        self.max_open_shards = max_open_shards
        self._reset_handles()

    # Handles are per process: never pickled into workers, reopened after a fork.
    def _reset_handles(self) -> None:
        self._pid = os.getpid()
        self._tensor_files = _LRU(self.max_open_shards)
        self._annotations = _LRU(self.max_open_shards * 4)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tensor_files"] = None
        state["_annotations"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_handles()

    def __len__(self) -> int:
        return len(self.keys)

    def locate(self, i: int) -> tuple[int, int]:
        """(shard number, position within the shard) of sample ``i``."""
        if not 0 <= i < len(self.keys):
            raise IndexError(f"sample index {i} out of range for {len(self.keys)} samples")
        s = bisect.bisect_right(self._starts, i) - 1
        return s, i - self._starts[s]

    def _open_tensors(self, s: int):
        if self._pid != os.getpid():
            self._reset_handles()
        path = self.root / self._shards[s]["tensors"]

        def make():
            try:
                handle = safe_open(str(path), framework="pt")
                return handle, set(handle.keys())
            except Exception as e:  # SafetensorError, OSError, ...
                raise DataError(
                    f"{path}: unreadable or corrupt safetensors file ({e}). Fix: the shard is truncated or "
                    "damaged; delete the dataset's shard and re-run `vidgen precompute ... --append`, or "
                    "rebuild the dataset."
                ) from e

        return self._tensor_files.get_or(s, make)

    def _load_annotations(self, s: int) -> list:
        if self._pid != os.getpid():
            self._reset_handles()
        path = self.root / self._shards[s]["annotations"]

        def make():
            try:
                anns = json.loads(path.read_text(encoding="utf-8"))
            except JSON_ERRORS as e:
                raise DataError(
                    f"{path}: unreadable or invalid JSON ({_unreadable_json(e)}). Fix: re-run `vidgen precompute` "
                    "for this shard."
                ) from e
            keys = self._shards[s]["keys"]
            if not isinstance(anns, list) or len(anns) != len(keys):
                raise DataError(
                    f"{path}: expected a list of {len(keys)} annotations (one per key in index.json), got "
                    f"{len(anns) if isinstance(anns, list) else type(anns).__name__}. Fix: re-run "
                    "`vidgen precompute` for this shard."
                )
            return anns

        return self._annotations.get_or(s, make)

    def annotation(self, i: int) -> dict[str, Any]:
        """The validated JSON annotation of sample ``i``."""
        s, j = self.locate(i)
        key = self._shards[s]["keys"][j]
        ann = self._load_annotations(s)[j]
        validate_annotation(
            ann,
            file=self.root / self._shards[s]["annotations"],
            key=key,
            max_instances=self.max_instances,
            num_identities=self.num_identities,
        )
        return ann

    def validate(self) -> int:
        """Validate every annotation (no tensors are read); returns the number of samples checked."""
        for i in range(len(self)):
            self.annotation(i)
        return len(self)

    def _want(self, name: str) -> bool:
        if self.fields is None:
            return True
        if name in self.fields:
            return True
        return "." not in name and any(f.startswith(name + ".") for f in self.fields)

    def __getitem__(self, i: int) -> VideoSample:
        s, j = self.locate(int(i))
        ann = self.annotation(int(i))
        key = ann["key"]
        fh, names = self._open_tensors(s)
        tpath = self.root / self._shards[s]["tensors"]
        ctx = _Ctx(tpath, key)

        def get(suffix: str, required: bool = True) -> Tensor | None:
            name = f"{key}/{suffix}"
            if name not in names:
                if required:
                    raise ctx.error(
                        suffix,
                        f"tensor {name!r} is missing from the shard",
                        "re-run `vidgen precompute` for this sample",
                    )
                return None
            try:
                return fh.get_tensor(name)
            except Exception as e:
                raise DataError(
                    f"{tpath}: sample {key!r}: field {suffix}: unreadable or corrupt safetensors data ({e}). "
                    "Fix: re-run `vidgen precompute` for this shard."
                ) from e

        def expect(t: Tensor, suffix: str, shape: list[int | None], what: str) -> None:
            ok = t.ndim == len(shape) and all(e is None or e == d for e, d in zip(shape, t.shape))
            if not ok:
                want = [("*" if e is None else e) for e in shape]
                raise ctx.error(
                    suffix,
                    f"tensor shape {list(t.shape)} does not match {what} {want}",
                    "re-run `vidgen precompute` for this sample",
                )

        F, H, W = ann["frame_size"]
        latents = get(T_LATENTS)
        if self.index.get("latent_shape") is not None:
            expect(latents, T_LATENTS, list(self.index["latent_shape"]), "index.json latent_shape")
        if not latents.is_floating_point():
            raise ctx.error(T_LATENTS, f"latents have dtype {latents.dtype}, not a floating-point dtype", LATENT_FIX)
        if not bool(torch.isfinite(latents).all()):
            raise ctx.error(
                T_LATENTS, "latents contain NaN or inf", "re-encode this sample with `vidgen precompute`"
            )
        text_embeds = get(T_TEXT_EMBEDS)
        expect(
            text_embeds,
            T_TEXT_EMBEDS,
            [self.index.get("text_len"), self.index.get("text_dim")],
            "[text_len, text_dim]",
        )
        text_mask = get(T_TEXT_MASK).bool()
        expect(text_mask, T_TEXT_MASK, [text_embeds.shape[0]], "[text_len]")
        sample = VideoSample(
            key=key,
            latents=latents,
            text_embeds=text_embeds,
            text_mask=text_mask,
            caption=ann["caption"],
            frame_size=(F, H, W),
        )
        if self._want("image_latents"):
            sample.image_latents = get(T_IMAGE_LATENTS, required=False)
        prefix = f"{key}/{T_EXTRA}"
        for name in names:
            if name.startswith(prefix):
                sample.extras[name[len(prefix) :]] = get(name[len(key) + 1 :])

        afile = self.root / self._shards[s]["annotations"]
        actx = _Ctx(afile, key)

        def masks(items: list, field: str, name: str) -> Tensor:
            out = torch.zeros((len(items), F, H, W), dtype=torch.bool)
            for n, item in enumerate(items):
                for f, r in enumerate(item[field]):
                    if r is None:
                        continue
                    try:
                        out[n, f] = rle.decode(r)
                    except rle.RLEError as e:
                        raise actx.error(
                            f"{name}[{n}].{field}[frame {f}]", f"corrupt RLE: {e}", _REPRODUCE
                        ) from e
            return out

        def boxes(items: list) -> tuple[Tensor, Tensor]:
            b = torch.zeros((len(items), F, 4), dtype=torch.float32)
            v = torch.zeros((len(items), F), dtype=torch.bool)
            for n, item in enumerate(items):
                for f, box in enumerate(item["boxes"]):
                    if box is not None:
                        b[n, f] = torch.tensor(box, dtype=torch.float32)
                        v[n, f] = True
            return b, v

        def embeds(suffix: str, mask_suffix: str, n: int, what: str) -> tuple[Tensor | None, Tensor | None]:
            """Optional per-item text embeddings [n, L, D] and their mask (all True when not stored)."""
            emb = get(suffix, required=False)
            if emb is None:
                return None, None
            expect(emb, suffix, [n, None, None], f"[num {what}, L, D]")
            mask = get(mask_suffix, required=False)
            return emb, (mask.bool() if mask is not None else torch.ones(emb.shape[:2], dtype=torch.bool))

        insts = ann.get("instances")
        if insts is not None and self._want("instances"):
            b, v = boxes(insts)
            group = Instances(boxes=b, visible=v, prompts=[it["prompt"] for it in insts])
            if self._want("instances.masks") and all(it.get("mask_rle") is not None for it in insts):
                group.masks = masks(insts, "mask_rle", "instances")
            if self._want("instances.prompt_embeds"):
                group.prompt_embeds, group.prompt_mask = embeds(
                    T_INSTANCE_EMBEDS, T_INSTANCE_MASK, len(insts), "instances"
                )
            sample.instances = group

        regs = ann.get("regions")
        if regs is not None and self._want("regions"):
            group = Regions(masks=masks(regs, "mask_rle", "regions"), captions=[r["caption"] for r in regs])
            for suffix, attr in ((T_HED, "hed"), (T_DEPTH, "depth")):
                if self._want(f"regions.{attr}"):
                    t = get(suffix, required=False)
                    if t is not None:
                        expect(t, suffix, [F, H, W], "the video's frame_size [F, H, W]")
                        setattr(group, attr, t)
            if self._want("regions.caption_embeds"):
                group.caption_embeds, group.caption_mask = embeds(
                    T_REGION_EMBEDS, T_REGION_MASK, len(regs), "regions"
                )
            sample.regions = group

        faces = ann.get("faces")
        if faces is not None and self._want("faces"):
            b, _ = boxes(faces)
            crops = get(T_FACE_CROPS)
            expect(crops, T_FACE_CROPS, [len(faces), 3, None, None], "[num faces, 3, S, S]")
            sample.faces = Faces(
                boxes=b,
                id_index=torch.tensor([f["id_index"] for f in faces], dtype=torch.long),
                crops=crops,
                id_masks=masks(faces, "mask_rle", "faces"),
            )
            for suffix, attr, shape in (
                (T_FACE_EMBEDS, "embeds", "[K, D]"),
                (T_FACE_LOCAL, "local_embeds", "[K, S, L, C]"),
            ):
                t = get(suffix, required=False) if self._want(f"faces.{attr}") else None
                if t is not None:
                    expect(t, suffix, [len(faces)] + [None] * (shape.count(",")), shape)
                    setattr(sample.faces, attr, t)

        micro = ann.get("micro")
        if micro is not None and self._want("micro"):
            sample.micro = MicroConditions(
                original_size=tuple(micro["original_size"]),
                crop=tuple(micro["crop"]),
                stride=int(micro["stride"]),
                fps=float(micro.get("fps", 0.0)),
            )
        return sample
