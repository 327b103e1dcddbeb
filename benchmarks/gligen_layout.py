"""Shapes-world effect check for GLIGEN: do gated grounding blocks beat plain fine-tuning on layout?

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/gligen_layout.py [--visual-position-arm] [--keep DIR]

Defaults are the recorded setting (benchmarks/results/gligen_layout_batch16_4096clips.json, ~45 min on
one core): batch 16, 4,096 training clips, 4,000 + 3,000 steps at lr 1e-3, 64 held-out images.
1. `ft_sd15 preset=smoke` (tiny sd1.5 U-Net, 1 x 64 x 64 shapes images, `--num-clips` clips of world
   `--seed`, global batch `--batch`) is trained `--pre-steps` steps from random init and exported
   (`vidgen export`): the "pretrained" tiny backbone every arm starts from.
2. With the same budget of `--steps` further steps from that backbone: `ft_sd15` (the whole U-Net
   fine-tuned) and `gligen_sd15` (frozen U-Net; gated self-attention + grounding token net;
   `method.phrase_pool=mean`: the shapes world's word embedder has no pooled EOS token, and its last
   word is the motion, not the colour the detector looks for). `--visual-position-arm` adds a GLIGEN
   arm with `method.visual_position=sincos` (a knob, not GLIGEN: 2D positions on the gated attention's
   visual tokens, methods/gligen/position.py).
3. Each model generates `--eval-samples` images of held-out layouts: the first clips of the world
   `data.seed=--eval-seed` (same codec and word embedder, scenes never trained on; `--eval-seed -1`
   scores the training clips instead, which only measures how well a caption recalls a memorised
   layout). `--eval-steps` DDIM steps, CFG 7.5; GLIGEN with scheduled sampling tau 0.3, and the same
   weights with tau 1 (grounded at every step). Every instance is found by its prompt's colour with
   the shapes world's exact detector and scored (a) by box IoU against its ground-truth box (mean and
   area-weighted, vidgen.eval.instance_metrics; per arm minus `ft_sd15` on the same instances with a
   bootstrap 95 % interval) and (b) by COCO box AP and AP50 (pycocotools COCOeval, one class per
   colour, score = the share of the detected box its colour fills). The fine-tuned and pretrained
   backbones are scored through GLIGENModule with zero gates (the plain backbone bit for bit) so all
   arms sample through the same code.
4. Grounding probe (teacher-forced, no sampling): GLIGEN's epsilon MSE on the training clips and on
   the eval clips, 8 noise draws each, with the true grounding, with every slot null, with another
   clip's boxes, with the phrases rotated among a clip's instances, and the frozen backbone alone;
   each with the clip's caption and again with the null caption (``null_caption/...``: CFG's
   unconditional branch and the caption-dropped half of GLIGEN's training, where the grounding is the
   only description of the scene). If the boxes carry information, another clip's boxes raise the loss.
5. Position read-out: how well each gated block's input tokens say where they are (R^2 of a linear
   read-out of (row, column), `position_decodability`). GLIGEN's attention can route a box to the
   tokens it covers only as far as they do.
`--probe-only` trains only the GLIGEN arm(s) and runs the probe (no fine-tuning arm, no sampling).
`--probe-every N`: the GLIGEN arms keep a checkpoint every N steps and the held-out probe also runs on
each (``eval_clips_by_step``): when, in training, the boxes start to be read.
`--keep DIR` keeps the run folders in DIR and reuses the completed ones (deterministic in their seeds).
`--twin sd_levels`: a stand-in U-Net with SD1.5's level layout (vidgen.benchmark_runs.SD15_TWINS);
`--background-ramp A`: the world's backgrounds ramp with position (data.background_ramp), so a
denoiser has a use for where a token is.
Writes benchmarks/results/gligen_layout.json (``--out``); exits 1 unless GLIGEN (tau 0.3) beats ft_sd15
on layout IoU (interval above 0) and on box AP50.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor

from vidgen.benchmark_runs import (
    SD15_TWINS,
    exported,
    generate_clips,
    heldout_data,
    load_for_eval,
    machine,
    paired_difference,
    smoke_overrides,
    stand_in_overrides,
    teacher_forced_mse,
    trained,
    write_record,
)

RESULTS = Path(__file__).parent / "results" / "gligen_layout.json"


def box_ap(videos, samples) -> tuple[float, float]:
    """COCO box mAP@[.5:.95] and AP50 (pycocotools COCOeval; torchmetrics' MeanAveragePrecision would need
    torchvision) of each prompt's detection against its ground-truth box, one image per frame."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from vidgen.data.shapes_segment import colour_of, detect_prompt

    images, gts, dets, labels = [], [], [], {}
    for video, sample in zip(videos, samples):
        inst = sample.instances
        h, w = video.shape[-2:]
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        for f in range(min(video.shape[1], inst.boxes.shape[1])):
            image_id = len(images) + 1
            images.append({"id": image_id, "width": w, "height": h})
            for k, prompt in enumerate(inst.prompts):
                label = labels.setdefault(str(colour_of(prompt)), len(labels) + 1)
                if inst.visible[k, f]:
                    x0, y0, x1, y1 = (inst.boxes[k, f].float() * scale).tolist()
                    gts.append(
                        {
                            "id": len(gts) + 1,
                            "image_id": image_id,
                            "category_id": label,
                            "iscrowd": 0,
                            "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "area": (x1 - x0) * (y1 - y0),
                        }
                    )
                mask, boxes, visible = detect_prompt(video[:, f : f + 1].float().clamp(-1, 1), prompt)
                if visible[0]:
                    x0, y0, x1, y1 = (boxes[0].float() * scale).tolist()
                    r0, r1, c0, c1 = (
                        int(y0),
                        max(int(y0) + 1, round(y1)),
                        int(x0),
                        max(int(x0) + 1, round(x1)),
                    )
                    fill = float(mask[0, r0:r1, c0:c1].float().mean())  # score: the share its colour fills
                    dets.append(
                        {
                            "image_id": image_id,
                            "category_id": label,
                            "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "score": fill,
                        }
                    )
    if not gts or not dets:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO()
        coco.dataset = {
            "images": images,
            "annotations": gts,
            "categories": [{"id": i} for i in labels.values()],
        }
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(max(ev.stats[0], 0.0)), float(max(ev.stats[1], 0.0))


