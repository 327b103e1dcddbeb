"""Shapes-world effect check for Ingredients: does the routing loss put the right ID in each face?

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/ingredients_routing.py [--pre-steps 1500] [--stage1-steps 1000] [--stage2-steps 600] [--seeds 0 1] [--plain-captions]

Clips: the shapes world at 9 x 64 x 64 with only faces (`data.face_prob=1`), the ones with 2 or 3 IDs.
0. The "pretrained CogVideoX-5B-I2V": the tiny I2V twin (`--heads` x `--head-dim` wide) trained
   `--pre-steps` steps as a plain I2V model (`ft_cogvideox`, first frame as image latent). A random
   frozen DiT cannot draw a face, and stage 1 trains only LoRA + face modules (Sec. 3.3).
1. Stage 1 (`ingredients_stage1 preset=smoke` on that backbone) trains `--stage1-steps` steps.
2. From those weights, stage 2 twice with the same seed and budget (`--stage2-steps`): routing loss
   `ce` (Eq. 5, Table 3 "w/ L_route") and `none` ("w/o L_route").
Routing accuracy (Fig. 6) every `--eval-every` stage-2 steps, teacher-forced at t = 250 / 500 / 750
(IngredientsModule.teacher_forced_routing). Right-ID fraction every `--stage1-eval-every` stage-1
steps and after each stage-2 arm: the held-out clips generated from caption + reference faces (DPM,
`--eval-steps`, CFG 6), faces found in the generation and greedily matched to the references (as
IngredientsModule.right_id_regions), with a 95 % bootstrap interval over face regions and the same
generations' chance (references relabelled by every ID shift; `right_id`); beside it the codec
ceiling (ground truth through the codec) and the ground truth against another clip's references;
`clip_ci95`: the interval over held-out clips instead (a clip's regions are correlated), and
`ce_minus_none.clip_ci95` the paired interval of the arms' difference over the same clips.
`--plain-captions` drops the faces' colour words, which name the IDs (see `plain_face_captions`).
`--probe`: after stage 1 and each arm, which input carries the identity and what the router does at
inference (ingredients_probe.py); `--stage1-control`: stage 1 trained on for `--stage2-steps` (fresh
AdamW, as a stage-2 arm); `--stage2-steps 0`: stage 1 only; `--size`, `--min-faces`, `--world-seed`:
the world (`--seeds` change only the model's seed: every seed sees the same clips and split);
`--stage1-routing labels`: stage 1 routes each face token by its ID label (the
`method.stage1_routing` knob; default `router`, the model as built); `--composite none`: a zero image
latent in stages 1 and 2 and at inference (the `method.composite` knob), so the faces reach the DiT
only through the routed features and the canvas cannot carry the identities; `--init t2v`: the
stand-in backbone is a T2V twin (trained as `ft_cogvideox` on `cogvideox-5b`) loaded as Table 2's "T2V
init" loads CogVideoX-5B (`method.init.dit=t2v`: image-latent channels zero and frozen, so the
canvas adds nothing); `--keep DIR`: the backbone, stage 1 and each arm are saved (safetensors +
record) and reused by a later run with the same arguments, so new probes or arms need not retrain
hours of earlier phases.
Writes benchmarks/results/ingredients_routing.json; exits 1 unless ce ends with a higher routing
accuracy than none and than its own start (every seed; no stage 2: 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vidgen.config import load_config
from vidgen.data.sample import collate
from vidgen.data.shapes import COLOURS, NUM_IDENTITIES
from vidgen.data.shapes_face_detect import greedy_match, region_votes
from vidgen.eval.face_metrics import shapes_matched_identity
from vidgen.methods.finetune import FineTuneModule
from vidgen.methods.ingredients.module import IngredientsModule
from vidgen.methods.ingredients.routing_maps import save_png
from vidgen.methods.ingredients.t2v_init import copy_t2v_weights
from vidgen.train import build_datamodule

sys.path.insert(0, str(Path(__file__).parent))
import ingredients_probe  # noqa: E402  (the --probe diagnostics, a sibling file)

RESULTS = Path(__file__).parent / "results" / "ingredients_routing.json"
MIN_PIXELS = 16  # shapes_matched_identity's default


def data_overrides(args, seed: int, run_dir: Path) -> list[str]:
    # --size: frames of size x size pixels; the tiny DiT's learned positional embedding follows (latent / 8)
    size = "" if args.size == 64 else f",sample_height:{args.size // 8},sample_width:{args.size // 8}"
    return [
        "preset=smoke",
        "logger=none",
        f"run.dir={run_dir}",
        f"seed={seed}",
        f"data.num_clips={args.pool}",
        f"data.min_faces={args.min_faces}",
        "data.max_instances=3",
        "data.face_prob=1.0",
        f"+backbone.tiny_config={{num_attention_heads:{args.heads},attention_head_dim:{args.head_dim}{size}}}",
        *([] if args.size == 64 else [f"data.height={args.size}", f"data.width={args.size}"]),
        *([] if args.world_seed == 0 else [f"data.seed={args.world_seed}"]),
    ]


def build(args, seed: int, run_dir: Path, overrides: list[str], cls=IngredientsModule):
    cfg = load_config([*overrides, *data_overrides(args, seed, run_dir)])
    torch.manual_seed(seed)
    module = cls(cfg)
    dm = build_datamodule(cfg, module.spec)
    dm.transform = cls.sample_transform(cfg, dm)
    dm.setup()
    if args.plain_captions:
        plain_face_captions(dm.dataset)
    module.set_null_text(*dm.null_text())
    return module, dm


def plain_face_captions(dataset) -> None:
    """Captions that do not name a face's colour: the world's "a orange face" names ID 0's skin, so the
    caption alone tells the model which identity to paint; Ingredients' captions do not."""
    render = dataset.world.render_clip
    faces = re.compile(rf"\b(?:{'|'.join(COLOURS)}) face\b")

    def strip(text: str) -> str:
        return faces.sub("face", text)

    def render_plain(index: int):
        clip = render(index)
        return dataclasses.replace(
            clip,
            caption=strip(clip.caption),
            prompts=[strip(p) for p in clip.prompts],
            region_captions=[strip(c) for c in clip.region_captions],
        )

    dataset.world.render_clip = render_plain


