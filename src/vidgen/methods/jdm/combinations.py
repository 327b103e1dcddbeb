"""JDM's mask-caption combinations (Sec. 3.3 "Training Scheme"): what a clip is trained with.

Per clip, a *combination* is a non-empty set of its regions (objects): their masks are unioned
and their regional captions are concatenated into one prompt. With ``method.combinations=pool``
every clip gets ``K`` combinations (``method.num_combinations``, default 4), fixed per
``(seed, sample key)``; with ``fresh`` (default) only combination 0, and the module draws L_fine's
subset anew every step (``fresh_combinations``):

- combination 0 = **all regions** (the union of every mask), paired with the clip's **global
  caption** (the sample's own ``text_embeds`` / ``text_mask``);
- combination k >= 1 (pool) = a random subset: a size drawn uniformly from
  ``1 .. min(max_objects_per_combination or R, R)``, then that many regions drawn uniformly (kept in
  the clip's region order, distinct subsets preferred); its prompt is the regional captions
  joined with ``", "`` in region order (``join_captions``), encoded with the data's text encoder.

``make_transform(cfg, datamodule)`` returns the per-sample transform the datamodule applies on
load (``DiffusionModule.sample_transform``). It adds ``VideoSample.extras``:

=========================  ==================  ==================================================
key                        shape / dtype       meaning
=========================  ==================  ==================================================
``jdm/mask_latents``       [K, C, F', H', W']  each combination's regional signal (signals.py),
                                               encoded by the data's codec / VAE like the video
``jdm/caption_embeds``     [K, L, D]           prompt of each combination (0: global caption)
``jdm/caption_mask``       [K, L] bool         its token mask
``jdm/masks``              [K, F, H, W] bool   each combination's union mask (evaluation truth)
``jdm/cmi``                [] float32          the clip's average CMI Ī (``clip_cmi``); 0.0 with
                                               ``method.dynamic_weighting=false`` (unused: w' = w)
=========================  ==================  ==================================================

With ``pool``, the JDM module picks which k in 1..K-1 to train L_fine on with its per-step
generator: the subset varies across steps, but only within the clip's fixed pool of K-1 subsets
(the speed option; Fig. 2 samples from all combinations, which ``fresh`` does).

Precompute (``vidgen jdm combos``, ``precompute_combinations``) writes ``jdm/mask_latents``,
``jdm/caption_embeds``, ``jdm/caption_mask`` and ``jdm/members`` ([K, R] bool: the regions of
each combination) into the shards as ``<key>/extra/jdm/<name>``; the transform then derives
``jdm/masks`` from ``jdm/members`` and the decoded region masks (no pixel-resolution masks are
stored) and adds ``jdm/cmi``. Samples without stored combinations are encoded online (K VAE
encodes + one text-encoder call per access; cheap on the shapes world, costly on a real VAE).
See docs/data.md, "JDM data".
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vidgen.data.sample import VideoSample
from vidgen.errors import ConfigError, DataError
from vidgen.methods.jdm.signals import SIGNALS, check_signal, regional_signal, signal_latents, union_mask

MASK_LATENTS = "jdm/mask_latents"
CAPTION_EMBEDS = "jdm/caption_embeds"
CAPTION_MASK = "jdm/caption_mask"
MASKS = "jdm/masks"
CMI = "jdm/cmi"
MEMBERS = "jdm/members"  # stored in shards only; the transform turns it into jdm/masks

# What the transform hands the JDM module (every sample carries exactly these keys).
JDM_EXTRAS = (MASK_LATENTS, CAPTION_EMBEDS, CAPTION_MASK, MASKS, CMI)
# What `vidgen jdm combos` stores per sample in the shards.
STORED_EXTRAS = (MASK_LATENTS, CAPTION_EMBEDS, CAPTION_MASK, MEMBERS)
# Written to index.json by `vidgen jdm combos`: the settings the stored combinations were made with.
INDEX_KEY = "jdm_combinations"

DEFAULT_K = 4
DEFAULT_MAX_OBJECTS = None  # no cap: subsets of any size (Fig. 2, "all combinations")
CAPTION_SEPARATOR = ", "


@dataclass(frozen=True)
class CombinationSettings:
    signal: str = "mask"
    num_combinations: int = DEFAULT_K
    max_objects: int | None = DEFAULT_MAX_OBJECTS
    seed: int = 0

    def __post_init__(self) -> None:
        check_signal(self.signal)
        if int(self.num_combinations) < 1:
            raise ConfigError(
                f"method.num_combinations={self.num_combinations} must be >= 1 (combination 0 is all objects "
                "with the global caption; K-1 random subsets follow)"
            )
        if self.max_objects is not None and int(self.max_objects) < 1:
            raise ConfigError(f"method.max_objects_per_combination={self.max_objects} must be >= 1")

    def as_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "num_combinations": int(self.num_combinations),
            "max_objects_per_combination": None if self.max_objects is None else int(self.max_objects),
            "seed": int(self.seed),
        }


# ---------------------------------------------------------------------------------------------
# Sampling


def sample_combinations(
    key: str, num_regions: int, num_combinations: int, max_objects: int | None, seed: int
) -> list[tuple[int, ...]]:
    """The K combinations of a clip: ``[all regions, subset_1, ..., subset_{K-1}]``, each sorted.

    Deterministic in ``(seed, key)`` (``random.Random`` seeds strings through SHA-512: identical
    across processes and machines). Subsets are non-empty with at most ``max_objects`` regions;
    distinct subsets are preferred, repeats happen only when the clip has too few regions.
    """
    if num_regions < 1:
        raise ValueError(f"sample {key!r}: a combination needs at least one region")
    combos: list[tuple[int, ...]] = [tuple(range(num_regions))]
    rng = random.Random(f"jdm-combinations:{int(seed)}:{key}")
    cap = num_regions if max_objects is None else min(int(max_objects), num_regions)
    seen: set[tuple[int, ...]] = set()
    for _ in range(int(num_combinations) - 1):
        subset: tuple[int, ...] = ()
        for _attempt in range(16):
            size = rng.randint(1, cap)
            subset = tuple(sorted(rng.sample(range(num_regions), size)))
            if subset not in seen:
                break
        seen.add(subset)
        combos.append(subset)
    return combos


def join_captions(captions: Sequence[str]) -> str:
    """Concatenate regional captions into one prompt, in order: ``"a, b, c"`` (trailing periods dropped)."""
    parts = [c.strip().rstrip(".").strip() for c in captions]
    return CAPTION_SEPARATOR.join(p for p in parts if p)


def _no_regions_error(key: str) -> DataError:
    return DataError(
        f"sample {key!r}: field regions: JDM needs regional masks + captions (the `regions` group: one mask "
        "per object per frame and its regional caption), and this sample has none. Fix: use data with "
        'regions (data=shapes, or shards precomputed from annotations with a non-empty "regions" list; '
        "`vidgen jdm filter` drops clips with fewer than 2 objects)."
    )


def compute_combination_extras(
    sample: VideoSample,
    combos: Sequence[Sequence[int]],
    codec,
    text_encoder,
    signal: str = "mask",
) -> dict[str, Tensor]:
    """Encode the given combinations of one sample: the stored extras plus ``jdm/masks``."""
    regions = sample.regions
    if regions is None or regions.masks.shape[0] == 0:
        raise _no_regions_error(sample.key)
    masks = regions.masks.bool()
    r = masks.shape[0]
    unions = torch.stack([union_mask(masks, c) for c in combos])  # [K, F, H, W]
    signals = torch.stack([regional_signal(regions, u, signal, sample.key) for u in unions])
    latents = signal_latents(codec, signals, dtype=sample.latents.dtype)
    L, D = sample.text_embeds.shape
    embeds = sample.text_embeds.new_zeros((len(combos), L, D))
    tmask = torch.zeros((len(combos), L), dtype=torch.bool)
    embeds[0], tmask[0] = sample.text_embeds, sample.text_mask.bool()
    if len(combos) > 1:
        prompts = [join_captions([regions.captions[i] for i in c]) for c in combos[1:]]
        e, m = text_encoder.encode(prompts)
        if tuple(e.shape[1:]) != (L, D):
            raise DataError(
                f"sample {sample.key!r}: the text encoder gives [L, D] = {list(e.shape[1:])} but the sample's "
                f"text_embeds are {[L, D]}. Fix: use the text encoder (and max length) the data was "
                "precomputed with (data.text_encoder)."
            )
        embeds[1:] = e.detach().to("cpu", embeds.dtype)
        tmask[1:] = m.detach().to("cpu").bool()
    members = torch.zeros((len(combos), r), dtype=torch.bool)
    for k, c in enumerate(combos):
        members[k, list(c)] = True
    return {
        MASK_LATENTS: latents,
        CAPTION_EMBEDS: embeds,
        CAPTION_MASK: tmask,
        MEMBERS: members,
        MASKS: unions,
    }


# ---------------------------------------------------------------------------------------------
# Models, loaded lazily where they are expensive (pickled into DataLoader workers as recipes)


class _ShardModels:
    """Loads the VAE / text encoder of a shard dataset on first use (only when a sample lacks
    precomputed combinations). Picklable: it holds paths, not models or the datamodule."""

    def __init__(self, root, text_encoder_path, vae_path, backbone):
        self.args = (root, text_encoder_path, vae_path, backbone)
        self._codec = None
        self._text = None

    def _module(self):
        from vidgen.data.datamodule import ShardDataModule

        root, text, vae, backbone = self.args
        return ShardDataModule(root, text_encoder_path=text, vae_path=vae, backbone=backbone)

    def codec(self):
        if self._codec is None:
            self._codec = self._module().codec()
        return self._codec

    def text_encoder(self):
        if self._text is None:
            self._text = self._module().text_encoder()
        return self._text

    def __getstate__(self):
        return {"args": self.args, "_codec": None, "_text": None}


class _Fixed:
    def __init__(self, codec, text_encoder):
        self._codec, self._text = codec, text_encoder

    def codec(self):
        return self._codec

    def text_encoder(self):
        return self._text


class CombinationTransform:
    """``VideoSample -> VideoSample`` with the JDM extras (see the module docstring)."""

    def __init__(
        self,
        settings: CombinationSettings,
        models,
        cmi: dict[str, float] | None = None,
        cmi_file: str | Path | None = None,
        cache: bool = False,
    ):
        self.settings = settings
        self.models = models
        self.cmi = cmi
        self.cmi_file = cmi_file
        self.cache = cache
        self._cache: dict[str, dict[str, Tensor]] = {}

    def _cmi_value(self, key: str, stored: Tensor | None) -> Tensor:
        if self.cmi is not None:
            if key not in self.cmi:
                raise DataError(
                    f"{self.cmi_file}: no CMI value for sample {key!r}. Fix: re-run `vidgen jdm cmi --data ROOT "
                    "--overwrite` on this dataset, or set method.dynamic_weighting=false (then w' = w)."
                )
            return torch.tensor(float(self.cmi[key]), dtype=torch.float32)
        if stored is not None:
            return stored.reshape(()).float()
        return torch.tensor(0.0, dtype=torch.float32)

    def __call__(self, sample: VideoSample) -> VideoSample:
        ex = sample.extras
        if all(k in ex for k in JDM_EXTRAS) and self.cmi is None:
            return sample  # fully precomputed: untouched
        extras = dict(ex)
        if all(k in ex for k in (MASK_LATENTS, CAPTION_EMBEDS, CAPTION_MASK)) and (
            MASKS in ex or MEMBERS in ex
        ):
            if MASKS not in ex:  # stored form: members -> pixel masks from the decoded regions
                if sample.regions is None:
                    raise _no_regions_error(sample.key)
                members = ex[MEMBERS].bool()
                masks = sample.regions.masks.bool()
                if members.shape[-1] != masks.shape[0]:
                    raise DataError(
                        f"sample {sample.key!r}: field extra/{MEMBERS}: {members.shape[-1]} regions, but the "
                        f"annotation has {masks.shape[0]}. Fix: re-run `vidgen jdm combos` for this dataset."
                    )
                extras[MASKS] = torch.stack(
                    [union_mask(masks, m.nonzero().flatten().tolist()) for m in members]
                )
        else:
            extras.update(self._compute(sample))
        extras.pop(MEMBERS, None)
        extras[CMI] = self._cmi_value(sample.key, ex.get(CMI))
        return replace(sample, extras=extras)

    def _compute(self, sample: VideoSample) -> dict[str, Tensor]:
        cached = self._cache.get(sample.key)
        if cached is not None:
            return cached
        regions = sample.regions
        if regions is None or regions.masks.shape[0] == 0:
            raise _no_regions_error(sample.key)
        s = self.settings
        combos = sample_combinations(
            sample.key, regions.masks.shape[0], s.num_combinations, s.max_objects, s.seed
        )
        out = compute_combination_extras(
            sample, combos, self.models.codec(), self.models.text_encoder(), s.signal
        )
        out.pop(MEMBERS)
        if self.cache:
            self._cache[sample.key] = out
        return out


def _select(cfg, key: str, default):
    from omegaconf import OmegaConf

    if isinstance(cfg, dict):
        node: Any = cfg
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return default if node is None and default is not None else node
    value = OmegaConf.select(cfg, key, default=default)
    return default if value is None and default is not None else value


def settings_from_config(cfg) -> CombinationSettings:
    """The transform's settings. ``method.combinations=fresh``: only combination 0 (all objects +
    global caption, for L_diff); the module draws L_fine's subset every step (fresh_combinations)."""
    fresh = str(_select(cfg, "method.combinations", "pool")) == "fresh"
    cap = _select(cfg, "method.max_objects_per_combination", None)
    return CombinationSettings(
        signal=str(_select(cfg, "method.signal", "mask")),
        num_combinations=1 if fresh else int(_select(cfg, "method.num_combinations", DEFAULT_K)),
        max_objects=None if cap is None else int(cap),
        seed=int(_select(cfg, "seed", 0)),
    )