def evaluate(
    args, overrides: list[str], ckpt: Path | None, per_instance: dict, name: str
) -> dict[str, float]:
    """Scores of ``name``'s generations; its per-instance layout IoUs go to ``per_instance[name]``."""
    from vidgen.eval.instance_metrics import shapes_layout_metrics, shapes_layout_records

    data = heldout_data(args.eval_seed, args.eval_samples)
    videos, samples = generate_clips([*overrides, *data], ckpt, args.eval_samples, args.eval_steps)
    per_instance[name] = shapes_layout_records(videos, samples)[0]
    ap, ap50 = box_ap(videos, samples)
    return {**shapes_layout_metrics(videos, samples), "box_ap": ap, "box_ap50": ap50}


def grounding_probe(overrides: list[str], ckpt: Path, n: int, draws: int = 8) -> dict[str, float]:
    """Teacher-forced epsilon MSE of a trained GLIGEN on the first ``n`` clips of ``overrides``' data,
    ``draws`` (noise, t) per clip shared by every variant of the grounding."""
    from vidgen.data.sample import collate

    _, module, dm = load_for_eval(overrides, ckpt)
    batch = collate([dm.dataset[i] for i in range(min(n, len(dm.dataset)))])
    g = module.grounding(batch, batch.latents.shape[2])
    captions = {
        "": (batch.text_embeds, batch.text_mask),
        # CFG's unconditional branch and GLIGEN's caption-dropped half of training: the boxes and
        # phrases are the only description of the scene
        "null_caption/": (
            module.null_text_embeds.expand(len(batch), -1, -1),
            module.null_text_mask.expand(len(batch), -1),
        ),
    }
    phrases = g["grounding_phrases"].clone()
    for i, k in enumerate(g["grounding_masks"][:, 0].sum(-1).long().tolist()):
        phrases[i, :, :k] = phrases[i, :, :k].roll(1, dims=1)  # each box gets its neighbour's phrase
    variants = {
        "true": g,
        "null_tokens": {**g, "grounding_masks": torch.zeros_like(g["grounding_masks"])},
        "boxes_of_another_clip": {**g, "grounding_boxes": g["grounding_boxes"].roll(1, dims=0)},
        "phrases_rotated": {**g, "grounding_phrases": phrases},
        "backbone_alone": {},
    }
    variants = {name: (module.model, v) for name, v in variants.items()}
    return teacher_forced_mse(module.objective, batch, variants, draws, captions)