def stage(args, seed: int, run_dir: Path, n: int, *extra: str):
    over = [
        f"exp=ingredients_stage{n}",
        "method.max_ids=3",
        f"method.eval_steps={args.eval_steps}",
        f"method.stage1_routing={args.stage1_routing}",
        f"method.composite={args.composite}",
        f"method.init.dit={args.init}",
        *extra,
    ]
    return build(args, seed, run_dir, over)


def train(module, samples, steps: int, lr: float, args, seed: int, on_eval=None, every=None) -> list[float]:
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    draw = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(steps):
        if on_eval is not None and step % (every or args.eval_every) == 0:
            on_eval(step)
        idx = torch.randint(0, len(samples), (args.batch,), generator=draw).tolist()
        loss, _ = module.compute_loss(collate([samples[i] for i in idx]), torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    if on_eval is not None:
        on_eval(steps)
    return losses


def load_backbone(module: IngredientsModule, state: dict) -> None:
    """The pretrained DiT weights into the Ingredients model (peft keeps them under ``base_layer``).

    A T2V backbone (``--init t2v``) goes in as ``init_from_t2v`` puts CogVideoX-5B into the I2V
    architecture (``copy_t2v_weights``: the image-latent channels zero, the I2V learned positional
    embedding as initialised)."""
    target = {
        k.replace(".base_layer", ""): v for k, v in module.model.model.state_dict().items() if "lora_" not in k
    }  # shares the model's storage: copies below write into the model
    unused = set(state) - set(target)
    assert not unused, f"pretrained weights not used: {sorted(unused)[:3]}"
    if module.cfg.method.init.dit == "t2v":
        copy_t2v_weights(target, state)
        return
    assert set(target) == set(state), f"DiT weights missing: {sorted(set(target) - set(state))[:3]}"
    with torch.no_grad():
        for key, value in state.items():
            target[key].copy_(value)


# --keep: the arguments each kept phase's weights depend on (a kept phase trained otherwise is refused)
KEEP_BACKBONE = (
    "pool", "clips", "eval_clips", "min_faces", "heads", "head_dim", "size", "world_seed", "plain_captions",
    "batch", "pre_steps", "pre_lr", "init",
)  # fmt: skip
KEEP_STAGE1 = ("stage1_steps", "lr", "eval_steps", "stage1_eval_every", "stage1_routing", "composite")
KEEP_STAGE2 = ("stage2_steps", "eval_every")


def kept(args, seed: int, name: str, fingerprint: dict, make) -> tuple[dict, dict]:
    """``--keep DIR``: one phase's weights and record, trained by ``make()`` once and reused after.

    ``DIR/seed<seed>/<name>.safetensors`` + ``<name>.json`` (written atomically, JSON last); a kept
    phase whose arguments differ from this run's is refused with the file and the differing fields,
    so a long run's backbone and stage 1 survive a later failure and feed new probes or arms."""
    if args.keep is None:
        return make()
    folder = args.keep / f"seed{seed}"
    weights, record_file = folder / f"{name}.safetensors", folder / f"{name}.json"
    fingerprint = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in fingerprint.items()}
    if record_file.exists():
        kept_run = json.loads(record_file.read_text())
        differ = {
            k: (kept_run["fingerprint"].get(k), v)
            for k, v in fingerprint.items()
            if kept_run["fingerprint"].get(k) != v
        }
        if differ:
            raise SystemExit(
                f"{record_file}: the kept {name} was trained with other arguments (kept, asked): {differ}; "
                "pass another --keep folder"
            )
        print(f"seed {seed}: {name} reused from {weights}", flush=True)
        return load_file(str(weights)), kept_run["record"]
    state, record = make()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{name}.safetensors.tmp"
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(weights)
    tmp = folder / f"{name}.json.tmp"
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "record": record}, indent=2) + "\n")
    tmp.replace(record_file)
    return state, record