def check_stored_settings(
    index: dict[str, Any], settings: CombinationSettings, where: str, only: tuple[str, ...] | None = None
) -> None:
    """Refuse shards whose stored combinations were made with other settings (``only``: these keys)."""
    stored = index.get(INDEX_KEY)
    if not stored:
        return
    want = {k: v for k, v in settings.as_dict().items() if only is None or k in only}
    diff = {k: (stored.get(k), v) for k, v in want.items() if stored.get(k) != v}
    if diff:
        detail = ", ".join(f"{k}: stored {a!r} vs configured {b!r}" for k, (a, b) in diff.items())
        raise ConfigError(
            f"{where}: field {INDEX_KEY}: the dataset's precomputed JDM combinations were made with other "
            f"settings ({detail}). Fix: set method.signal / method.num_combinations / "
            "method.max_objects_per_combination / seed to the stored values, or re-run `vidgen jdm combos` "
            "with the new settings into another --out."
        )


def clip_cmi(cfg, datamodule) -> tuple[dict[str, float] | None, str | None]:
    """The per-clip Ī training weights by (Sec. 3.3) and where it came from; (None, None) when
    ``method.dynamic_weighting=false`` (then w' = w and no Ī is needed).

    ``method.cmi_file`` if set; else shards: ``<data.root>/jdm_cmi.json`` (`vidgen jdm cmi`), a
    start-up error naming that command when it is missing; shapes world: the stand-in (cmi_shapes).
    """
    from vidgen.data.datamodule import ShardDataModule
    from vidgen.data.shapes_datamodule import ShapesDataModule
    from vidgen.methods.jdm.cmi import CMI_FILE, load_cmi

    if not _select(cfg, "method.dynamic_weighting", True):
        return None, None
    cmi_file = _select(cfg, "method.cmi_file", None)
    if cmi_file:
        return load_cmi(cmi_file), str(cmi_file)
    if isinstance(datamodule, ShardDataModule):
        path = Path(datamodule.root) / CMI_FILE
        if not path.is_file():
            raise ConfigError(
                f"method=jdm weights each clip by its CMI (Sec. 3.3, Eq. 13), and {path} does not exist. Fix: run "
                f"`vidgen jdm cmi --data {datamodule.root} --clip CLIP_DIR --frames DIR` (or --videos/--annotations), "
                "or pass method.cmi_file=FILE, or train without it: method.dynamic_weighting=false (w' = w)."
            )
        return load_cmi(path), str(path)
    if isinstance(datamodule, ShapesDataModule):
        from vidgen.methods.jdm.cmi_shapes import shapes_cmi

        return shapes_cmi(
            datamodule.world, datamodule.num_clips, seed=int(_select(cfg, "seed", 0))
        ), "shapes stand-in"
    raise ConfigError(
        f"method=jdm: no CMI source for {type(datamodule).__name__}; pass method.cmi_file=FILE or "
        "method.dynamic_weighting=false"
    )


