"""JDM's data filters (A.2, A.6): which clips and objects (regions) are clean enough to train on.

Objects are the ``regions`` of a clip (one mask per frame + a regional caption). An object's
**type** is its ``label`` (or ``category`` / ``name``) field when the annotation has one, else its
caption normalised (lower case, punctuation and a leading article removed): two objects captioned
"a man" are the same type.

Rules, in A.6's order (same type, then small objects, then the object count on what is left);
each clip / object is counted under the **first** rule that removes it (the "removed" columns add
up), and each rule also reports how many it would flag on its own ("flagged", on the unfiltered input):

================== ====== ===========================================================================
rule               level  removes
================== ====== ===========================================================================
``same_type``      clip   clips with more than ``max_per_type`` (2) objects of one type (A.6, first)
``truncated``      object masks that touch the frame border (within ``border_margin`` pixels) in any
                          frame: cut by the frame boundary (A.2 (1))
``too_small``      object area < ``min_area`` (0.1)  (A.2 (2), A.6, second)
``too_large``      object area >= ``max_area`` (0.6) (A.2 (2))
``fragmented``     object visible frames not one contiguous run (A.2 (4) "disconnected ... across
                          frames"; ``allow_gaps`` turns it off); a spatial share outside the largest
                          component above ``fragment_threshold`` only when that knob is set (the
                          paper gives no threshold: off by default)
``too_many``       clip   clips left with more than ``max_objects`` (10) objects (A.6, third)
``too_few``        clip   clips left with fewer than ``min_objects`` (2) objects (A.6, third)
================== ====== ===========================================================================

- **area** (``area_mode``): ``frame`` (default) = the mean over the frames in which the object is
  visible of its share of the frame ("each object must occupy at least 10% of the video region",
  read per frame); ``volume`` = its share of the whole clip, ``mask.sum() / (F * H * W)``.
- **spatial fragmentation**: per frame, ``1 - largest / area`` over 8-connected components,
  computed exactly on the full-resolution mask (union-find over overlapping row runs).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import ConfigError, DataError

FORMAT = "vidgen-jdm-filter"
RULES: tuple[tuple[str, str, str], ...] = (
    ("same_type", "clip", "more than {max_per_type} objects of one type"),
    ("truncated", "object", "mask touches the frame border (margin {border_margin} px)"),
    ("too_small", "object", "{area_mode} area < {min_area}"),
    ("too_large", "object", "{area_mode} area >= {max_area}"),
    ("fragmented", "object", "{fragments}"),
    ("too_many", "clip", "more than {max_objects} objects left"),
    ("too_few", "clip", "fewer than {min_objects} objects left"),
)
AREA_MODES = ("frame", "volume")


@dataclass(frozen=True)
class FilterSettings:
    min_area: float = 0.1
    max_area: float = 0.6
    fragment_threshold: float | None = None  # not in the paper: off unless set
    max_per_type: int = 2
    min_objects: int = 2
    max_objects: int = 10
    border_margin: int = 0
    allow_gaps: bool = False
    area_mode: str = "frame"

    def __post_init__(self) -> None:
        if self.area_mode not in AREA_MODES:
            raise ConfigError(f"--area-mode={self.area_mode!r}: use one of {', '.join(AREA_MODES)}")
        if not 0 <= self.min_area < self.max_area <= 1:
            raise ConfigError(
                f"--min-area={self.min_area} / --max-area={self.max_area}: need 0 <= min-area < max-area <= 1 "
                "(fractions of the clip volume)"
            )
        if self.fragment_threshold is not None and not 0 <= self.fragment_threshold < 1:
            raise ConfigError(f"--fragment-threshold={self.fragment_threshold} must be in [0, 1)")
        if self.min_objects < 0 or self.max_objects < max(1, self.min_objects) or self.max_per_type < 1:
            raise ConfigError(
                f"--min-objects={self.min_objects}, --max-objects={self.max_objects}, "
                f"--max-per-type={self.max_per_type}: need 0 <= min <= max, max >= 1 and max-per-type >= 1"
            )
        if self.border_margin < 0:
            raise ConfigError(f"--border-margin={self.border_margin} must be >= 0")


@dataclass
class ObjectAnn:
    type: str
    masks: np.ndarray  # [F, H, W] bool


@dataclass
class ClipAnn:
    key: str
    objects: list[ObjectAnn]


# ---------------------------------------------------------------------------------------------
# Measurements


def component_sizes(mask: np.ndarray) -> list[int]:
    """Pixel counts of the 8-connected components of a 2-D mask (largest first)."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"component_sizes expects [H, W], got {m.shape}")
    if not m.any():
        return []
    h, w = m.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = m
    d = np.diff(padded, axis=1)
    sy, sx = np.nonzero(d == 1)  # run starts (row-major order)
    _, ex = np.nonzero(d == -1)  # run ends (exclusive), same order
    n = sy.size
    parent = np.arange(n)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    row_start = np.searchsorted(sy, np.arange(h + 1))
    for y in range(h - 1):
        i, a1 = int(row_start[y]), int(row_start[y + 1])
        j, b1 = int(row_start[y + 1]), int(row_start[y + 2])
        while i < a1 and j < b1:
            # 8-connectivity: runs [sx, ex) of adjacent rows touch if they overlap or meet diagonally
            if sx[i] <= ex[j] and sx[j] <= ex[i]:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
            if ex[i] < ex[j]:
                i += 1
            else:
                j += 1
    roots = np.array([find(i) for i in range(n)])
    sizes = np.bincount(roots, weights=(ex - sx)).astype(np.int64)
    return sorted((int(s) for s in sizes if s > 0), reverse=True)


