"""`vidgen demo [--out DIR] [overrides...]`: train, sample, judge, and write `<out>/index.html`.

Trains `exp=jdm_cogvideox preset=demo` in `<out>/run` (a normal run folder: running the demo again
resumes it, so a finished demo only re-samples), generates a clip and its mask from the regional
caption of every clip of the demo set (`generate.prompt_of`), judges them with the shapes world's
exact detector beside two references (the untrained model, and the ground truth through the
codec: the ceiling), prints the numbers and writes `<out>/scores.json` and `<out>/index.html`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from vidgen.config import load_config
from vidgen.errors import ConfigError, VidgenError

DEMO = ["exp=jdm_cogvideox", "preset=demo"]
DEFAULT_OUT = Path("outputs/demo")
# Below this layout score the clips do not show the captioned shapes where they belong
# (benchmarks/README.md, "make demo": measured numbers and this floor).
BOX_IOU_FLOOR = 0.5


def _atomic_write(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(data)
    tmp.replace(path)


def demo_config(out: Path, overrides: list[str]) -> DictConfig:
    from vidgen.train import resolve_micro_batch

    cfg = resolve_micro_batch(load_config([*DEMO, f"run.dir={out / 'run'}", *overrides]))
    if cfg.data.name != "shapes":
        raise ConfigError(
            f"data={cfg.data.name}: the demo judges its clips against the shapes world; use data=shapes"
        )
    return cfg


def trained_module(cfg: DictConfig, run_dir: Path):
    from vidgen.methods import method_class
    from vidgen.runs import last_checkpoint
    from vidgen.sampling import load_weights

    ckpt = last_checkpoint(run_dir)
    if ckpt is None:
        raise ConfigError(f"{run_dir}: training wrote no checkpoint; rerun `vidgen demo`")
    module = method_class(cfg.method.name)(
        OmegaConf.merge(cfg, {"backbone": {"init": "random", "weights": None}})
    )
    load_weights(module, ckpt)
    return module.eval()


def untrained_module(cfg: DictConfig):
    """The same model before training (random init from the run's seed; JDM's added channels start at zero)."""
    from vidgen.methods import method_class

    torch.manual_seed(int(cfg.seed))
    return method_class(cfg.method.name)(OmegaConf.merge(cfg, {"backbone": {"init": "random"}})).eval()


def judge_model(module, datamodule, clips, cfg: DictConfig):
    from vidgen.demo.generate import generate_from_captions
    from vidgen.demo.judge import judge_clip

    s = cfg.sample
    videos, masks = generate_from_captions(
        module,
        datamodule,
        clips,
        steps=int(s.steps),
        guidance=str(s.guidance),
        guidance_scale=float(s.guidance_scale),
        seed=int(s.seed),
    )
    return videos, masks, [judge_clip(v, m, c) for v, m, c in zip(videos, masks, clips)]


def codec_ceiling(datamodule, clips):
    """The ground truth after the stand-in VAE (encode, decode), judged like a generation."""
    from vidgen.demo.judge import judge_clip
    from vidgen.eval.mask_metrics import binarize

    codec = datamodule.codec()
    scores = []
    for c in clips:
        video = codec.decode(codec.encode(c.video[None]))[0].clamp(-1, 1)
        truth = c.masks.any(dim=0).float() * 2 - 1  # [F, H, W] as a -1/+1 video, like JDM's mask signal
        mask = binarize(codec.decode(codec.encode(truth[None, None].expand(1, 3, -1, -1, -1))))[0]
        scores.append(judge_clip(video, mask, c))
    return scores


def run_demo(out: Path, overrides: list[str]) -> dict:
    """Train (or resume), generate, judge; write `<out>/scores.json` and `<out>/index.html`; return the scores."""
    from vidgen.backbones import get_backbone
    from vidgen.demo.generate import prompt_of
    from vidgen.demo.judge import summarise
    from vidgen.train import build_datamodule, train

    start = time.perf_counter()
    cfg = demo_config(out, overrides)
    run_dir = Path(cfg.run.dir)
    print(
        f"training JDM (tiny CogVideoX) for {int(cfg.train.max_steps)} steps on {int(cfg.data.num_clips)} "
        f"shapes-world clips in {run_dir}"
    )
    train(cfg)
    trained_s = time.perf_counter() - start
    datamodule = build_datamodule(cfg, get_backbone(cfg.backbone.name), micro_batch_size=1)
    clips = [datamodule.world.render_clip(i) for i in range(int(cfg.data.num_clips))]
    print(
        f"sampling {len(clips)} clips from their regional captions ({int(cfg.sample.steps)} steps, "
        f"{cfg.sample.guidance} {float(cfg.sample.guidance_scale):g})"
    )
    videos, masks, scores = judge_model(trained_module(cfg, run_dir), datamodule, clips, cfg)
    summary = {
        "trained": summarise(scores),
        "untrained": summarise(judge_model(untrained_module(cfg), datamodule, clips, cfg)[2]),
        "codec ceiling": summarise(codec_ceiling(datamodule, clips)),
    }
    setting = " ".join([*DEMO, *overrides])
    page = demo_page(cfg, setting, run_dir, clips, (videos, masks, scores), summary, trained_s)
    result = {
        "setting": setting,
        "run_dir": str(run_dir),
        "train_steps": int(cfg.train.max_steps),
        "clips": [
            {"prompt": prompt_of(c), "caption": s.caption, "box_iou": s.box_iou, "mask_iou": s.mask_iou}
            for s, c in zip(scores, clips)
        ],
        **summary,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    _atomic_write(out / "scores.json", json.dumps(result, indent=2) + "\n")
    _atomic_write(out / "index.html", page)
    return result


def demo_page(
    cfg: DictConfig, setting: str, run_dir: Path, clips, generated, summary: dict, trained_s: float
) -> str:
    from vidgen.demo.generate import prompt_of
    from vidgen.demo.page import ClipView, loss_curve_png, render_page
    from vidgen.demo.table3 import table3_html
    from vidgen.runs import read_metrics

    views = [
        ClipView(s, prompt_of(c), v, m, c.video, c.masks.any(dim=0)) for v, m, s, c in zip(*generated, clips)
    ]
    intro = (
        f"JDM (joint video + mask denoising) on a tiny CogVideoX, trained {int(cfg.train.max_steps)} steps on "
        f"{len(clips)} shapes-world clips (<code>vidgen demo</code> = <code>vidgen train {setting}</code>), "
        "then sampled from each clip's regional caption, the prompt JDM trains its joint video + mask output "
        "with. Demo scale: the shapes world is the data, nothing is pretrained."
    )
    return render_page(
        title="vidgen demo: JDM learns the shapes world",
        intro=intro,
        views=views,
        scores={
            "trained (this run)": summary["trained"],
            "untrained (same model at step 0)": summary["untrained"],
            "codec ceiling (ground truth encoded and decoded)": summary["codec ceiling"],
        },
        loss_png=loss_curve_png(read_metrics(run_dir)),
        table3_html=table3_html(summary["trained"], setting, str(run_dir), int(cfg.train.max_steps)),
        footer=f"run folder: {run_dir} · training {trained_s:.0f} s · written {time.strftime('%Y-%m-%d %H:%M:%S')}",
    )


def report(result: dict, out: Path) -> str:
    cols = ("box_iou", "mask_iou", "mask_f1", "mask_pixel_acc")
    lines = [f"{'':18}" + "".join(f"{c:>16}" for c in cols)]
    for row in ("trained", "untrained", "codec ceiling"):
        lines.append(f"{row:18}" + "".join(f"{result[row][c]:16.3f}" for c in cols))
    box = result["trained"]["box_iou"]
    verdict = (
        f"learned: the detector finds the captioned shapes (box IoU {box:.3f} >= {BOX_IOU_FLOOR})"
        if box >= BOX_IOU_FLOOR
        else f"not learned enough (box IoU {box:.3f} < {BOX_IOU_FLOOR}): train longer, e.g. train.max_steps=4000"
    )
    return "\n".join(
        [*lines, verdict, f"wrote {out / 'index.html'} (open it in a browser) in {result['wall_s']:.0f} s"]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vidgen demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="page and run folder (default: outputs/demo)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides on top of exp=jdm_cogvideox preset=demo"
    )
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    from vidgen.train import quiet_libraries

    quiet_libraries()
    try:
        if args.out.exists() and not args.out.is_dir():
            raise ConfigError(f"--out {args.out} is a file; give a folder for the page and the run")
        args.out.mkdir(parents=True, exist_ok=True)
        result = run_demo(args.out, list(args.overrides))
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(report(result, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
