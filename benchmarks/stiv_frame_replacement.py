"""Shapes-world effects of STIV part 2: frame replacement, one model for T2V and TI2V (Table 6), JIT-CFG motion (Table 7).

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/stiv_frame_replacement.py [--steps 2000]

1. Three tiny STIV-XL twins (`preset=smoke`: 4 x 64 x 64 clips, 4-channel 8x8-cell latents) train
   `--steps` steps each from the same random init (checked), seed and data: `stiv_t2v_xl` (T2V),
   `stiv_ti2v_xl` (TI2V frame replacement, no image dropout, text CFG: Table 6 / 7 "STIV") and
   `stiv_ti2v_xl_jit` (image dropout 8 %, JIT-CFG: "STIV-JIT"). The world is one flat shape per clip
   and no faces, so the whole caption fits the tiny text length (16 tokens) and the exact detector
   applies (`vidgen.data.shapes_faithfulness`).
2. T2V (Table 6 direction): every model samples the first `--eval-samples` training captions with no
   image; the rate of text-faithful clips (captioned colour present, no uncaptioned colour, the
   captioned background dominant) and each part. Baselines: the untrained init (same sampler) and the
   data's own codec round trip (the ceiling the detector allows).
3. TI2V: the frame-replacement models sample the same captions from each clip's first frame: frame 0
   equal to the condition latent bit for bit, its PSNR against the image and the codec round trip,
   and the faithful rate of the later frames.
4. Motion (Table 7 direction): mean displacement (pixels / frame) of the captioned shape's colour
   centroid over consecutive frames where it is detected, and the mean absolute change of the pixels
   between consecutive frames, in the TI2V samples of "STIV" and "STIV-JIT" (and T2V samples of all);
   the data's round trip and the untrained init for reference.
Writes benchmarks/results/stiv_frame_replacement.json; exits 1 unless frame 0 is the condition bit for
bit in every TI2V sample. The Table 6 / 7 directions are recorded as found, not enforced.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

from vidgen.benchmark_runs import load_for_eval, machine, smoke_overrides, train_run, write_record

RESULTS = Path(__file__).parent / "results" / "stiv_frame_replacement.json"
ARMS = {"t2v": "stiv_t2v_xl", "stiv": "stiv_ti2v_xl", "stiv_jit": "stiv_ti2v_xl_jit"}


def overrides(args, exp: str, run_dir: Path) -> list[str]:
    return [
        f"exp={exp}",
        "data=shapes",
        "backbone.init=random",
        "data.max_instances=1",  # the caption of one instance fits the tiny text length (16 tokens)
        "data.face_prob=0",
        "data.min_faces=0",
        f"train.global_batch_size={args.batch}",
        *smoke_overrides(run_dir, args.steps, args.lr, args.num_clips, args.seed),
        # wider than the registry's 32-wide (unit-test) tiny DiT: on CPU a step is dominated by
        # per-parameter overhead, so width costs little; depth, heads of 32 and the method are unchanged
        f"+backbone.tiny_config={{hidden_size: {args.width}, num_heads: {args.width // 32}}}",
        # A.1: 400k MaskDiT steps then 100k unmasked of 500k; the same 80 / 20 split of a short run
        f"method.mask_steps={round(0.8 * args.steps)}",
        # STIV trains with EMA (0.9999 over 450k steps, A.1); the same averaging scaled to a short run
        f"train.ema.enabled={args.ema_decay > 0}",
        f"train.ema.decay={args.ema_decay}",
    ]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [-1, 1] tensors (peak-to-peak 2)."""
    mse = (a.float() - b.float()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def mean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return round(sum(xs) / len(xs), 3) if xs else float("nan")


def clip_scores(videos: torch.Tensor, clips: list, frames: slice = slice(None)) -> dict:
    """Faithful rate (and its parts) and motion of `videos` [B, 3, F, H, W] against `clips`."""
    from vidgen.data.shapes_faithfulness import displacement, faithfulness

    rows = [faithfulness(v[:, frames], c) for v, c in zip(videos, clips)]
    rate = lambda key: round(sum(getattr(r, key) for r in rows) / len(rows), 3)  # noqa: E731
    change = (videos[:, :, 1:] - videos[:, :, :-1]).abs().mean().item()
    return {
        "faithful_rate": rate("faithful"),
        "colour_found_rate": rate("colours_found"),
        "no_stray_colour_rate": rate("no_stray"),
        "background_rate": rate("background_ok"),
        "motion_px_per_frame": round(displacement([c for r in rows for c in r.centres]), 3),
        "frame_change": round(change, 4),
    }


def evaluate(args, exp: str, ckpt: Path | None, ti2v: bool) -> dict:
    """T2V (and, for the frame-replacement arms, TI2V) scores of `exp` with `ckpt`'s weights (None: the
    seeded init every arm trains from)."""
    import lightning as L

    L.seed_everything(args.seed, verbose=False)
    _, module, dm = load_for_eval(overrides(args, exp, Path(tempfile.gettempdir()) / "unused"), ckpt)
    n = min(args.eval_samples, len(dm.dataset))
    samples = [dm.dataset[i] for i in range(n)]
    clips = [dm.dataset.clip(i) for i in range(n)]
    codec = dm.codec()
    embeds = torch.stack([s.text_embeds for s in samples])
    mask = torch.stack([s.text_mask for s in samples])
    null_e, null_m = module.null_text_embeds[None], module.null_text_mask[None]
    shape = tuple(samples[0].latents.shape)
    gen = dict(steps=args.eval_steps, guidance_scale=args.scale, seed=args.seed)
    t2v = module.decode_sample(module.generate(embeds, mask, null_e, null_m, shape, **gen), codec)
    result = {"t2v": clip_scores(t2v, clips)}
    if ti2v:
        image = torch.stack([s.latents[:, :1] for s in samples])  # [B, C, 1, H', W']
        latents = module.generate(embeds, mask, null_e, null_m, shape, image_latents=image, **gen)
        videos = module.decode_sample(latents, codec)
        round_trip = codec.decode(image).clamp(-1, 1)
        result["ti2v"] = clip_scores(videos, clips) | {
            "frame0_exact": bool(torch.equal(latents[:, :, :1], image)),
            "frame0_psnr_vs_image_db": mean([psnr(v[:, 0], c.video[:, 0]) for v, c in zip(videos, clips)]),
            "frame0_psnr_vs_codec_db": psnr(videos[:, :, 0], round_trip[:, :, 0]),
            "later_frames_faithful_rate": clip_scores(videos, clips, slice(1, None))["faithful_rate"],
        }
    return result


def data_scores(args) -> dict:
    """The detector on the training clips' own codec round trip: the ceiling of every rate."""
    _, module, dm = load_for_eval(overrides(args, ARMS["t2v"], Path(tempfile.gettempdir()) / "unused"), None)
    n = min(args.eval_samples, len(dm.dataset))
    clips = [dm.dataset.clip(i) for i in range(n)]
    latents = torch.stack([dm.dataset[i].latents for i in range(n)])
    return {
        "round_trip": clip_scores(module.decode_sample(latents, dm.codec()), clips),
        "pixels": clip_scores(torch.stack([c.video for c in clips]), clips),
    }


def same_init(args) -> bool:
    """Every arm's module, built as training builds it (seeded), has the T2V arm's initial weights."""
    import lightning as L

    states = []
    for exp in ARMS.values():
        L.seed_everything(args.seed, verbose=False)
        states.append(
            load_for_eval(overrides(args, exp, Path(tempfile.gettempdir()) / "unused"), None)[1].state_dict()
        )
    return all(
        s.keys() == states[0].keys() and all(torch.equal(s[k], states[0][k]) for k in s) for s in states
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=128, help="tiny DiT hidden size (heads of 32)")
    parser.add_argument("--ema-decay", type=float, default=0.995, help="0: no EMA")
    parser.add_argument("--num-clips", type=int, default=16)
    parser.add_argument("--eval-samples", type=int, default=16)
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--scale", type=float, default=7.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    start, wall = time.time(), {}
    results = {"data": data_scores(args), "untrained": evaluate(args, ARMS["stiv_jit"], None, ti2v=True)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, exp in ARMS.items():
            t0 = time.time()
            run = train_run(overrides(args, exp, Path(tmp) / name))
            results[name] = evaluate(args, exp, run / "checkpoints" / "last.ckpt", ti2v=name != "t2v")
            wall[name] = round(time.time() - t0, 1)
    exact = all(results[a]["ti2v"]["frame0_exact"] for a in ("stiv", "stiv_jit"))
    t2v = {a: results[a]["t2v"]["faithful_rate"] for a in ARMS}
    motion = {a: results[a]["ti2v"]["motion_px_per_frame"] for a in ("stiv", "stiv_jit")}
    record = {
        "command": "benchmarks/stiv_frame_replacement.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "args": vars(args) | {"out": str(args.out)},
        "same_init": same_init(args),
        "results": results,
        "frame0_exact": exact,
        "t2v_faithful_rate": t2v,
        "ti2v_motion_px_per_frame": motion,
        # Table 6: STIV-JIT's T2V close to the T2V model's, STIV's markedly worse than both
        "table6_direction_shown": t2v["stiv_jit"] > t2v["stiv"] and t2v["t2v"] > t2v["stiv"],
        # Table 7: without image dropout / JIT-CFG the TI2V clips move less
        "table7_direction_shown": motion["stiv_jit"] > motion["stiv"],
        "wall_s": round(time.time() - start, 1),
        "wall_s_per_arm": wall,
        **machine(),
    }
    write_record(args.out, record)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