def fragment_share(masks: np.ndarray) -> float:
    """Max over frames of the mask share outside the largest connected component (0: compact)."""
    worst = 0.0
    for frame in np.asarray(masks, dtype=bool):
        sizes = component_sizes(frame)
        if sizes:
            worst = max(worst, 1.0 - sizes[0] / sum(sizes))
    return worst


def visible_runs(masks: np.ndarray) -> int:
    """Number of contiguous runs of frames in which the mask is non-empty."""
    vis = np.asarray(masks, dtype=bool).reshape(len(masks), -1).any(axis=1).astype(np.int8)
    return int(np.sum(np.diff(np.concatenate([[0], vis])) == 1))


def touches_border(masks: np.ndarray, margin: int = 0) -> bool:
    m = np.asarray(masks, dtype=bool)
    k = int(margin) + 1
    return bool(m[:, :k].any() or m[:, -k:].any() or m[:, :, :k].any() or m[:, :, -k:].any())


def area_fraction(masks: np.ndarray, mode: str = "frame") -> float:
    """``frame``: mean over visible frames of the frame share; ``volume``: share of the whole clip."""
    m = np.asarray(masks, dtype=bool)
    if not m.size:
        return 0.0
    if mode == "volume":
        return float(m.mean())
    per_frame = m.reshape(len(m), -1).mean(axis=1)  # [F]
    visible = per_frame > 0
    return float(per_frame[visible].mean()) if visible.any() else 0.0


_ARTICLE = re.compile(r"^(a|an|the)\s+")


def object_type(region: dict[str, Any]) -> str:
    for name in ("label", "category", "name"):
        value = region.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    text = re.sub(r"[^\w\s]", " ", str(region.get("caption", "")).lower())
    text = " ".join(text.split())
    return _ARTICLE.sub("", text)


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass
class FilterResult:
    settings: FilterSettings
    rows: list[dict[str, Any]]
    clips_in: int = 0
    objects_in: int = 0
    kept: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clips_kept(self) -> int:
        return len(self.kept)

    @property
    def objects_kept(self) -> int:
        return sum(len(k["regions"]) for k in self.kept)

    def report(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "clips_in": self.clips_in,
            "objects_in": self.objects_in,
            "clips_kept": self.clips_kept,
            "objects_kept": self.objects_kept,
            "rules": self.rows,
        }

    def row(self, rule: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["rule"] == rule)


def object_flags(obj: ObjectAnn, s: FilterSettings) -> dict[str, bool]:
    area = area_fraction(obj.masks, s.area_mode)
    fragmented = s.fragment_threshold is not None and fragment_share(obj.masks) > s.fragment_threshold
    if not s.allow_gaps and visible_runs(obj.masks) > 1:
        fragmented = True
    return {
        "truncated": touches_border(obj.masks, s.border_margin),
        "too_small": area < s.min_area,
        "too_large": area >= s.max_area,
        "fragmented": fragmented,
    }


