"""`vidgen sample ids=[a.png,b.png,...]`: reference face images -> crops + facial embeddings.

`reference_inputs(cfg)` is what an identity-preserving method's sampling calls. It reads
`sample.ids` (one image per ID, in ID order), the facial extractor of `method.faces`
(`FacesConfig` fields; random-init twins when `backbone.size=tiny`) and `method.max_ids`.
Detection: the shapes world's exact detector on `data=shapes`; otherwise SCRFD from
`method.faces.detector` (a folder; the released code's RetinaFace needs facexlib, which pulls
torchvision), or, when that is null, the images are taken as aligned face crops.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from vidgen.errors import ConfigError
from vidgen.faces.extractor import FaceEmbeddings, FacesConfig, FacialExtractor
from vidgen.faces.references import reference_faces

REAL_CROP_SIZE = 512  # facexlib's aligned face size in the released code


@dataclass
class ReferenceFaces:
    crops: Tensor  # [N, 3, S, S] in [-1, 1], aligned, ID order
    embeddings: FaceEmbeddings  # global_ [N, 1280], local 5 x [N, L, C]


def faces_config(cfg) -> FacesConfig:
    """`method.faces` as a FacesConfig; tiny twins when the backbone is tiny."""
    faces = cfg.method.get("faces")
    if faces is None:
        raise ConfigError(f"method={cfg.method.name} has no 'faces' section: it takes no reference faces")
    fields = {k: (tuple(v) if k == "clip_blocks" and v is not None else v) for k, v in dict(faces).items()}
    if cfg.backbone.get("size") == "tiny":
        fields["size"] = "tiny"
    return FacesConfig(**fields)


def reference_inputs(cfg, extractor: FacialExtractor | None = None) -> ReferenceFaces:
    """The reference faces of `sample.ids` (ConfigError / DataError naming the file otherwise)."""
    from vidgen.data.shapes import FACE_CROP_SIZE
    from vidgen.faces.detect import ScrfdDetector, ShapesFaceDetector

    ids = cfg.sample.get("ids")
    if ids is None or isinstance(ids, str):
        raise ConfigError(f"ids={ids!r}: give a list of reference face images, ids=[a.png,b.png]")
    shapes = cfg.data.name == "shapes"
    faces = faces_config(cfg)
    extractor = extractor or FacialExtractor.from_config(faces)
    if shapes:
        detector = ShapesFaceDetector()
    else:
        detector = ScrfdDetector(faces.detector) if faces.detector else None
    crops, emb = reference_faces(
        [str(p) for p in ids],
        extractor,
        detector,
        FACE_CROP_SIZE if shapes else REAL_CROP_SIZE,
        int(cfg.method.max_ids),
    )
    return ReferenceFaces(crops, emb)
