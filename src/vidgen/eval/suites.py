"""Evaluation suites: which prompts, how many samples, under which file names, scored by which metrics.

- ``shapes``: the captions of the shapes world's first ``eval.limit`` clips (``SHAPES_CLIPS``); the
  rendered clips are the real videos of FID / FVD and of ``layout_iou`` (needs no weights).
- ``prompts``: one prompt per line of ``eval.prompts``; files ``NNNN-S.mp4``.
- ``vbench``: VBench's prompt suite (``eval.prompts``: ``VBench_full_info.json`` or
  ``all_dimension.txt``), ``vbench.SAMPLES_PER_PROMPT`` samples as ``<prompt>-<i>.mp4`` in one folder,
  which ``vbench evaluate --videos_path`` reads (``eval.dimensions=color,scene``: only those dimensions'
  prompts); scores come back through ``vidgen eval import``.
- ``geneval``: GenEval's ``evaluation_metadata.jsonl`` (``eval.prompts``), 4 images per prompt in its
  layout ``NNNNN/samples/SSSS.png`` + ``NNNNN/metadata.jsonl`` (the prompt's line), which
  ``evaluate_images.py`` reads; first frame of each sample (STIV's T2I models: one frame).
- ``vbench-i2v``: VBench-I2V's image suite (``eval.vbench_i2v.images``, its ``crop`` folder) and
  ``vbench2_i2v_full_info.json``; each prompt's image conditions ``SAMPLES_PER_PROMPT`` videos
  ``<prompt>-<i>.mp4`` (``adapters/vbench_i2v.py``); image-conditioned methods only (STIV TI2V).
- ``t2v-compbench``: T2V-CompBench's prompt files (``eval.prompts``: the folder of ``<n>_<category>.txt``),
  one video per prompt as ``<category>/NNNN.mp4`` (1-based, the line number of its prompt).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vidgen.errors import ConfigError
from vidgen.eval.adapters.vbench import SAMPLES_PER_PROMPT, vbench_video_name

SHAPES_CLIPS = 16  # suite=shapes: clips scored when eval.limit is not given


@dataclass(frozen=True)
class Item:
    path: str  # relative to eval/<suite>/
    prompt: str
    seed: int
    index: int = 0  # the shapes clip it stands for (real video, image condition)
    image: str = ""  # the conditioning image file (suite=vbench-i2v)


@dataclass(frozen=True)
class Suite:
    name: str
    metrics: tuple[str, ...]  # computed by vidgen eval after generation (see metrics.py)
    samples: int = 1  # per prompt


SUITES = {
    "shapes": Suite("shapes", ("layout_iou",)),
    "prompts": Suite("prompts", ()),
    "vbench": Suite("vbench", (), samples=SAMPLES_PER_PROMPT),
    "vbench-i2v": Suite("vbench-i2v", (), samples=SAMPLES_PER_PROMPT),
    "t2v-compbench": Suite("t2v-compbench", ()),
    "geneval": Suite("geneval", (), samples=4),
}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ConfigError(f"suite={name}: unknown; choose from {', '.join(SUITES)}")
    return SUITES[name]


def _prompts_file(path: str | None, suite: str, what: str) -> Path:
    if not path or not Path(path).exists():
        raise ConfigError(f"suite={suite} needs eval.prompts=PATH ({what}); {path!r} does not exist")
    return Path(path)


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def vbench_prompts(path: Path, dimensions: list[str] | None = None) -> list[str]:
    """Prompts of VBench_full_info.json (``prompt_en``, in file order, unique; only those of
    ``dimensions`` when given, e.g. the 7 semantic dimensions of JDM Table 1) or of a text file."""
    if path.suffix != ".json":
        if dimensions:
            raise ConfigError(f"eval.dimensions needs VBench_full_info.json as eval.prompts, not {path}")
        return list(dict.fromkeys(_lines(path)))
    try:
        entries = json.loads(path.read_text())
        wanted = set(dimensions or ())
        return list(
            dict.fromkeys(str(e["prompt_en"]) for e in entries if not wanted or wanted & set(e["dimension"]))
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"eval.prompts={path}: not VBench's full_info json ({exc}); expected "
                          '[{"prompt_en": ..., "dimension": [...]}, ...]') from None  # fmt: skip


def vbench_i2v_items(opts: dict, base_seed: int, size: tuple[int, int], samples: int) -> list[Item]:
    """suite=vbench-i2v: one item per (prompt, sample) with its image at the ratio closest to ``size`` (W, H)."""
    from vidgen.eval.adapters import vbench_i2v

    folder, _ = vbench_i2v.image_folder(opts, *size)
    dims = [d for d in str(opts.get("dimensions", "")).split(",") if d]
    pairs = vbench_i2v.prompts(vbench_i2v.full_info(opts), dims)
    pairs = pairs[: int(opts["limit"])] if opts.get("limit") else pairs
    if missing := [name for _, name in pairs if not (folder / name).is_file()]:
        raise ConfigError(f"eval.vbench_i2v.images: {folder} lacks {len(missing)} image(s) the prompts name, "
                          f"e.g. {missing[0]!r}; put VBench-I2V's complete crop folder there")  # fmt: skip
    return [Item(vbench_video_name(p, i), p, base_seed + i, image=str(folder / name))
            for p, name in pairs for i in range(samples)]  # fmt: skip


def items(suite: Suite, opts: dict, base_seed: int, shapes_captions: list[str] | None = None,
          size: tuple[int, int] | None = None) -> list[Item]:  # fmt: skip
    """Every video the suite needs, in a fixed order (sharding and resume rely on it); ``size`` (W, H) of
    the model's videos picks VBench-I2V's crop ratio."""
    samples = int(opts.get("samples") or suite.samples)
    limit = opts.get("limit")
    if suite.name == "vbench-i2v":
        return vbench_i2v_items(opts, base_seed, size or (1, 1), samples)
    if suite.name == "shapes":
        caps = (shapes_captions or [])[: int(limit or SHAPES_CLIPS)]
        return [Item(f"{i:04d}.mp4", c, base_seed + i, i) for i, c in enumerate(caps)]
    if suite.name == "t2v-compbench":
        folder = _prompts_file(
            opts.get("prompts"), suite.name, "the folder of T2V-CompBench's <n>_<category>.txt"
        )
        out = []
        for f in sorted(folder.glob("*.txt")):
            category = f.stem.split("_", 1)[-1]
            for n, p in enumerate(_lines(f)[: int(limit) if limit else None], start=1):
                out.append(Item(f"{category}/{n:04d}.mp4", p, base_seed))
        return out
    if suite.name == "geneval":
        lines = _lines(_prompts_file(opts.get("prompts"), suite.name, "GenEval's evaluation_metadata.jsonl"))
        try:
            prompts = [str(json.loads(line)["prompt"]) for line in lines[: int(limit) if limit else None]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"eval.prompts: not GenEval's evaluation_metadata.jsonl ({exc})") from None
        return [Item(f"{n:05d}/samples/{i:04d}.png", p, base_seed + i) for n, p in enumerate(prompts)
                for i in range(samples)]  # fmt: skip
    if suite.name == "vbench":
        dims = [d for d in str(opts.get("dimensions", "")).split(",") if d]
        prompts = vbench_prompts(
            _prompts_file(opts.get("prompts"), suite.name, "VBench_full_info.json"), dims
        )
        prompts = prompts[: int(limit)] if limit else prompts
        return [Item(vbench_video_name(p, i), p, base_seed + i) for p in prompts for i in range(samples)]
    prompts = _lines(_prompts_file(opts.get("prompts"), suite.name, "a text file, one prompt per line"))
    prompts = prompts[: int(limit)] if limit else prompts
    return [Item(f"{n:04d}-{i}.mp4", p, base_seed + i) for n, p in enumerate(prompts) for i in range(samples)]


def write_metadata(suite: Suite, opts: dict, folder: Path, size: tuple[int, int] | None = None) -> None:
    """Side files a benchmark's layout needs next to the media (GenEval: each prompt's metadata.jsonl;
    VBench-I2V: ``vbench_i2v.json``, the crop ratio to pass as its ``resolution``)."""
    from vidgen.runs import _atomic_write_text

    if suite.name == "vbench-i2v":
        from vidgen.eval.adapters import vbench_i2v

        images, ratio = vbench_i2v.image_folder(opts, *(size or (1, 1)))
        text = json.dumps({"resolution": ratio, "images": str(images)}, indent=2) + "\n"
        path = folder / "vbench_i2v.json"
        if not path.is_file() or path.read_text() != text:
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_write_text(path, text)
        return
    if suite.name != "geneval":
        return

    lines = _lines(Path(opts["prompts"]))
    for n, line in enumerate(lines[: int(opts["limit"]) if opts.get("limit") else None]):
        path = folder / f"{n:05d}" / "metadata.jsonl"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write_text(path, line + "\n")


def shard(all_items: list[Item], rank: int, world: int) -> list[Item]:
    """Rank ``rank`` of ``world`` takes every world-th item: disjoint, together complete, balanced to ±1."""
    if not 0 <= rank < world:
        raise ConfigError(f"rank {rank} is outside world size {world} (SLURM_PROCID / SLURM_NTASKS)")
    return all_items[rank::world]