def apply_filters(clips: Iterable[ClipAnn], settings: FilterSettings | None = None) -> FilterResult:
    s = settings or FilterSettings()
    parts = [] if s.allow_gaps else ["gaps between visible frames"]
    if s.fragment_threshold is not None:
        parts.append(f"fragment share > {s.fragment_threshold}")
    fmt = {**asdict(s), "fragments": " or ".join(parts) or "off"}
    rows = [
        {
            "rule": r,
            "level": lvl,
            "description": d.format(**fmt),
            "clips_removed": 0,
            "objects_removed": 0,
            "flagged": 0,
        }
        for r, lvl, d in RULES
    ]
    by = {r["rule"]: r for r in rows}
    result = FilterResult(s, rows)
    for clip in clips:
        n = len(clip.objects)
        result.clips_in += 1
        result.objects_in += n
        counts: dict[str, int] = {}
        for o in clip.objects:
            counts[o.type] = counts.get(o.type, 0) + 1
        same_type = any(c > s.max_per_type for c in counts.values())
        flags = [object_flags(o, s) for o in clip.objects]
        by["same_type"]["flagged"] += int(same_type)
        by["too_many"]["flagged"] += int(n > s.max_objects)
        by["too_few"]["flagged"] += int(n < s.min_objects)
        for f in flags:
            for name, hit in f.items():
                by[name]["flagged"] += int(hit)
        if same_type:
            by["same_type"]["clips_removed"] += 1
            by["same_type"]["objects_removed"] += n
            continue
        kept = []
        for i, f in enumerate(flags):
            first = next(
                (name for name in ("truncated", "too_small", "too_large", "fragmented") if f[name]), None
            )
            if first is None:
                kept.append(i)
            else:
                by[first]["objects_removed"] += 1
        if not s.min_objects <= len(kept) <= s.max_objects:  # A.6: the count after small objects are gone
            row = by["too_many" if len(kept) > s.max_objects else "too_few"]
            row["clips_removed"] += 1
            row["objects_removed"] += len(kept)
            continue
        result.kept.append({"key": clip.key, "regions": kept})
    return result


# ---------------------------------------------------------------------------------------------
# Inputs


def _decode(rles: list, frames: int, size: tuple[int, int], where: str) -> np.ndarray:
    from vidgen.data import rle

    out = np.zeros((frames, *size), dtype=bool)
    for f, r in enumerate(rles):
        if r is None:
            continue
        try:
            out[f] = np.asarray(rle.decode(r), dtype=bool)
        except (rle.RLEError, ValueError) as exc:
            raise DataError(
                f"{where}: mask_rle[frame {f}]: corrupt RLE ({exc}). Fix: re-export the masks."
            ) from exc
    return out


def _objects(regions: list, frame_size, where: str) -> list[ObjectAnn]:
    out = []
    for i, reg in enumerate(regions or []):
        rles = reg.get("mask_rle") or []
        if frame_size is None:
            sizes = [r["size"] for r in rles if isinstance(r, dict) and "size" in r]
            size = tuple(sizes[0]) if sizes else (1, 1)
        else:
            size = tuple(frame_size[1:])
        frames = len(rles) if frame_size is None else int(frame_size[0])
        out.append(ObjectAnn(object_type(reg), _decode(rles, frames, size, f"{where}: regions[{i}]")))
    return out


def clips_from_shards(root: str | Path) -> Iterator[ClipAnn]:
    """The clips of a shard dataset (annotations only; masks decoded one clip at a time)."""
    from vidgen.data.shards import iter_annotations

    for path, ann in iter_annotations(root):
        where = f"{path}: sample {ann.get('key')!r}"
        yield ClipAnn(ann["key"], _objects(ann.get("regions"), ann.get("frame_size"), where))


def clips_from_annotations(path: str | Path) -> Iterator[ClipAnn]:
    """The clips of a precompute JSONL annotation file (masks at the source resolution)."""
    from vidgen.data.precompute import read_annotations

    path = Path(path)
    for record in read_annotations(path, path.parent, check_files=False):
        yield ClipAnn(record.key, _objects(record.data.get("regions"), None, f"{path}:{record.line}"))