def make_transform(cfg, datamodule) -> Callable[[VideoSample], VideoSample]:
    """The JDM per-sample transform for ``datamodule`` (see the module docstring)."""
    settings = settings_from_config(cfg)
    cmi, cmi_source = clip_cmi(cfg, datamodule)
    from vidgen.data.datamodule import ShardDataModule
    from vidgen.data.shapes_datamodule import ShapesDataModule

    cache = False
    if isinstance(datamodule, ShardDataModule):
        fresh = settings.num_combinations == 1 and str(_select(cfg, "method.combinations", "pool")) == "fresh"
        # fresh: only the stored combination 0 (all objects) is used, so only its signal must match
        only = ("signal",) if fresh else None
        check_stored_settings(datamodule.index, settings, str(Path(datamodule.root) / "index.json"), only)
        models = _ShardModels(
            datamodule.root, datamodule.text_encoder_path, datamodule.vae_path, datamodule.backbone
        )
    elif isinstance(datamodule, ShapesDataModule):
        # codec + caption embedder are cheap and deterministic; results are cached per key like the
        # shapes dataset caches its samples
        models = _Fixed(datamodule.codec(), datamodule.text_encoder())
        cache = True
    else:
        models = _Fixed(datamodule.codec(), datamodule.text_encoder())
    return CombinationTransform(settings, models, cmi=cmi, cmi_file=cmi_source, cache=cache)


