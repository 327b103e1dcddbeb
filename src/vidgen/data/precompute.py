"""`vidgen precompute`: videos + JSONL annotations -> VAE latents + text embeddings in shards.

    vidgen precompute --vae ckpt/CogVideoX-2b --text-encoder ckpt/CogVideoX-2b \\
        --videos raw/ --annotations raw/annotations.jsonl --out data/mine --backbone cogvideox-2b

Annotations: one JSON object per line,
    {"video": "clips/a.mp4", "caption": "...", "key": "optional-unique-key",
     "instances": [{"prompt": "...", "boxes": [[x1, y1, x2, y2] | null, ...], "mask_rle": [RLE | null, ...]}],
     "regions": [{"caption": "...", "mask_rle": [RLE | null, ...]}]}
in the shard annotation schema (docs/data.md), except that per-frame lists are indexed by the
*source* video's frames and masks are at the source resolution: precompute picks the clip's
frames (start 0, `--stride`), and moves boxes and masks through the same resize + centre crop as
the pixels. `micro` (original size, crop, stride, fps) is computed, never read. `faces` (crops,
ID indices, ID masks, facial embeddings) need the face models: `--faces tiny|real`, see
vidgen/faces/precompute.py for their schema.

Resumable: samples whose key is already in a completed shard of `--out` are skipped. A bad video
stops the run with a `DataError`; the samples encoded before it are written first.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vidgen.errors import ConfigError, DataError, VidgenError
from vidgen.faces.precompute import (
    FacePrecompute,
    build_faces,
    check_face_items,
    face_args,
    face_precompute_from_args,
)

_STORE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_EXAMPLE = '{"video": "clip.mp4", "caption": "a red ball bounces"}'


@dataclass
class Record:
    """One annotation line."""

    line: int
    key: str
    video: Path
    caption: str
    data: dict[str, Any]


@dataclass
class PrecomputeResult:
    written: int
    skipped: int
    total: int
    out: Path


# ---------------------------------------------------------------------------------------------
# Annotations


def _key_for(video: str) -> str:
    return Path(video).with_suffix("").as_posix().replace("/", "__")


def read_annotations(path: str | Path, videos: str | Path, check_files: bool = True) -> list[Record]:
    """Parse and check the JSONL annotations (DataError naming the file, line and field)."""
    path, videos = Path(path), Path(videos)
    if not path.is_file():
        raise DataError(f"annotations file {path} does not exist; pass --annotations FILE (JSON lines).")
    records: list[Record] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{where}: malformed JSON ({exc.msg} at column {exc.colno}). Fix: each line must be "
                    f"one JSON object, e.g. {_EXAMPLE}"
                ) from exc
            if not isinstance(data, dict):
                raise DataError(
                    f"{where}: expected a JSON object, got {type(data).__name__}. e.g. {_EXAMPLE}"
                )
            video = data.get("video")
            if not isinstance(video, str) or not video:
                raise DataError(
                    f"{where}: field 'video' is missing or not a string. Fix: give the video file name "
                    f"relative to --videos, e.g. {_EXAMPLE}"
                )
            caption = data.get("caption")
            if not isinstance(caption, str):
                raise DataError(
                    f"{where}: field 'caption' is missing or not a string (video {video!r}). Fix: add a "
                    f'"caption" (use "" for an unconditional sample).'
                )
            key = data.get("key", _key_for(video))
            if not isinstance(key, str) or not key:
                raise DataError(f"{where}: field 'key' must be a non-empty string, got {key!r}.")
            if key in seen:
                raise DataError(
                    f"{where}: duplicate key {key!r} (first on line {seen[key]}). Fix: give each line a "
                    f"unique 'key' or video."
                )
            seen[key] = lineno
            file = videos / video
            if check_files and not file.is_file():
                raise DataError(
                    f"{where}: field 'video': file {file} does not exist. Fix: correct the name (relative "
                    f"to --videos {videos}) or remove the line."
                )
            for group, fields in (("instances", ("prompt", "boxes")), ("regions", ("caption", "mask_rle"))):
                items = data.get(group)
                if items is None:
                    continue
                if not isinstance(items, list):
                    raise DataError(f"{where}: field '{group}' must be a list of objects or null.")
                for i, item in enumerate(items):
                    for name in fields:
                        if not isinstance(item, dict) or name not in item:
                            raise DataError(
                                f"{where}: field '{group}[{i}].{name}' is missing. Fix: see docs/data.md for "
                                f"the {group} schema."
                            )
            records.append(Record(lineno, key, file, caption, data))
    if not records:
        raise DataError(f"{path} has no annotation lines; expected one JSON object per line, e.g. {_EXAMPLE}")
    return records


def _per_frame(where: str, field: str, values: Any, indices: list[int]) -> list:
    if not isinstance(values, list):
        raise DataError(f"{where}: field '{field}' must be a list with one entry per video frame.")
    if len(values) <= indices[-1]:
        raise DataError(
            f"{where}: field '{field}' has {len(values)} entries but the clip uses source frame "
            f"{indices[-1]}. Fix: give one entry per source video frame (null where absent)."
        )
    return [values[i] for i in indices]


def _decode_masks(where: str, field: str, rles: list, size: tuple[int, int]) -> Tensor:
    from vidgen.data import rle

    out = torch.zeros(len(rles), *size, dtype=torch.bool)
    for f, r in enumerate(rles):
        if r is None:
            continue
        try:
            mask = rle.decode(r)
        except rle.RLEError as exc:
            raise DataError(f"{where}: field '{field}' (clip frame {f}): {exc}.") from exc
        if tuple(mask.shape) != tuple(size):
            raise DataError(
                f"{where}: field '{field}': mask size {list(mask.shape)} does not match the video's "
                f"{list(size)}. Fix: masks are RLE at the source video's resolution."
            )
        out[f] = mask
    return out


def _boxes(where: str, field: str, boxes: list, transform) -> tuple[Tensor, Tensor]:
    sx, sy, ox, oy = transform
    out = torch.zeros(len(boxes), 4)
    visible = torch.zeros(len(boxes), dtype=torch.bool)
    for f, box in enumerate(boxes):
        if box is None:
            continue
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise DataError(f"{where}: field '{field}': expected [x1, y1, x2, y2] or null, got {box!r}.")
        x1, y1, x2, y2 = (float(v) for v in box)
        b = torch.tensor([x1 * sx + ox, y1 * sy + oy, x2 * sx + ox, y2 * sy + oy]).clamp(0, 1)
        if b[2] > b[0] and b[3] > b[1]:
            out[f] = b
            visible[f] = True
    return out, visible


def build_groups(record: Record, indices: list[int], original_size, height: int, width: int):
    """(Instances | None, Regions | None) of a record, moved onto the cropped clip."""
    from vidgen.data.sample import Instances, Regions
    from vidgen.data.video_io import crop_box_transform, resize_crop_masks

    where = f"annotations line {record.line} (video {record.video.name})"
    transform = crop_box_transform(original_size, height, width)
    instances = regions = None
    items = record.data.get("instances")
    if items:
        boxes, visible, masks = [], [], []
        for i, item in enumerate(items):
            b, v = _boxes(
                where,
                f"instances[{i}].boxes",
                _per_frame(where, f"instances[{i}].boxes", item["boxes"], indices),
                transform,
            )
            boxes.append(b)
            visible.append(v)
            if item.get("mask_rle") is not None:
                rles = _per_frame(where, f"instances[{i}].mask_rle", item["mask_rle"], indices)
                masks.append(
                    resize_crop_masks(
                        _decode_masks(where, f"instances[{i}].mask_rle", rles, original_size), height, width
                    )
                )
        instances = Instances(
            boxes=torch.stack(boxes),
            visible=torch.stack(visible),
            prompts=[str(item["prompt"]) for item in items],
            masks=torch.stack(masks) if len(masks) == len(items) else None,
        )
    items = record.data.get("regions")
    if items:
        masks = []
        for i, item in enumerate(items):
            rles = _per_frame(where, f"regions[{i}].mask_rle", item["mask_rle"], indices)
            masks.append(
                resize_crop_masks(
                    _decode_masks(where, f"regions[{i}].mask_rle", rles, original_size), height, width
                )
            )
        regions = Regions(masks=torch.stack(masks), captions=[str(item["caption"]) for item in items])
    return instances, regions


# ---------------------------------------------------------------------------------------------
# Encoding


def _resolve_settings(backbone, frames, height, width, text_len, text_encoder_kind, vae_kind) -> dict:
    spec = None
    if backbone is not None:
        from vidgen.backbones import get_backbone

        spec = get_backbone(backbone)
    values = {
        "frames": frames if frames is not None else getattr(spec, "default_frames", None),
        "height": height if height is not None else getattr(spec, "default_height", None),
        "width": width if width is not None else getattr(spec, "default_width", None),
        "text_len": text_len if text_len is not None else getattr(spec, "text_len", None),
        "text_encoder_kind": text_encoder_kind or getattr(spec, "text_encoder_cls", None),
        "vae_kind": vae_kind or getattr(spec, "vae_cls", None),
    }
    missing = [k for k, v in values.items() if v is None]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise ConfigError(
            f"precompute needs {flags}: pass --backbone NAME (see `vidgen backbones`) to take the "
            f"defaults from a backbone, or give the flags explicitly."
        )
    return values


def _encode_texts(text_encoder, texts: list[str], dtype) -> dict[str, tuple[Tensor, Tensor]]:
    unique = list(dict.fromkeys(texts))
    if not unique:
        return {}
    embeds, mask = text_encoder.encode(unique)
    embeds = embeds.detach().to("cpu", dtype)
    mask = mask.detach().cpu().bool()
    return {t: (embeds[i], mask[i]) for i, t in enumerate(unique)}


def _load_clip(record: Record, frames: int, stride: int):
    from vidgen.data.video_io import fit_stride, read_video, sample_clip

    needed = (frames - 1) * stride + 1
    video, fps = read_video(record.video, num_frames=needed)
    used = stride if video.shape[0] >= needed else fit_stride(video.shape[0], frames, stride)
    if used == 0:
        raise DataError(
            f"{record.video} (annotations line {record.line}) has {video.shape[0]} frames, fewer than "
            f"--frames {frames}. Fix: lower --frames or remove the video from the annotations."
        )
    return sample_clip(video, frames, used), fps, used


def precompute(
    vae: str | Path,
    text_encoder: str | Path,
    videos: str | Path,
    annotations: str | Path,
    out: str | Path,
    backbone: str | None = None,
    frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    stride: int = 1,
    samples_per_shard: int = 64,
    device: str = "cpu",
    text_len: int | None = None,
    text_encoder_kind: str | None = None,
    vae_kind: str | None = None,
    dtype: torch.dtype | None = None,
    store_dtype: torch.dtype = torch.float32,
    batch_size: int = 16,
    sample_posterior: bool = False,
    progress: bool = True,
    faces: FacePrecompute | None = None,
) -> PrecomputeResult:
    """Encode every annotated video not yet in `out` and write shards (see the module docstring)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from vidgen.data.encoders import load_text_encoder, load_vae
    from vidgen.data.sample import MicroConditions, VideoSample
    from vidgen.data.shards import ShardWriter
    from vidgen.data.video_io import resize_crop, to_model_pixels

    console = Console(stderr=True)
    s = _resolve_settings(backbone, frames, height, width, text_len, text_encoder_kind, vae_kind)
    if stride < 1 or s["frames"] < 1 or s["height"] < 1 or s["width"] < 1:
        raise ConfigError("--frames, --height, --width and --stride must be >= 1.")
    out = Path(out)
    records = read_annotations(annotations, videos)
    with_faces = [r for r in records if r.data.get("faces")]
    if with_faces and faces is None:
        raise ConfigError(
            f"annotations line {with_faces[0].line} has 'faces', which need the face models. Fix: pass "
            f"--faces real --face-recognition DIR --face-clip DIR (or --faces tiny for tests)."
        )
    for r in with_faces:  # before anything is written
        check_face_items(
            f"annotations line {r.line} (video {r.video.name})", r.data["faces"], faces.num_identities
        )
    done = ShardWriter.completed_keys(out)
    todo = [r for r in records if r.key not in done]
    skipped = len(records) - len(todo)
    if skipped:
        print(f"skipped {skipped} of {len(records)} videos already written to {out}")
    if not todo:
        print(f"nothing to do: all {len(records)} videos are in {out}")
        return PrecomputeResult(0, skipped, len(records), out)

    text = load_text_encoder(text_encoder, s["text_encoder_kind"], s["text_len"], device=device, dtype=dtype)
    codec = load_vae(vae, s["vae_kind"], device=device, dtype=dtype, sample=sample_posterior)
    null = _encode_texts(text, [""], store_dtype)[""]
    writer = ShardWriter(out, samples_per_shard, null_text=null, append=(out / "index.json").exists())
    written = 0
    columns = (TextColumn("[bold]precompute"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, disable=not progress) as bar:
            task = bar.add_task("videos", total=len(todo))
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                texts = []
                for r in chunk:
                    texts.append(r.caption)
                    texts += [str(i.get("prompt")) for i in r.data.get("instances") or []]
                    texts += [str(g.get("caption")) for g in r.data.get("regions") or []]
                encoded = _encode_texts(text, texts, store_dtype)
                for r in chunk:
                    clip, fps, used = _load_clip(r, s["frames"], stride)
                    pixels, original_size, crop = resize_crop(clip, s["height"], s["width"])
                    latents = codec.encode(to_model_pixels(pixels)[None])[0].detach().to("cpu", store_dtype)
                    indices = [i * used for i in range(s["frames"])]
                    instances, regions = build_groups(r, indices, original_size, s["height"], s["width"])
                    if instances is not None:
                        e = [encoded[p] for p in instances.prompts]
                        instances.prompt_embeds = torch.stack([x[0] for x in e])
                        instances.prompt_mask = torch.stack([x[1] for x in e])
                    if regions is not None:
                        e = [encoded[c] for c in regions.captions]
                        regions.caption_embeds = torch.stack([x[0] for x in e])
                        regions.caption_mask = torch.stack([x[1] for x in e])
                    face_group = None
                    if r.data.get("faces"):
                        where = f"annotations line {r.line} (video {r.video.name})"
                        face_group = build_faces(
                            where, r.data["faces"], to_model_pixels(pixels), indices, original_size, faces
                        )
                    embeds, mask = encoded[r.caption]
                    writer.add(
                        VideoSample(
                            key=r.key,
                            latents=latents,
                            text_embeds=embeds,
                            text_mask=mask,
                            caption=r.caption,
                            frame_size=(s["frames"], s["height"], s["width"]),
                            instances=instances,
                            regions=regions,
                            faces=face_group,
                            micro=MicroConditions(original_size, crop, used, fps),
                        )
                    )
                    written += 1
                    bar.advance(task)
    finally:
        writer.close()  # completed samples are flushed even when a later video fails
    print(f"wrote {written} videos to {out} ({skipped} skipped, {len(records)} annotated)")
    return PrecomputeResult(written, skipped, len(records), out)


# ---------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vidgen precompute",
        description="Encode videos + captions into vidgen shards with a local VAE and text encoder.",
    )
    p.add_argument("--vae", required=True, help="VAE folder (pipeline folder with vae/, or the VAE itself)")
    p.add_argument("--text-encoder", required=True, help="text encoder folder (pipeline or model+tokenizer)")
    p.add_argument("--videos", required=True, help="folder the annotation 'video' names are relative to")
    p.add_argument("--annotations", required=True, help="JSONL file, one object per video")
    p.add_argument("--out", required=True, help="output shard root (resumed when it exists)")
    p.add_argument("--backbone", default=None, help="take frames/size/text length/encoder kinds from it")
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--stride", type=int, default=1, help="frame stride (lowered for short videos)")
    p.add_argument("--samples-per-shard", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--text-len", type=int, default=None, help="tokens (default: the backbone's text_len)")
    p.add_argument(
        "--text-encoder-kind",
        default=None,
        help="T5EncoderModel | UMT5EncoderModel | CLIPTextModel | AutoModel (any transformers text model)",
    )
    p.add_argument(
        "--vae-kind", default=None, help="AutoencoderKLCogVideoX | AutoencoderKLWan | AutoencoderKL"
    )
    p.add_argument(
        "--dtype", choices=sorted(_STORE_DTYPES), default=None, help="model dtype (default float32)"
    )
    p.add_argument(
        "--store-dtype", choices=sorted(_STORE_DTYPES), default="float32", help="dtype written to shards"
    )
    p.add_argument("--batch-size", type=int, default=16, help="videos per text-encoding batch")
    p.add_argument("--sample-posterior", action="store_true", help="sample the VAE posterior (default: mode)")
    p.add_argument(
        "--append", action="store_true", help="accepted for clarity; an existing --out is always resumed"
    )
    p.add_argument("--no-progress", action="store_true")
    face_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        precompute(
            vae=args.vae,
            text_encoder=args.text_encoder,
            videos=args.videos,
            annotations=args.annotations,
            out=args.out,
            backbone=args.backbone,
            frames=args.frames,
            height=args.height,
            width=args.width,
            stride=args.stride,
            samples_per_shard=args.samples_per_shard,
            device=args.device,
            text_len=args.text_len,
            text_encoder_kind=args.text_encoder_kind,
            vae_kind=args.vae_kind,
            dtype=_STORE_DTYPES[args.dtype] if args.dtype else None,
            store_dtype=_STORE_DTYPES[args.store_dtype],
            batch_size=args.batch_size,
            sample_posterior=args.sample_posterior,
            progress=not args.no_progress,
            faces=face_precompute_from_args(args),
        )
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
