"""`vidgen precompute` faces: crops, ID indices, ID masks and facial embeddings into the shards.

An annotation line's faces, per-frame lists indexed by source frames (as instances):
    "faces": [{"id_index": 3, "boxes": [[x1, y1, x2, y2] | null, ...],
               "mask_rle": [RLE | null, ...] (optional), "crop": "faces/p3.png" (optional)}]
- ID mask: `mask_rle` (segmentation, Table 2 "Seg") or, without it, the box filled (Table 2 "Box");
- reference crop (Sec. 3.3 "a random frame ... Crop-and-Align"; precompute runs once, so the
  frame is fixed: the clip frame where the face's box is largest): `crop` (an image relative to
  --videos; a detector, when given, finds and aligns the face in it, otherwise it is taken as an
  aligned crop) or else that frame of the clip, where the detection overlapping the box most
  is aligned (no detector: the box's enclosing square);
- embeddings: `FacialExtractor(crops)` -> Faces.embeds [K, 1280], Faces.local_embeds [K, 5, L, C].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vidgen.data.sample import Faces
from vidgen.errors import DataError
from vidgen.faces.align import FaceDetection, align_face
from vidgen.faces.detect import FaceDetector
from vidgen.faces.extractor import FacialExtractor
from vidgen.faces.references import read_image


@dataclass
class FacePrecompute:
    extractor: FacialExtractor
    detector: FaceDetector | None
    crop_size: int
    videos: Path  # `crop` image names are relative to it
    num_identities: int | None = None  # the identity table's size: larger id_index values are refused
    store_dtype: torch.dtype = torch.float32


def _id_index(where: str, field: str, value: Any, num_identities: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"{where}: field '{field}': expected a non-negative integer ID index, got {value!r}.")
    if num_identities is not None and value >= num_identities:
        raise DataError(
            f"{where}: field '{field}': unknown face ID index {value}: the identity table has "
            f"{num_identities} entries (--num-identities). Fix: use an index in [0, {num_identities})."
        )
    return value


def check_face_items(where: str, items: Any, num_identities: int | None) -> list[int]:
    """The ID index of each face of an annotation line (DataError naming line and field otherwise)."""
    if not isinstance(items, list):
        raise DataError(f"{where}: field 'faces' must be a list of objects or null.")
    ids = []
    for i, item in enumerate(items):
        name = f"faces[{i}]"
        if not isinstance(item, dict) or "boxes" not in item:
            raise DataError(
                f"{where}: field '{name}.boxes' is missing. Fix: see docs/data.md for the faces schema."
            )
        ids.append(_id_index(where, f"{name}.id_index", item.get("id_index"), num_identities))
    return ids


def box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """[F, 4] normalised xyxy -> [F, H, W] bool, the pixels whose centre lies in the box."""
    ys = (torch.arange(height).float() + 0.5) / height
    xs = (torch.arange(width).float() + 0.5) / width
    b = boxes[:, :, None, None]
    return (xs >= b[:, 0]) & (xs < b[:, 2]) & (ys[:, None] >= b[:, 1]) & (ys[:, None] < b[:, 3])


def _iou(a: Tensor, b: Tensor) -> float:
    lt, rb = torch.maximum(a[:2], b[:2]), torch.minimum(a[2:], b[2:])
    inter = (rb - lt).clamp(min=0).prod()
    union = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter
    return float(inter / union) if union > 0 else 0.0


def _crop_from_clip(video: Tensor, boxes: Tensor, cfg: FacePrecompute, name: str) -> Tensor:
    """Align the face in the frame where its box is largest. video [3, F, H, W]; boxes [F, 4] normalised."""
    _, _, h, w = video.shape
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(-1)
    f = int(area.argmax())
    box = boxes[f] * torch.tensor([w, h, w, h], dtype=torch.float32)
    frame = video[:, f]
    det = FaceDetection(box, 1.0)
    if cfg.detector is not None:
        found = cfg.detector.detect(frame)
        overlap = [(_iou(d.box, box), d) for d in found]
        overlap = [t for t in overlap if t[0] > 0]
        if not overlap:
            raise DataError(
                f"{name}: no face detected inside its box in clip frame {f}. Fix: correct the boxes, "
                f"give a 'crop' image, or drop the face from the annotations."
            )
        det = max(overlap, key=lambda t: t[0])[1]
    return align_face(frame, det, cfg.crop_size)


def build_faces(
    where: str, items: list, video: Tensor, indices: list[int], original_size, cfg: FacePrecompute
) -> Faces:
    """The Faces group of one annotation line; video [3, F, H, W] in [-1, 1] is the encoded clip."""
    from vidgen.data.precompute import _boxes, _decode_masks, _per_frame
    from vidgen.data.video_io import crop_box_transform, resize_crop_masks

    _, frames, h, w = video.shape
    transform = crop_box_transform(original_size, h, w)
    ids = check_face_items(where, items, cfg.num_identities)
    all_boxes, masks, crops = [], [], []
    for i, item in enumerate(items):
        name = f"faces[{i}]"
        boxes, visible = _boxes(
            where, f"{name}.boxes", _per_frame(where, f"{name}.boxes", item["boxes"], indices), transform
        )
        if item.get("mask_rle") is not None:
            rles = _per_frame(where, f"{name}.mask_rle", item["mask_rle"], indices)
            masks.append(
                resize_crop_masks(_decode_masks(where, f"{name}.mask_rle", rles, original_size), h, w)
            )
        else:
            masks.append(box_masks(boxes, h, w))
        label = f"{where}: field '{name}'"
        if item.get("crop") is not None:
            image = read_image(cfg.videos / str(item["crop"]))
            from vidgen.faces.references import crop_reference

            crops.append(
                crop_reference(image, cfg.detector, cfg.crop_size, str(cfg.videos / str(item["crop"])))
            )
        elif bool(visible.any()):
            crops.append(_crop_from_clip(video, boxes, cfg, label))
        else:
            raise DataError(f"{label}: the face is visible in no frame of the clip and has no 'crop' image.")
        all_boxes.append(boxes)
    crops_t = torch.stack(crops)  # [K, 3, S, S]
    emb = cfg.extractor(crops_t)
    return Faces(
        boxes=torch.stack(all_boxes),
        id_index=torch.tensor(ids, dtype=torch.long),
        crops=crops_t,
        id_masks=torch.stack(masks),
        embeds=emb.global_.to(cfg.store_dtype),
        local_embeds=torch.stack(emb.local, dim=1).to(cfg.store_dtype),  # [K, 5, L, C]
    )


# ---------------------------------------------------------------------------------------------
# CLI flags of `vidgen precompute`


def face_args(p) -> None:
    g = p.add_argument_group("faces (annotation lines with 'faces')")
    g.add_argument(
        "--faces", choices=("real", "tiny"), default=None, help="face models: local folders or tiny"
    )
    g.add_argument("--face-recognition", default=None, help="insightface antelopev2 folder (glintr100.onnx)")
    g.add_argument(
        "--face-clip", default=None, help="EVA02-CLIP-L-14-336 vision folder (config.json + safetensors)"
    )
    g.add_argument(
        "--face-detector",
        default="none",
        help="none (align by the annotated boxes) | shapes (exact, shapes world) | a folder with SCRFD (antelopev2)",
    )
    g.add_argument("--face-crop-size", type=int, default=512, help="aligned crop side (facexlib: 512)")
    g.add_argument("--num-identities", type=int, default=None, help="refuse id_index >= this")


def face_precompute_from_args(args) -> FacePrecompute | None:
    """The FacePrecompute of `vidgen precompute`'s flags (None without --faces)."""
    from vidgen.faces.detect import ScrfdDetector, ShapesFaceDetector
    from vidgen.faces.extractor import FacesConfig

    if args.faces is None:
        return None
    cfg = FacesConfig(size=args.faces, recognition=args.face_recognition, clip=args.face_clip)
    detector = None
    if args.face_detector == "shapes":
        detector = ShapesFaceDetector()
    elif args.face_detector != "none":
        detector = ScrfdDetector(args.face_detector)
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    return FacePrecompute(
        extractor=FacialExtractor.from_config(cfg),
        detector=detector,
        crop_size=args.face_crop_size,
        videos=Path(args.videos),
        num_identities=args.num_identities,
        store_dtype=dtypes[args.store_dtype],
    )