def bootstrap(right: torch.Tensor, total: torch.Tensor, seed: int, n: int = 2000) -> list[float]:
    """95 % percentile interval of sum(right) / sum(total) over regions drawn with replacement
    (``right`` may be a difference of two scores of the same regions: a paired interval)."""
    if len(total) == 0:
        return [float("nan"), float("nan")]
    idx = torch.randint(0, len(total), (n, len(total)), generator=torch.Generator().manual_seed(seed))
    ratios = right[idx].sum(1).double() / total[idx].sum(1).clamp(min=1).double()
    return [float(ratios.quantile(0.025)), float(ratios.quantile(0.975))]


def clip_bootstrap(arms: list[list[list[int]]], seed: int, n: int = 2000) -> list[list[float]]:
    """95 % intervals over *clips* drawn with replacement (a clip's face regions are correlated, so
    this is wider than the interval over regions): per arm, and with two arms scored on the same
    clips, of their difference (paired: the same clips drawn for both)."""
    counts = torch.tensor(arms, dtype=torch.float64)  # [A, clips, 2]
    idx = torch.randint(
        0, counts.shape[1], (n, counts.shape[1]), generator=torch.Generator().manual_seed(seed)
    )
    drawn = counts[:, idx]  # [A, n, clips, 2]
    ratios = drawn[..., 0].sum(-1) / drawn[..., 1].sum(-1).clamp(min=1)  # [A, n]
    rows = list(ratios) + ([ratios[0] - ratios[1]] if len(arms) == 2 else [])
    return [[float(r.quantile(0.025)), float(r.quantile(0.975))] for r in rows]