# ---------------------------------------------------------------------------------------------
# Precompute into shards (`vidgen jdm combos`)


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def precompute_combinations(
    data: str | Path,
    vae: str | Path,
    text_encoder: str | Path,
    backbone: str | None = None,
    num_combinations: int = DEFAULT_K,
    signal: str = "mask",
    seed: int = 0,
    max_objects: int | None = DEFAULT_MAX_OBJECTS,
    out: str | Path | None = None,
    device: str = "cpu",
    vae_kind: str | None = None,
    text_encoder_kind: str | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Write the stored JDM extras of every sample of ``data`` into ``out`` (default: in place).

    Works shard by shard: a shard's tensors file is rewritten atomically with the extras added;
    a shard whose target file already holds them is skipped (resume). With ``out`` the dataset is
    copied (annotations, null text, index) and ``out/index.json`` lists the completed shards.
    """
    import shutil

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from vidgen.data.shards import INDEX_FILE, NULL_TEXT_FILE, ShardDataset, read_index

    settings = CombinationSettings(signal, num_combinations, max_objects, seed)
    src = Path(data)
    index = read_index(src)
    dst = Path(out) if out is not None else src
    in_place = dst.resolve() == src.resolve()
    if in_place:
        check_stored_settings(index, settings, str(src / INDEX_FILE))
    else:
        if (dst / INDEX_FILE).exists():
            prev = read_index(dst)
            check_stored_settings(prev, settings, str(dst / INDEX_FILE))
            src_names = [s["name"] for s in index["shards"]]
            dst_names = [s["name"] for s in prev["shards"]]
            if prev.get(INDEX_KEY) is None or dst_names != src_names[: len(dst_names)]:
                raise DataError(
                    f"{dst / INDEX_FILE}: --out already holds a dataset that is not a JDM copy of {src}. "
                    "Fix: choose an empty --out folder, or omit --out to add the combinations in place."
                )
        (dst / "shards").mkdir(parents=True, exist_ok=True)
        if (src / NULL_TEXT_FILE).exists():
            shutil.copyfile(src / NULL_TEXT_FILE, dst / NULL_TEXT_FILE)

    spec = None
    if backbone is not None:
        from vidgen.backbones import get_backbone

        spec = get_backbone(backbone)
    vae_kind = vae_kind or getattr(spec, "vae_cls", None)
    text_encoder_kind = text_encoder_kind or getattr(spec, "text_encoder_cls", None)
    if vae_kind is None or text_encoder_kind is None:
        raise ConfigError(
            "vidgen jdm combos needs the model classes of --vae and --text-encoder: pass --backbone NAME "
            "(see `vidgen backbones`) or --vae-kind and --text-encoder-kind."
        )
    models: dict[str, Any] = {}

    def load_models():
        if not models:
            from vidgen.data.encoders import load_text_encoder, load_vae

            text_len = int(index.get("text_len") or getattr(spec, "text_len", 0) or 0)
            models["codec"] = load_vae(vae, vae_kind, device=device)
            models["text"] = load_text_encoder(text_encoder, text_encoder_kind, text_len, device=device)
        return models["codec"], models["text"]

    meta = {**index, INDEX_KEY: settings.as_dict()}
    if in_place:
        _atomic_json(src / INDEX_FILE, meta)  # settings first: a partial run is detected as such
    dataset = ShardDataset(src)
    written = skipped = 0
    done_shards: list[dict[str, Any]] = []
    console = Console(stderr=True)
    columns = (TextColumn("[bold]jdm combos"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    start = 0
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task("clips", total=len(dataset))
        for shard in index["shards"]:
            keys = shard["keys"]
            target = dst / shard["tensors"]
            have = False
            if target.exists():
                try:
                    with safe_open(str(target), framework="pt") as fh:
                        names = set(fh.keys())
                    have = all(
                        f"{k}/extra/{MASK_LATENTS}" in names and f"{k}/extra/{MEMBERS}" in names for k in keys
                    )
                except Exception:
                    have = False
            if have:
                skipped += len(keys)
            else:
                codec, text = load_models()
                tensors = load_file(str(src / shard["tensors"]))
                for j, key in enumerate(keys):
                    sample = dataset[start + j]
                    regions = sample.regions
                    if regions is None or regions.masks.shape[0] == 0:
                        raise DataError(f"{src / shard['annotations']}: " + str(_no_regions_error(key)))
                    combos = sample_combinations(
                        key, regions.masks.shape[0], num_combinations, max_objects, seed
                    )
                    extras = compute_combination_extras(sample, combos, codec, text, signal)
                    for name in STORED_EXTRAS:
                        tensors[f"{key}/extra/{name}"] = extras[name]
                    bar.advance(task)
                tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
                save_file(
                    {k: v.contiguous() for k, v in tensors.items()},
                    str(tmp),
                    {"format": "vidgen-shards", "version": "1"},
                )
                os.replace(tmp, target)
                written += len(keys)
            if not in_place:
                shutil.copyfile(src / shard["annotations"], dst / shard["annotations"])
                done_shards.append(shard)
                partial = {
                    **meta,
                    "shards": done_shards,
                    "num_samples": sum(len(s["keys"]) for s in done_shards),
                }
                _atomic_json(dst / INDEX_FILE, partial)
            if have:
                bar.advance(task, len(keys))
            start += len(keys)
    _atomic_json(dst / INDEX_FILE, meta)
    return {"written": written, "skipped": skipped, "total": len(dataset)}


__all__ = [
    "CAPTION_EMBEDS",
    "CAPTION_MASK",
    "CMI",
    "JDM_EXTRAS",
    "MASKS",
    "MASK_LATENTS",
    "MEMBERS",
    "SIGNALS",
    "STORED_EXTRAS",
    "CombinationSettings",
    "CombinationTransform",
    "compute_combination_extras",
    "join_captions",
    "make_transform",
    "precompute_combinations",
    "sample_combinations",
]
