"""`vidgen jdm combos|cmi|signals|eval|filter`: JDM's data tools (see docs/data.md, "JDM data").

    vidgen jdm combos --data ROOT --vae PATH --text-encoder PATH --backbone cogvideox-2b [--k 4]
                      [--signal mask|hed|depth] [--seed 0] [--max-objects N] [--out ROOT2]
    vidgen jdm cmi    --data ROOT --clip PATH (--frames DIR | --videos DIR --annotations FILE |
                      --vae PATH --backbone NAME) [--out ROOT/jdm_cmi.json] [--negatives 1024]
                      [--critic ratio|exp] [--temperature 0.07] [--overwrite]
    vidgen jdm signals --data ROOT --videos DIR --annotations FILE [--hed DIR] [--depth DIR] [--overwrite]
    vidgen jdm eval   RUN_DIR [--reference-masks DIR] [--prompts FILE] [--steps 50] [--videos DIR]
    vidgen jdm filter (--data ROOT | --annotations FILE) [--min-area 0.1] [--max-area 0.6]
                      [--area-mode frame|volume] [--fragment-threshold T] [--json] --out FILE

User errors (missing folders, bad flags) print one message naming the file / flag and the fix
and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidgen.errors import ConfigError, DataError, VidgenError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits; we raise a user error (exit 2, one line)
        raise ConfigError(f"{self.prog}: {message}. Run `{self.prog} --help` for the flags.")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="vidgen jdm", description="JDM data tools")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    c = sub.add_parser("combos", help="precompute K mask-caption combinations per clip into shards")
    c.add_argument("--data", required=True, help="shard dataset root (from `vidgen precompute`)")
    c.add_argument("--vae", required=True, help="VAE folder the dataset was encoded with")
    c.add_argument("--text-encoder", required=True, help="text encoder folder the dataset was encoded with")
    c.add_argument("--backbone", default=None, help="registry name: gives the VAE / text-encoder classes")
    c.add_argument("--vae-kind", default=None)
    c.add_argument("--text-encoder-kind", default=None)
    c.add_argument(
        "--k", type=int, default=4, help="combinations per clip (0 = all objects + global caption)"
    )
    c.add_argument("--signal", default="mask", choices=("mask", "hed", "depth"))
    c.add_argument("--seed", type=int, default=0, help="the training config's seed")
    c.add_argument(
        "--max-objects",
        type=int,
        default=None,
        help="cap on the objects of a random combination (default: none, as method.max_objects_per_combination)",
    )
    c.add_argument("--out", default=None, help="write a copy here (default: add the extras in place)")
    c.add_argument("--device", default="cpu")
    c.add_argument("--no-progress", action="store_true")

    m = sub.add_parser("cmi", help="per-clip average conditional mutual information (Eq. 12)")
    m.add_argument("--data", required=True, help="shard dataset root")
    m.add_argument("--clip", required=True, help="local CLIP folder (transformers CLIPModel + tokenizer)")
    m.add_argument("--frames", default=None, help="folder of middle frames <key>.png|jpg")
    m.add_argument("--videos", default=None, help="raw videos folder (with --annotations)")
    m.add_argument("--annotations", default=None, help="the precompute JSONL annotations (with --videos)")
    m.add_argument("--vae", default=None, help="decode stored latents for the middle frame (with --backbone)")
    m.add_argument("--backbone", default=None)
    m.add_argument(
        "--out",
        default=None,
        help="output .json or .safetensors {key: Ī} (default: DATA/jdm_cmi.json, read by training)",
    )
    m.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    m.add_argument("--negatives", type=int, default=1024, help="M nearest-neighbour negatives")
    m.add_argument(
        "--critic",
        choices=("ratio", "exp"),
        default="ratio",
        help="ratio: Eq. 12 as printed (log-ratio of similarities); exp: exp(sim / T) critic",
    )
    m.add_argument("--temperature", type=float, default=0.07, help="T of --critic exp")
    m.add_argument("--index", choices=("exact", "ivf"), default="exact")
    m.add_argument("--nlist", type=int, default=None, help="IVF lists (default 4 sqrt(N))")
    m.add_argument("--nprobe", type=int, default=8, help="IVF lists scanned per query")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--batch-size", type=int, default=64)
    m.add_argument("--device", default="cpu")
    m.add_argument("--work-dir", default=None, help="keep the embedding memmaps here (default: temporary)")
    m.add_argument("--no-progress", action="store_true")

    g = sub.add_parser("signals", help="whole-scene HED / depth maps of real clips into the shards (Table 5)")
    g.add_argument("--data", required=True, help="shard dataset root (from `vidgen precompute`)")
    g.add_argument("--videos", required=True, help="the raw videos folder the dataset was precomputed from")
    g.add_argument("--annotations", required=True, help="the precompute JSONL annotations")
    g.add_argument("--hed", default=None, help="local HED folder: config.json + model.safetensors")
    g.add_argument("--depth", default=None, help="local transformers depth model (DPT, Depth-Anything, ...)")
    g.add_argument("--device", default="cpu")
    g.add_argument("--overwrite", action="store_true", help="replace maps the shards already hold")

    e = sub.add_parser("eval", help="Table 3 mask quality of a trained run (external reference masks)")
    e.add_argument("run", help="the run folder (config.yaml + checkpoints/last.ckpt)")
    e.add_argument(
        "--reference-masks",
        default=None,
        help="segmentations of the generated videos: DIR/<video_id>.npz or DIR/<video_id>/*.png",
    )
    e.add_argument("--prompts", default=None, help="prompt file, one per line (paper: 100 VBench prompts)")
    e.add_argument("--steps", type=int, default=None, help="sampler steps (default: the run's sample.steps)")
    e.add_argument(
        "--samples", type=int, default=None, help="number of prompts (default: method.eval_samples)"
    )
    e.add_argument(
        "--videos", default=None, help="write the generated videos + masks here (for the segmenter)"
    )

    f = sub.add_parser("filter", help="A.2/A.6 mask and clip filters; report + kept list")
    src = f.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", default=None, help="shard dataset root")
    src.add_argument("--annotations", default=None, help="precompute JSONL annotations")
    f.add_argument("--min-area", type=float, default=0.1)
    f.add_argument("--max-area", type=float, default=0.6)
    f.add_argument(
        "--fragment-threshold",
        type=float,
        default=None,
        help="drop objects whose share outside the largest component exceeds this in a frame "
        "(not in the paper: off by default)",
    )
    f.add_argument(
        "--area-mode",
        choices=("frame", "volume"),
        default="frame",
        help="frame: mean share of the frames the object is visible in (default); volume: of the clip",
    )
    f.add_argument("--max-per-type", type=int, default=2)
    f.add_argument("--min-objects", type=int, default=2)
    f.add_argument("--max-objects", type=int, default=10)
    f.add_argument("--border-margin", type=int, default=0)
    f.add_argument("--allow-gaps", action="store_true", help="objects may vanish and reappear")
    f.add_argument("--json", action="store_true", help="print the report as JSON")
    f.add_argument("--out", required=True, help="kept list (JSON)")
    f.add_argument(
        "--write-data",
        default=None,
        metavar="ROOT2",
        help="with --data: also write the kept clips (kept regions only) as a new shard dataset",
    )
    f.add_argument(
        "--overwrite-data",
        action="store_true",
        help="replace the contents of an existing --write-data folder (refused without it)",
    )
    return p


def _need_dir(path: str | None, flag: str, what: str) -> None:
    if path is not None and not Path(path).is_dir():
        raise DataError(f"{flag} {path}: folder does not exist; {what}.")


def _combos(a) -> int:
    from vidgen.methods.jdm.combinations import precompute_combinations

    _need_dir(a.data, "--data", "pass a shard dataset root written by `vidgen precompute`")
    _need_dir(a.vae, "--vae", "pass the local VAE folder the dataset was encoded with")
    _need_dir(
        a.text_encoder, "--text-encoder", "pass the local text-encoder folder the dataset was encoded with"
    )
    if a.k < 1:
        raise ConfigError(f"--k={a.k} must be >= 1")
    r = precompute_combinations(
        a.data,
        a.vae,
        a.text_encoder,
        backbone=a.backbone,
        num_combinations=a.k,
        signal=a.signal,
        seed=a.seed,
        max_objects=a.max_objects,
        out=a.out,
        device=a.device,
        vae_kind=a.vae_kind,
        text_encoder_kind=a.text_encoder_kind,
        progress=not a.no_progress,
    )
    print(f"jdm combos: wrote {r['written']} clips, {r['skipped']} already done, to {a.out or a.data}")
    return 0


def _cmi(a) -> int:
    from vidgen.methods.jdm import cmi

    _need_dir(a.data, "--data", "pass a shard dataset root written by `vidgen precompute`")
    _need_dir(a.clip, "--clip", "pass a local CLIP folder (config.json, weights, tokenizer)")
    if a.frames is not None:
        source = cmi.FramesDirSource(a.frames)
    elif a.videos is not None or a.annotations is not None:
        if a.videos is None or a.annotations is None:
            raise ConfigError(
                "--videos and --annotations go together (the raw videos and the precompute JSONL)"
            )
        source = cmi.VideoSource(a.videos, a.annotations)
    elif a.vae is not None:
        if a.backbone is None:
            raise ConfigError("--vae needs --backbone NAME (the VAE class); see `vidgen backbones`")
        from vidgen.backbones import get_backbone

        source = cmi.DecodeSource(a.data, a.vae, get_backbone(a.backbone).vae_cls, device=a.device)
    else:
        source = None
    values = cmi.compute_cmi(
        a.data,
        a.clip,
        a.out,
        frame_source=source,
        negatives=a.negatives,
        critic=a.critic,
        temperature=a.temperature,
        index=a.index,
        nlist=a.nlist,
        nprobe=a.nprobe,
        device=a.device,
        batch_size=a.batch_size,
        seed=a.seed,
        work_dir=a.work_dir,
        progress=not a.no_progress,
        overwrite=a.overwrite,
    )
    mean = sum(values.values()) / max(len(values), 1)
    print(f"jdm cmi: {len(values)} clips, mean Ī = {mean:.4f} -> {a.out or Path(a.data) / cmi.CMI_FILE}")
    return 0


def _signals(a) -> int:
    from vidgen.methods.jdm.scene_signals import add_scene_signals

    _need_dir(a.data, "--data", "pass a shard dataset root written by `vidgen precompute`")
    _need_dir(a.videos, "--videos", "pass the raw videos folder the dataset was precomputed from")
    for flag, path in (("--hed", a.hed), ("--depth", a.depth)):
        _need_dir(path, flag, "pass a local model folder")
    if not Path(a.annotations).is_file():
        raise DataError(f"--annotations {a.annotations}: file does not exist; pass the precompute JSONL.")
    r = add_scene_signals(a.data, a.videos, a.annotations, a.hed, a.depth, a.device, a.overwrite)
    print(f"jdm signals: {r['written']} clips written, {r['skipped']} already done -> {a.data}")
    return 0


def _eval(a) -> int:
    from vidgen.methods.jdm.eval_cli import EXTERNAL_FILE, evaluate_run

    _need_dir(a.run, "run", "pass the folder of a finished JDM run")
    if a.reference_masks is not None:
        _need_dir(a.reference_masks, "--reference-masks", "pass the folder of the external segmenter's masks")
    metrics = evaluate_run(a.run, a.reference_masks, a.prompts, a.steps, a.samples, a.videos)
    print(json.dumps(metrics, indent=1))
    print(f"-> {Path(a.run) / 'external' / EXTERNAL_FILE}")
    return 0


def _filter(a) -> int:
    from vidgen.methods.jdm import filters

    settings = filters.FilterSettings(
        min_area=a.min_area,
        max_area=a.max_area,
        fragment_threshold=a.fragment_threshold,
        max_per_type=a.max_per_type,
        min_objects=a.min_objects,
        max_objects=a.max_objects,
        border_margin=a.border_margin,
        allow_gaps=a.allow_gaps,
    )
    if a.data is not None:
        _need_dir(a.data, "--data", "pass a shard dataset root written by `vidgen precompute`")
        clips, source = filters.clips_from_shards(a.data), str(a.data)
    else:
        if not Path(a.annotations).is_file():
            raise DataError(f"--annotations {a.annotations}: file does not exist; pass the precompute JSONL.")
        clips, source = filters.clips_from_annotations(a.annotations), str(a.annotations)
    if a.write_data is not None and a.data is None:
        raise ConfigError("--write-data needs --data (a shard dataset to copy the kept clips from)")
    result = filters.apply_filters(clips, settings)
    if a.write_data is not None:  # refuse an existing dataset before writing anything
        filters.check_write_data(a.data, result, a.write_data, a.overwrite_data)
    filters.write_kept(a.out, result, source)
    if a.write_data is not None:
        n = filters.write_filtered(a.data, result, a.write_data, overwrite=a.overwrite_data)
        print(f"wrote {n} filtered clips -> {a.write_data} (train with data.root={a.write_data})")
    if a.json:
        print(json.dumps(result.report(), indent=1))
    else:
        from rich.console import Console

        Console().print(filters.render_table(result))
        print(f"kept {result.clips_kept} of {result.clips_in} clips -> {a.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
        if args.command is None:
            parser.print_help()
            return 2
        return {"combos": _combos, "cmi": _cmi, "signals": _signals, "eval": _eval, "filter": _filter}[
            args.command
        ](args)
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
