"""`vidgen eval`: generate a suite's videos into ``<run>/eval/<suite>/`` and score them.

Resumable: a video file that exists is never generated again (each is written to a temp file and
renamed, so an interrupted eval leaves only whole videos); rerunning the same command finishes the
rest, then computes the metrics. Under SLURM every task takes its shard of the items
(``suites.shard``) and only generates; a single task afterwards computes the metrics
(slurm/eval.sh runs both steps).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from omegaconf import DictConfig

from vidgen.errors import ConfigError
from vidgen.eval import suites
from vidgen.eval.generate import Generator, read_model_video, write_atomic
from vidgen.eval.results import suite_dir, write_suite
from vidgen.runs import _atomic_write_text

MANIFEST = "prompts.json"  # {file: prompt}: the video -> prompt map benchmarks' custom modes read


def rank_and_world() -> tuple[int, int]:
    """(SLURM_PROCID, SLURM_NTASKS) inside a SLURM job, else (RANK, WORLD_SIZE), else (0, 1)."""
    if os.environ.get("SLURM_JOB_ID") and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"]), int(os.environ.get("SLURM_NTASKS", 1))
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )


def _write_manifest(folder: Path, items: list[suites.Item]) -> None:
    text = json.dumps({it.path: it.prompt for it in items}, indent=2, ensure_ascii=False) + "\n"
    path = folder / MANIFEST
    if not path.is_file() or path.read_text() != text:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(path, text)


def rename(metrics: dict[str, float], keys: str | None) -> dict[str, float]:
    """``eval.keys=fvd:general/fvd,clip_score:general/clip_b``: store a metric under the key a table
    reads (InstanceV Table 2 reads ``general/*``); metrics not named keep their ``eval/<name>`` key."""
    mapping = dict(pair.split(":", 1) for pair in str(keys or "").split(",") if ":" in pair)
    if bad := [k for k in str(keys or "").split(",") if k and ":" not in k]:
        raise ConfigError(f"eval.keys: {', '.join(bad)}: write metric:key pairs, e.g. fvd:general/fvd")
    return {mapping.get(k.removeprefix("eval/"), k): v for k, v in metrics.items()}


def video_size(cfg: DictConfig) -> tuple[int, int]:
    """(width, height) of the videos the run's model generates (its data config, else the backbone's)."""
    from vidgen.backbones import get_backbone
    from vidgen.train import data_resolution

    _, height, width = data_resolution(cfg, get_backbone(cfg.backbone.name))
    return width, height


def run_eval(cfg: DictConfig, run_dir: Path, suite_name: str, opts: dict, ckpt: Path | None,
             rank: int = 0, world: int = 1) -> tuple[int, dict[str, float] | None]:  # fmt: skip
    """Generates what is missing of this rank's shard; with world == 1, scores the suite.
    Returns (videos generated now, metrics or None)."""
    from vidgen.eval import suite_metrics
    from vidgen.methods.stiv.cascade import check_eval_folder

    check_eval_folder(cfg, run_dir)  # STIV-JIT-TUP: cascade videos never mix with a run's own
    suite = suites.get_suite(suite_name)
    folder = suite_dir(run_dir, suite.name)
    names = [n for n in str(opts.get("metrics", ",".join(suite.metrics))).split(",") if n]
    suite_metrics.check(names, opts)  # a missing weight file fails before hours of generation
    generator: Generator | None = None
    dataset = None
    if suite.name == "shapes":
        if cfg.data.name != "shapes":
            raise ConfigError(f"suite=shapes needs a run on data=shapes (this run: data={cfg.data.name})")
        generator = Generator(cfg, ckpt)
        generator.ground_on_clips()
        dataset = generator.datamodule.dataset
    n_clips = (
        min(int(opts.get("limit") or suites.SHAPES_CLIPS), len(dataset)) if dataset is not None else 0
    )  # render only those
    captions = [dataset.clip(i).caption for i in range(n_clips)] if dataset is not None else None
    size = video_size(cfg) if suite.name == "vbench-i2v" else None
    all_items = suites.items(suite, opts, int(cfg.sample.seed), captions, size)
    todo = [it for it in suites.shard(all_items, rank, world) if not (folder / it.path).is_file()]
    if todo:
        generator = generator or Generator(cfg, ckpt)  # a bad checkpoint fails before anything is written
        if todo[0].image:  # so does a model that takes no conditioning image (suite=vbench-i2v)
            generator.image_latents(todo[0].image)
    if rank == 0:
        _write_manifest(folder, all_items)
        suites.write_metadata(suite, opts, folder, size)
    if todo:
        with _progress() as bar:
            task = bar.add_task(f"eval/{suite.name} (rank {rank}/{world})", total=len(todo))
            for it in todo:
                extra = {"image": it.image} if it.image else {}  # suite=vbench-i2v: the conditioning image
                write_atomic(folder / it.path, generator(it.prompt, it.seed, it.index, **extra), fps=generator.fps)
                bar.advance(task)
    if world > 1 or opts.get("stage") == "generate":
        return len(todo), None
    if not names:
        return len(todo), {}
    videos = [(read_model_video(folder / it.path), it.prompt, it.index) for it in all_items]
    real = (lambda i: dataset.clip(i).video) if dataset is not None else None
    prompts = (lambda i: dataset.clip(i).prompts) if dataset is not None else None
    metrics = rename(suite_metrics.compute(names, videos, opts, real, prompts, dataset), opts.get("keys"))
    info = {"videos": len(all_items), "ckpt": str(ckpt) if ckpt else str(cfg.backbone.weights),
            "steps": int(cfg.sample.steps), "guidance": str(cfg.sample.guidance),
            "guidance_scale": float(cfg.sample.guidance_scale), "computed": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                          time.gmtime())}  # fmt: skip
    write_suite(run_dir, suite.name, metrics, "vidgen", info)
    return len(todo), metrics