def write_kept(path: str | Path, result: FilterResult, source: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": FORMAT, "version": 1, "source": source, "report": result.report(), "kept": result.kept}
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    return path


def keep_regions(sample, indices: list[int]):
    """The sample with only the regions at ``indices``; stale JDM extras are dropped."""
    from dataclasses import replace

    regions = sample.regions
    if regions is not None:
        idx = list(indices)
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        regions = replace(
            regions,
            masks=regions.masks[idx],
            captions=[regions.captions[i] for i in idx],
            caption_embeds=pick(regions.caption_embeds),
            caption_mask=pick(regions.caption_mask),
        )
    extras = {k: v for k, v in sample.extras.items() if not k.startswith("jdm/")}
    return replace(sample, regions=regions, extras=extras)


PROVENANCE_FILE = "jdm_filter.json"  # in ROOT2: which source and kept list the dataset was written from


def _provenance(src: Path, result: FilterResult) -> dict[str, str]:
    kept = json.dumps(result.kept, sort_keys=True)
    return {"source": str(src.resolve()), "kept_sha1": hashlib.sha1(kept.encode()).hexdigest()}


def check_write_data(src: str | Path, result: FilterResult, dst: str | Path, overwrite: bool = False) -> None:
    """Refuse a ``--write-data`` destination before anything is written (see ``write_filtered``)."""
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ConfigError(f"--write-data {dst}: must differ from --data (the filtered copy is a new dataset)")
    if not overwrite:
        _check_destination(dst, _provenance(src, result))


def _check_destination(dst: Path, provenance: dict[str, str]) -> bool:
    """True when ``dst`` is this very filter's (possibly unfinished) output, to resume; False when it
    is new or empty. Anything else is refused: a dataset or files the user made are never changed."""
    if not dst.exists():
        return False
    if not dst.is_dir():
        raise ConfigError(f"--write-data {dst}: is a file; pass a new folder for the filtered dataset")
    if not any(dst.iterdir()):
        return False
    try:
        mine = json.loads((dst / PROVENANCE_FILE).read_text()) == provenance
    except (OSError, ValueError):
        mine = False
    if mine:
        return True
    what = "already holds a shard dataset" if (dst / "index.json").exists() else "is not empty"
    raise ConfigError(
        f"--write-data {dst}: {what}, not written by this filter from this --data; refusing to change it. "
        "Fix: pass a new folder, or --overwrite-data to replace its contents with the filtered dataset."
    )


def write_filtered(
    src: str | Path, result: FilterResult, dst: str | Path, samples_per_shard: int = 256, *, overwrite: bool = False
) -> int:
    """Write the kept clips, with their kept regions only, as a new shard dataset at ``dst``.

    Resumable: a ``dst`` this filter wrote from this source (``jdm_filter.json``) gets the clips it
    lacks. Any other non-empty ``dst`` is refused unless ``overwrite``, which writes into a temporary
    sibling folder and swaps it in when complete. Combinations (`vidgen jdm combos`), CMI and
    training then read ``dst`` like any dataset: the filters need no special case downstream.
    """
    check_write_data(src, result, dst, overwrite)
    src, dst = Path(src), Path(dst)
    provenance = _provenance(src, result)
    if overwrite and dst.exists() and dst.is_dir() and any(dst.iterdir()):
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        written = _write_filtered(src, result, tmp, samples_per_shard, provenance, resume=False)
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
        os.replace(tmp, dst)
        shutil.rmtree(old)
        return written
    return _write_filtered(src, result, dst, samples_per_shard, provenance, resume=_check_destination(dst, provenance))


def _write_filtered(src: Path, result: FilterResult, dst: Path, samples_per_shard: int,
                    provenance: dict[str, str], resume: bool) -> int:  # fmt: skip
    from vidgen.data.shards import ShardDataset, ShardWriter, load_null_text, read_index

    dataset = ShardDataset(src)
    position = {key: i for i, key in enumerate(dataset.keys)}
    done = ShardWriter.completed_keys(dst) if resume and (dst / "index.json").exists() else set()
    dst.mkdir(parents=True, exist_ok=True)
    tmp = dst / f".{PROVENANCE_FILE}.tmp"
    tmp.write_text(json.dumps(provenance))
    os.replace(tmp, dst / PROVENANCE_FILE)  # before the first shard: a killed write resumes
    written = 0
    with ShardWriter(
        dst,
        samples_per_shard=samples_per_shard,
        null_text=load_null_text(src),
        num_identities=read_index(src).get("num_identities"),
        append=(dst / "index.json").exists(),
    ) as writer:
        for item in result.kept:
            if item["key"] in done:
                continue
            writer.add(keep_regions(dataset[position[item["key"]]], item["regions"]))
            written += 1
    return written


def render_table(result: FilterResult):
    from rich.table import Table

    table = Table(title="vidgen jdm filter")
    for col, just in (
        ("rule", "left"),
        ("level", "left"),
        ("removes", "left"),
        ("clips removed", "right"),
        ("objects removed", "right"),
        ("flagged alone", "right"),
    ):
        table.add_column(col, justify=just)
    for r in result.rows:
        table.add_row(
            r["rule"],
            r["level"],
            r["description"],
            str(r["clips_removed"]),
            str(r["objects_removed"]),
            str(r["flagged"]),
        )
    table.add_section()
    table.add_row(
        "kept",
        "",
        f"of {result.clips_in} clips / {result.objects_in} objects",
        str(result.clips_kept),
        str(result.objects_kept),
        "",
    )
    return table
