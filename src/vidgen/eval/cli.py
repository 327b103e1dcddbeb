"""`vidgen eval RUN_DIR [suite=NAME] [eval.KEY=V ...] [ckpt=PATH] [overrides]`,
`vidgen eval exp=NAME backbone.weights=DIR [suite=NAME] ...` (an untrained released model; the run
folder is ``run.dir``), and `vidgen eval import RUN_DIR BENCHMARK FILE... [suite=NAME]`.

``eval.*`` keys are options of this command, not of the run's config: prompts, samples, limit,
metrics (comma-separated: layout_iou, clip_score, temporal, fid, fvd, face_sim, instance_clip,
instance_iou), clip, fid.inception, fvd.i3d, real, stage (all | generate), dimensions (suite=vbench /
vbench-i2v), keys (metric:key pairs), face_sim.recognition, face_sim.detector,
face_sim.reduce (min | mean), instance_clip.<name>, vbench_i2v.images,
vbench_i2v.ratio. Suites: shapes, prompts, vbench, vbench-i2v, t2v-compbench, geneval. See docs/evaluation.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from vidgen.errors import ConfigError, VidgenError

USAGE = __doc__


def split_args(argv: list[str]) -> tuple[str | None, str | None, dict, Path | None, list[str]]:
    """(run_dir, suite, eval options, ckpt, config overrides)."""
    run_dir = suite = ckpt = None
    opts: dict = {}
    overrides = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep and run_dir is None:
            run_dir = arg
        elif key == "suite":
            suite = value
        elif key == "ckpt":
            ckpt = Path(value)
        elif key.startswith("eval."):
            opts[key.removeprefix("eval.")] = value
        elif sep:
            overrides.append(arg)
        else:
            raise ConfigError(f"{arg!r}: expected RUN_DIR once, then key=value arguments")
    return run_dir, suite, opts, ckpt, overrides


def _run_config(run_dir: Path, overrides: list[str]):
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(
            f"{run_dir}: no config.yaml; give a run folder written by `vidgen train` (or exp=NAME)"
        )
    cfg = OmegaConf.load(path)
    for item in overrides:
        key = item.partition("=")[0]
        if key == "exp" or OmegaConf.select(cfg, key, default="<missing>") == "<missing>":
            raise ConfigError(
                f"{item}: {path} has no key {key!r}; a run folder's config takes existing keys only"
            )
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    cfg.run.dir = str(run_dir)
    return cfg


def _import(argv: list[str]) -> int:
    from vidgen.eval.adapters.registry import import_results

    suite = next((a.partition("=")[2] for a in argv if a.startswith("suite=")), None)
    rest = [a for a in argv if not a.startswith("suite=")]
    if len(rest) < 3:
        raise ConfigError("usage: vidgen eval import RUN_DIR BENCHMARK RESULT_FILE... [suite=NAME]")
    scores = import_results(Path(rest[0]), rest[1], [Path(f) for f in rest[2:]], suite)
    print(f"imported {len(scores)} {rest[1]} scores into {rest[0]}/eval/{suite or rest[1]}/metrics.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    try:
        if argv[0] == "import":
            return _import(argv[1:])
        from vidgen.eval.runner import rank_and_world, run_eval

        run_dir, suite, opts, ckpt, overrides = split_args(argv)
        if run_dir is not None:
            run = Path(run_dir)
            cfg = _run_config(run, overrides)
            if ckpt is None and not cfg.backbone.get("weights"):
                from vidgen.checkpoints import resume_checkpoint

                ckpt = resume_checkpoint(run, quiet=True)[0]
                if ckpt is None and cfg.sample.get("ckpt"):  # an evaluate-only run records its weights there
                    ckpt = Path(cfg.sample.ckpt)
                if ckpt is None:
                    raise ConfigError(
                        f"{run}: no checkpoint under checkpoints/ and no backbone.weights; pass ckpt=PATH"
                    )
        else:
            from vidgen.config import load_config

            cfg = load_config(overrides)
            run = Path(cfg.run.dir)
            if not cfg.backbone.get("weights") and ckpt is None:
                raise ConfigError(
                    "exp=NAME mode evaluates released weights: pass backbone.weights=DIR (or ckpt=PATH)"
                )
        suite = suite or ("shapes" if cfg.data.name == "shapes" else "prompts")
        rank, world = rank_and_world()
        made, metrics = run_eval(cfg, run, suite, opts, ckpt, rank, world)
        if (
            run_dir is None and rank == 0 and not (run / "config.yaml").is_file()
        ):  # exp mode: record the config
            from vidgen.runs import _atomic_write_text

            _atomic_write_text(run / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"eval/{suite}: generated {made} video(s) in {run / 'eval' / suite}")
    for key, value in sorted((metrics or {}).items()):
        print(f"  {key} = {value:.4f}")
    return 0