def position_decodability(overrides: list[str], n: int = 64, timesteps=(100, 500, 900)) -> dict:
    """How well each gated block's visual tokens say where they are: R^2 of a ridge-regressed linear
    read-out of a token's (row, column) from its features (fit on half of ``n`` clips' tokens, scored
    on the other half), at the input of every fuser of the zero-gate model (the backbone's features).
    GLIGEN's visual tokens get no positional encoding of their own, so a token can attend to the
    grounding token of the box that covers it only as far as its features encode its position."""
    from diffusers.models.attention import GatedSelfAttentionDense

    from vidgen.data.sample import collate

    _, module, dm = load_for_eval(overrides, None)
    batch = collate([dm.dataset[i] for i in range(min(n, len(dm.dataset)))])
    g = module.grounding(batch, batch.latents.shape[2])
    fusers = {name: m for name, m in module.model.named_modules() if isinstance(m, GatedSelfAttentionDense)}
    feats: dict[str, Tensor] = {}
    hooks = [
        f.register_forward_hook(lambda m, inp, out, name=name: feats.__setitem__(name, inp[0]))
        for name, f in fusers.items()
    ]
    gen = torch.Generator().manual_seed(0)
    out: dict[str, dict] = {}
    for tv in timesteps:
        x0 = batch.latents
        t = torch.full((x0.shape[0],), tv)
        x_t = module.objective.add_noise(x0, torch.randn(x0.shape, generator=gen), t)
        with torch.no_grad():
            module.model(x_t, t, batch.text_embeds, text_mask=batch.text_mask, **g)
        for name, x in feats.items():
            b, tokens, d = x.shape
            side = round(tokens**0.5)
            rows = torch.arange(side).repeat_interleave(side).float() / max(side - 1, 1)
            cols = torch.arange(side).repeat(side).float() / max(side - 1, 1)
            y = torch.stack([rows, cols], -1).repeat(b, 1)
            design = torch.cat([x.reshape(-1, d), torch.ones(b * tokens, 1)], 1)
            half = (b // 2) * tokens
            fit, test = slice(0, half), slice(half, None)
            w = torch.linalg.solve(
                design[fit].T @ design[fit] + 1e-2 * torch.eye(d + 1), design[fit].T @ y[fit]
            )
            resid = ((design[test] @ w - y[test]) ** 2).sum(0)
            r2 = 1 - resid / ((y[test] - y[test].mean(0)) ** 2).sum(0)
            out.setdefault(name, {"tokens": tokens})[f"t{tv}_r2_row_col"] = [round(float(v), 3) for v in r2]
    for h in hooks:
        h.remove()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pre-steps", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=16, help="global batch of every training run")
    parser.add_argument("--num-clips", type=int, default=4096)
    parser.add_argument("--eval-samples", type=int, default=64)
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--eval-seed", type=int, default=1000, help="world of the eval clips; -1: the training clips"
    )
    parser.add_argument(
        "--visual-position-arm",
        action="store_true",
        help="also train GLIGEN with method.visual_position=sincos (a knob, not GLIGEN)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="run folders here (not a temp dir); completed runs are reused"
    )
    parser.add_argument(
        "--probe-only", action="store_true", help="train the GLIGEN arm(s) and run the grounding probe only"
    )
    parser.add_argument(
        "--twin",
        choices=sorted(SD15_TWINS),
        default="tiny",
        help="the stand-in backbone: the registry's tiny sd1.5 or sd_levels (SD1.5's level layout, miniature)",
    )
    parser.add_argument(
        "--background-ramp",
        type=float,
        default=0.0,
        help="data.background_ramp of every run and of the eval world (0: the flat shapes world)",
    )
    parser.add_argument(
        "--probe-every",
        type=int,
        default=0,
        help="GLIGEN arms checkpoint every N steps; the held-out probe runs on each (0: the last only)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    # the stand-in backbone and world, on every run, evaluation and probe
    stand_in = stand_in_overrides(args.twin, args.background_ramp)
    start = time.time()
    keep = args.keep is not None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or Path(tmp)

        def smoke(name: str, steps: int, every: int = 0) -> list[str]:
            batch = [f"train.global_batch_size={args.batch}"]
            return [*smoke_overrides(tmp / name, steps, args.lr, args.num_clips, args.seed, every), *batch]

        pre = trained(["exp=ft_sd15", *smoke("pre", args.pre_steps), *stand_in], tmp / "pre", keep)
        base = [f"backbone.weights={exported(pre, tmp / 'pretrained', keep)}", *stand_in]
        results, ious = {}, {}
        if not args.probe_only:
            ft = trained(["exp=ft_sd15", *smoke("ft", args.steps), *base], tmp / "ft", keep)
            ft_weights = exported(ft, tmp / "ft_export", keep)
            plain = [
                "exp=gligen_sd15",
                "preset=smoke",
                "method.phrase_pool=mean",
                f"data.num_clips={args.num_clips}",
            ]
            results["pretrained_backbone"] = evaluate(
                args, [*plain, *base], None, ious, "pretrained_backbone"
            )
            results["ft_sd15"] = evaluate(
                args, [*plain, f"backbone.weights={ft_weights}", *stand_in], None, ious, "ft_sd15"
            )
        probe = {}
        arms = {"gligen_sd15": []}
        if args.visual_position_arm:
            arms["gligen_sd15_sincos"] = ["method.visual_position=sincos"]
        for name, extra in arms.items():
            ov = [
                "exp=gligen_sd15",
                *smoke(name, args.steps, args.probe_every),
                *base,
                "method.phrase_pool=mean",
                *extra,
            ]
            ckpt = trained(ov, tmp / name, keep) / "checkpoints" / "last.ckpt"
            if not args.probe_only:
                results[name] = evaluate(args, ov, ckpt, ious, name)
                # the same weights grounded at every step (scheduled sampling off: tau = 1)
                tau1 = [*ov, "method.scheduled_tau=1.0"]
                results[f"{name}_tau1"] = evaluate(args, tau1, ckpt, ious, f"{name}_tau1")
            probe_ov = [
                "exp=gligen_sd15",
                "preset=smoke",
                "logger=none",
                "method.phrase_pool=mean",
                *base,
                *extra,
            ]
            held_out = [*probe_ov, *heldout_data(args.eval_seed, args.eval_samples)]
            probe[name] = {
                "train_clips": grounding_probe(
                    [*probe_ov, f"data.num_clips={args.num_clips}"], ckpt, args.eval_samples
                ),
                "eval_clips": grounding_probe(held_out, ckpt, args.eval_samples),
            }
            if args.probe_every:
                steps = range(args.probe_every, args.steps, args.probe_every)
                missing = [c for step in steps if not (c := ckpt.parent / f"step={step}.ckpt").is_file()]
                if missing:  # a --keep run trained without --probe-every
                    raise SystemExit(
                        f"--probe-every {args.probe_every}: no checkpoint {missing[0]}; retrain {ckpt.parent.parent} with it"
                    )
                probe[name]["eval_clips_by_step"] = {
                    step: grounding_probe(held_out, ckpt.parent / f"step={step}.ckpt", args.eval_samples)
                    for step in steps
                }
        positions = position_decodability(
            ["exp=gligen_sd15", "preset=smoke", "logger=none", "method.phrase_pool=mean", *base]
        )
    versus_ft = {
        name: paired_difference(iou, ious["ft_sd15"])
        for name, iou in ious.items()
        if name != "ft_sd15" and "ft_sd15" in ious
    }

    def beats_ft(name: str) -> bool:
        r, f = results.get(name), results.get("ft_sd15")
        return bool(r and f and versus_ft[name]["ci95"][0] > 0 and r["box_ap50"] > f["box_ap50"])

    ok = beats_ft("gligen_sd15")
    record = {
        "args": vars(args) | {"out": str(args.out), "keep": str(args.keep)},
        "results": results,
        # per-instance layout IoU of each GLIGEN arm minus plain fine-tuning's, same instances
        "layout_iou_vs_ft_sd15": versus_ft,
        "grounding_probe_eps_mse": probe,
        "visual_token_position_r2": positions,
        "effect_shown": ok,
        "effect_shown_by_arm": {name: beats_ft(name) for name in versus_ft},
        "wall_s": round(time.time() - start, 1),
        **machine(),
    }
    write_record(args.out, record)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