def right_id(
    module, dm, batch, indices, seed: int, frames: Path | None = None, refs=None, videos=None
) -> dict:
    """Right-ID fraction of the batch's generations; ``refs``: the reference IDs per clip (default: its own).

    ``chance``: the same generations scored against their references relabelled by each shift
    k -> k + s mod 8 (s = 1..7): same number of references, other IDs — what a generation that
    carries no identity scores (it depends on how many references and colour regions there are);
    ``excess_ci95``: paired interval of fraction - chance over the face regions; ``other_clips``: the
    same generations scored against the references of the clip s places on (s = 1..B-1), a clip-level
    baseline (the bootstrap over regions ignores that a clip's regions are correlated);
    ``above_other_clips``: how many of those the own references beat. ``videos``: score these
    generations instead of generating the batch's."""
    if videos is None:
        module.eval()
        videos = module.generated_clips(batch, dm)  # [B, 3, F, H, W]
        module.train()
    clips = [dm.dataset.clip(i) for i in indices]
    refs = [c.face_ids for c in clips] if refs is None else refs
    right, wrong, total, other, per_clip = [], [], [], [], []
    for i, (video, clip, r) in enumerate(zip(videos, clips, refs)):
        start = len(total)
        for votes in region_votes(video, clip.background, MIN_PIXELS):
            right.append(greedy_match(votes, r))
            shifts = [greedy_match(votes, (r + s) % NUM_IDENTITIES) for s in range(1, NUM_IDENTITIES)]
            wrong.append(torch.stack(shifts).double().mean(0))
            total.append(votes.sum(1))
            # the other clips' references (cyclic clip shifts 1..B-1): a clip-level permutation baseline
            other.append(
                torch.stack([greedy_match(votes, refs[(i + s) % len(refs)]) for s in range(1, len(refs))])
            )
        mine = slice(start, len(total))  # this clip's regions: right and total pixels
        per_clip.append(
            [int(sum(int(x.sum()) for x in right[mine])), int(sum(int(x.sum()) for x in total[mine]))]
        )
    right, wrong, total = torch.cat(right), torch.cat(wrong), torch.cat(total)
    other = torch.cat(other, 1).sum(1).double() / max(int(total.sum()), 1)  # [B - 1]
    if frames is not None:  # rows: generated / ground truth of each clip; columns: every 2nd frame
        truth = torch.stack([c.video for c in clips])
        rows = torch.stack([videos, truth], 1).flatten(0, 1)[:, :, ::2]  # [2B, 3, F/2, H, W]
        grid = rows.permute(0, 3, 2, 4, 1).flatten(2, 3).flatten(0, 1)  # [2B * H, F/2 * W, 3]
        save_png(frames, ((grid + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
    n = max(int(total.sum()), 1)
    return {
        "fraction": int(right.sum()) / n,
        "ci95": bootstrap(right, total, seed),
        "regions": len(total),
        "chance": float(wrong.sum()) / n,
        "excess_ci95": bootstrap(right.double() - wrong, total, seed),
        "other_clips": [round(float(x), 4) for x in other],
        "above_other_clips": int((other < int(right.sum()) / n).sum()),
        "per_clip": per_clip,  # [right, total] face pixels per clip
        "clip_ci95": clip_bootstrap([per_clip], seed)[0],
    }


def probe(args, module, dm, batch, indices, seed: int) -> dict | None:
    """``--probe``: which pathway carries the identity, what the router does at inference (ingredients_probe)."""
    if not args.probe:
        return None
    return ingredients_probe.probe(right_id, module, dm, batch, indices, seed, MIN_PIXELS)


def frame_file(args, name: str) -> Path | None:
    return None if args.frames is None else args.frames / f"{name}.png"


def references_check(dm, indices, seed: int) -> dict:
    """Ground truth through the codec against its own references (ceiling) and another clip's (chance)."""
    codec = dm.codec()
    clips = [dm.dataset.clip(i) for i in indices]
    out = {}
    for name, refs in (("codec_ceiling", clips), ("chance", clips[1:] + clips[:1])):
        pairs = [
            shapes_matched_identity(codec.decode(codec.encode(c.video[None]))[0].clamp(-1, 1), r)
            for c, r in zip(clips, refs)
        ]
        right, total = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
        out[name] = {"fraction": float(right.sum() / total.sum()), "ci95": bootstrap(right, total, seed)}
    return out


def run_seed(args, seed: int, tmp: Path) -> dict:
    backbone_name = "cogvideox-5b-i2v" if args.init == "i2v" else "cogvideox-5b"
    pre, pre_dm = build(
        args, seed, tmp / "pre", ["exp=ft_cogvideox", f"backbone={backbone_name}"], FineTuneModule
    )
    multi = [i for i in range(args.pool) if len(pre_dm.dataset.clip(i).face_ids) >= args.min_faces]
    if len(multi) < args.clips + args.eval_clips:
        raise SystemExit(f"only {len(multi)} of {args.pool} clips have 2-3 IDs; raise --pool")
    train_idx, held_out = multi[: args.clips], multi[args.clips : args.clips + args.eval_clips]

    def pretrain():
        losses = train(pre, [pre_dm.dataset[i] for i in train_idx], args.pre_steps, args.pre_lr, args, seed)
        return pre.model.model.state_dict(), {"loss_first": losses[0], "loss_last": losses[-1]}

    fingerprint = {k: getattr(args, k) for k in KEEP_BACKBONE}
    backbone, pre_record = kept(args, seed, "backbone", fingerprint, pretrain)

    module, dm = stage(args, seed, tmp / "s1", 1)
    samples = [dm.dataset[i] for i in train_idx]
    eval_batch = collate([dm.dataset[i] for i in held_out])

    def stage1_train():
        load_backbone(module, backbone)
        curve = []
        losses = train(
            module,
            samples,
            args.stage1_steps,
            args.lr,
            args,
            seed,
            on_eval=lambda step: curve.append(
                [
                    step,
                    right_id(
                        module, dm, eval_batch, held_out, seed, frame_file(args, f"s{seed}_stage1_{step}")
                    ),
                ]
            ),
            every=args.stage1_eval_every,
        )
        return module.model.state_dict(), {"loss_first": losses[0], "loss_last": losses[-1], "curve": curve}

    fingerprint |= {k: getattr(args, k) for k in KEEP_STAGE1}
    stage1, s1_record = kept(args, seed, "stage1", fingerprint, stage1_train)
    module.model.load_state_dict(stage1)
    s1_curve = s1_record["curve"]
    result = {
        "clips": {"train": train_idx, "held_out": held_out},
        "references": references_check(dm, held_out, seed),
        "pretrain": {"steps": args.pre_steps, **pre_record},
        "stage1": {
            "steps": args.stage1_steps,
            "loss_first": s1_record["loss_first"],
            "loss_last": s1_record["loss_last"],
            "right_id_curve": s1_curve,
            "right_id": s1_curve[-1][1],
            "ablations": ingredients_probe.ablations(right_id, module, dm, eval_batch, held_out, seed)
            if args.ablations
            else None,
            "probe": probe(args, module, dm, eval_batch, held_out, seed),
        },
        "labels": ingredients_probe.label_coverage(samples, [dm.dataset.clip(i) for i in train_idx]),
        "stage2": {},
    }
    print(f"seed {seed}: references {result['references']}; stage 1 right-ID {s1_curve}", flush=True)
    if args.stage2_steps == 0:  # stage 1 only (its probes)
        result["checks"] = {
            "stage1_right_id_above_chance": result["stage1"]["right_id"]["excess_ci95"][0] > 0
        }
        return result
    for kind in ("ce", "none"):
        module, dm = stage(args, seed, tmp / kind, 2, f"method.routing_loss={kind}")
        module.model.load_state_dict(stage1)  # stage 2 from stage 1 (method.init.from in real runs)

        def stage2_train(m=module):
            c = []
            train(
                m,
                samples,
                args.stage2_steps,
                args.lr,
                args,
                seed,
                on_eval=lambda step: c.append([step, m.teacher_forced_routing(eval_batch)]),
            )
            return m.model.state_dict(), {"curve": c}

        arm_print = fingerprint | {k: getattr(args, k) for k in KEEP_STAGE2}
        state, record = kept(args, seed, f"stage2_{kind}", arm_print, stage2_train)
        module.model.load_state_dict(state)
        curve = record["curve"]
        right = right_id(module, dm, eval_batch, held_out, seed, frame_file(args, f"s{seed}_stage2_{kind}"))
        result["stage2"][kind] = {
            "routing_accuracy": curve,
            "right_id": right,
            "ablations": ingredients_probe.ablations(right_id, module, dm, eval_batch, held_out, seed)
            if args.ablations
            else None,
            "probe": probe(args, module, dm, eval_batch, held_out, seed),
        }
        print(
            f"seed {seed} {kind}: routing accuracy {curve[0][1]:.3f} -> {curve[-1][1]:.3f}; right-ID {right}"
        )
    if args.stage1_control:  # stage 1 trained on as long as a stage-2 arm, fresh AdamW as in stage 2
        module, dm = stage(args, seed, tmp / "s1c", 1)
        module.model.load_state_dict(stage1)
        train(module, samples, args.stage2_steps, args.lr, args, seed)
        result["stage1_continued"] = {
            "steps": args.stage2_steps,
            "right_id": right_id(module, dm, eval_batch, held_out, seed),
            "probe": probe(args, module, dm, eval_batch, held_out, seed),
        }
        print(f"seed {seed} stage 1 continued: right-ID {result['stage1_continued']['right_id']}", flush=True)
    ce, none = result["stage2"]["ce"], result["stage2"]["none"]
    paired = clip_bootstrap([ce["right_id"]["per_clip"], none["right_id"]["per_clip"]], seed)
    result["ce_minus_none"] = {
        "right_id": ce["right_id"]["fraction"] - none["right_id"]["fraction"],
        "clip_ci95": paired[2],  # paired over the held-out clips
    }
    result["checks"] = {
        "ce_beats_none_routing": ce["routing_accuracy"][-1][1] > none["routing_accuracy"][-1][1],
        "ce_routing_rises": ce["routing_accuracy"][-1][1] > ce["routing_accuracy"][0][1],
        "stage1_right_id_above_chance": result["stage1"]["right_id"]["excess_ci95"][0] > 0,
        "ce_beats_none_right_id": ce["right_id"]["ci95"][0] > none["right_id"]["ci95"][1],
        "ce_beats_none_right_id_clips": paired[2][0] > 0,
    }
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pre-steps", type=int, default=1500, help="plain I2V training of the tiny backbone")
    p.add_argument("--stage1-steps", type=int, default=1000)
    p.add_argument("--stage2-steps", type=int, default=600)
    p.add_argument("--eval-every", type=int, default=200, help="stage-2 routing accuracy")
    p.add_argument("--stage1-eval-every", type=int, default=250, help="stage-1 right-ID fraction")
    p.add_argument("--clips", type=int, default=24, help="training clips (2-3 IDs each)")
    p.add_argument("--eval-clips", type=int, default=8, help="held-out clips (routing accuracy, right-ID)")
    p.add_argument("--pool", type=int, default=64, help="world clips the 2-3-ID ones are picked from")
    p.add_argument("--eval-steps", type=int, default=10, help="sampler steps of the generations")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--heads", type=int, default=4, help="tiny DiT width = heads x head-dim")
    p.add_argument("--head-dim", type=int, default=32)
    p.add_argument("--pre-lr", type=float, default=1e-3)
    p.add_argument("--lr", type=float, default=1e-3, help="tiny model; the paper's 2e-5 / 3e-5 are for 5B")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--plain-captions", action="store_true", help="captions without the faces' colours")
    p.add_argument("--ablations", action="store_true", help="right-ID without caption / with swapped faces")
    p.add_argument(
        "--probe", action="store_true", help="pathway swaps and inference routing (ingredients_probe)"
    )
    p.add_argument(
        "--stage1-control",
        action="store_true",
        help="also stage 1 continued for --stage2-steps (fresh AdamW)",
    )
    p.add_argument(
        "--world-seed",
        type=int,
        default=0,
        help="data.seed: another world (other clips, split); --seeds: the model's",
    )
    p.add_argument("--size", type=int, default=64, help="frame height = width in pixels (64: 4 x 4 tokens)")
    p.add_argument("--min-faces", type=int, default=2, help="IDs per clip at least (2 or 3; at most 3)")
    p.add_argument(
        "--stage1-routing",
        choices=("router", "labels"),
        default="router",
        help="method.stage1_routing: stage 1 routes face tokens by the router as built, or by their ID labels",
    )
    p.add_argument(
        "--composite",
        choices=("before", "after", "none"),
        default="before",
        help="method.composite: the canvas of reference crops as image latent (before, Table 2), or none "
        "(zero image latent: the routed features are the only way the faces reach the DiT)",
    )
    p.add_argument(
        "--init",
        choices=("i2v", "t2v"),
        default="i2v",
        help="the stand-in backbone: an I2V twin (first frame as image latent; default) or a T2V twin put "
        "into the I2V DiT with zero image channels (method.init.dit=t2v, Table 2 'T2V init')",
    )
    p.add_argument("--frames", type=Path, default=None, help="folder for PNGs of the generations")
    p.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="folder keeping the backbone, stage 1 and each arm (reused when the arguments match)",
    )
    args = p.parse_args(argv)
    start = time.time()
    if args.frames is not None:
        args.frames.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        seeds = {str(s): run_seed(args, s, Path(tmp) / str(s)) for s in args.seeds}
    result = {
        "seeds": seeds,
        "checks": {
            k: all(r["checks"][k] for r in seeds.values()) for k in next(iter(seeds.values()))["checks"]
        },
        "args": {k: str(v) for k, v in vars(args).items()},
        "command": "OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/ingredients_routing.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
        "wall_s": round(time.time() - start, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    tmp_out.replace(args.out)  # atomic
    print(json.dumps(result["checks"]), f"wall {result['wall_s']} s -> {args.out}")
    return result


if __name__ == "__main__":
    res = main()
    checks = res["checks"]
    sys.exit(0 if checks.get("ce_beats_none_routing", True) and checks.get("ce_routing_rises", True) else 1)
