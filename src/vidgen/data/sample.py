"""The one typed sample every method reads, and its collated batch.

Layouts (pixel-space annotations are at the source clip's resolution, `VideoSample.frame_size`):
- latents           [C, F', H', W']  VAE latents (channels first)
- text_embeds       [L, D] with text_mask [L] (True = real token)
- image_latents     [C, 1, H', W']  first-frame / image-condition latents (I2V)
- instances.boxes   [N, F, 4]  normalised xyxy per pixel frame; instances.visible [N, F]
- instances.masks   [N, F, H, W] bool (decoded from RLE on load)
- regions.masks     [R, F, H, W] bool; regions.hed / regions.depth [F, H, W] in [0, 1]
- faces.boxes       [K, F, 4]; faces.id_index [K]; faces.crops [K, 3, S, S]; faces.id_masks [K, F, H, W]
- faces.embeds      [K, 1280] global facial embeddings; faces.local_embeds [K, 5, L, C] (vidgen.faces)

A method declares the field names it needs (`FIELDS` below); `check_fields` fails at start-up
when the data cannot provide one, instead of a KeyError deep inside training.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass

import torch
from torch import Tensor

from vidgen.errors import ConfigError

# Every field name a method may require. Dotted names are optional parts of a group.
FIELDS = (
    "latents",
    "text_embeds",
    "image_latents",
    "instances",
    "instances.masks",
    "instances.prompt_embeds",
    "regions",
    "regions.hed",
    "regions.depth",
    "regions.caption_embeds",
    "faces",
    "faces.embeds",
    "faces.local_embeds",
    "micro",
)


@dataclass
class Instances:
    boxes: Tensor  # [N, F, 4] float, normalised xyxy
    visible: Tensor  # [N, F] bool: the instance is in frame f
    prompts: list[str]
    masks: Tensor | None = None  # [N, F, H, W] bool
    prompt_embeds: Tensor | None = None  # [N, L, D]
    prompt_mask: Tensor | None = None  # [N, L] bool


@dataclass
class Regions:
    masks: Tensor  # [R, F, H, W] bool
    captions: list[str]
    hed: Tensor | None = None  # [F, H, W] float in [0, 1], whole scene
    depth: Tensor | None = None  # [F, H, W] float in [0, 1], whole scene
    caption_embeds: Tensor | None = None  # [R, L, D]
    caption_mask: Tensor | None = None  # [R, L] bool


@dataclass
class Faces:
    boxes: Tensor  # [K, F, 4] float, normalised xyxy
    id_index: Tensor  # [K] long, index into the dataset's identity table
    crops: Tensor  # [K, 3, S, S] float in [-1, 1], aligned face crops
    id_masks: Tensor  # [K, F, H, W] bool
    embeds: Tensor | None = None  # [K, 1280] FacialExtractor global_ (precomputed)
    local_embeds: Tensor | None = None  # [K, 5, L, C] FacialExtractor local, stacked (precomputed)


@dataclass
class MicroConditions:
    original_size: tuple[int, int]  # (height, width) of the source video before crop/resize
    crop: tuple[int, int]  # (top, left) of the crop in the source video
    stride: int  # frame stride used when sampling the clip
    fps: float = 0.0


@dataclass
class VideoSample:
    key: str
    latents: Tensor
    text_embeds: Tensor
    text_mask: Tensor
    caption: str
    frame_size: tuple[int, int, int] = (0, 0, 0)  # (F, H, W) of the pixel clip
    image_latents: Tensor | None = None
    instances: Instances | None = None
    regions: Regions | None = None
    faces: Faces | None = None
    micro: MicroConditions | None = None
    # Method-specific tensors derived from the annotations (precomputed in shards or by the
    # method's sample transform), keyed "<method>/<name>", e.g. "jdm/mask_latents".
    extras: dict[str, Tensor] = field(default_factory=dict)

    def available_fields(self) -> set[str]:
        return sample_fields(self)


def sample_fields(sample: VideoSample) -> set[str]:
    """The field names (see FIELDS) this sample carries."""
    have = {"latents", "text_embeds"}
    if sample.image_latents is not None:
        have.add("image_latents")
    for group in ("instances", "regions", "faces", "micro"):
        value = getattr(sample, group)
        if value is None:
            continue
        have.add(group)
        if is_dataclass(value):
            for f in fields(value):
                if getattr(value, f.name) is not None and f"{group}.{f.name}" in FIELDS:
                    have.add(f"{group}.{f.name}")
    return have


def check_fields(required: set[str] | list[str], available: set[str], source: str) -> None:
    """Fail at start-up when a method needs fields the data does not provide."""
    unknown = sorted(set(required) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown sample field(s) {unknown}; valid fields: {list(FIELDS)}")
    missing = sorted(set(required) - set(available))
    if missing:
        raise ConfigError(
            f"{source} does not provide field(s) {missing} that the method needs "
            f"(it provides {sorted(available)}). Use data that carries them "
            f"(e.g. data=shapes, or re-run `vidgen precompute` with the annotations that hold them)."
        )


# ---------------------------------------------------------------------------------------------
# Batches: optional groups are padded to the largest count in the batch, with a `valid` mask.


def _pad_stack(tensors: list[Tensor], length: int) -> Tensor:
    """Stack [n_i, ...] tensors into [B, length, ...], zero padded."""
    first = tensors[0]
    out = first.new_zeros((len(tensors), length, *first.shape[1:]))
    for i, t in enumerate(tensors):
        out[i, : t.shape[0]] = t
    return out


def _valid(counts: list[int], length: int) -> Tensor:
    return torch.arange(length)[None, :] < torch.tensor(counts)[:, None]


@dataclass
class GroupBatch:
    """A padded optional group: tensors [B, Nmax, ...], string lists per sample, `valid [B, Nmax]`."""

    valid: Tensor
    tensors: dict[str, Tensor] = field(default_factory=dict)
    texts: dict[str, list[list[str]]] = field(default_factory=dict)

    def __getattr__(self, name: str):
        if name in ("tensors", "texts", "valid"):
            raise AttributeError(name)
        if name in self.tensors:
            return self.tensors[name]
        if name in self.texts:
            return self.texts[name]
        raise AttributeError(f"this batch group has no field {name!r}")

    def to(self, device) -> GroupBatch:
        return GroupBatch(
            self.valid.to(device), {k: v.to(device) for k, v in self.tensors.items()}, self.texts
        )


# Which tensor of each group is padded along its first dimension (all are, for these groups).
_WHOLE_SAMPLE = {("regions", "hed"), ("regions", "depth")}


def _collate_group(name: str, items: list) -> GroupBatch | None:
    if any(item is None for item in items):
        return None
    first = items[0]
    lengths = []
    for item in items:
        lead = next(f for f in fields(item) if isinstance(getattr(item, f.name), Tensor))
        lengths.append(getattr(item, lead.name).shape[0])
    n_max = max(lengths)
    batch = GroupBatch(valid=_valid(lengths, n_max))
    for f in fields(first):
        values = [getattr(item, f.name) for item in items]
        if any(v is None for v in values):
            continue
        if isinstance(values[0], Tensor):
            if (name, f.name) in _WHOLE_SAMPLE:
                batch.tensors[f.name] = torch.stack(values)
            else:
                batch.tensors[f.name] = _pad_stack(values, n_max)
        elif isinstance(values[0], list):
            batch.texts[f.name] = values
    return batch


@dataclass
class VideoBatch:
    keys: list[str]
    latents: Tensor  # [B, C, F', H', W']
    text_embeds: Tensor  # [B, L, D]
    text_mask: Tensor  # [B, L]
    captions: list[str]
    image_latents: Tensor | None = None
    instances: GroupBatch | None = None
    regions: GroupBatch | None = None
    faces: GroupBatch | None = None
    micro: dict[str, Tensor] | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.latents.shape[0]

    def to(self, device) -> VideoBatch:
        def move(x):
            if x is None:
                return None
            if isinstance(x, dict):
                return {k: v.to(device) for k, v in x.items()}
            return x.to(device)

        return VideoBatch(
            keys=self.keys,
            latents=self.latents.to(device),
            text_embeds=self.text_embeds.to(device),
            text_mask=self.text_mask.to(device),
            captions=self.captions,
            image_latents=move(self.image_latents),
            instances=move(self.instances),
            regions=move(self.regions),
            faces=move(self.faces),
            micro=move(self.micro),
            extras={k: v.to(device) for k, v in self.extras.items()},
        )


def collate(samples: list[VideoSample]) -> VideoBatch:
    """Stack samples into a batch; optional groups are kept only when every sample has them."""
    micro = None
    if all(s.micro is not None for s in samples):
        micro = {
            "original_size": torch.tensor([s.micro.original_size for s in samples]),
            "crop": torch.tensor([s.micro.crop for s in samples]),
            "stride": torch.tensor([s.micro.stride for s in samples]),
            "fps": torch.tensor([s.micro.fps for s in samples]),
        }
    image = [s.image_latents for s in samples]
    return VideoBatch(
        keys=[s.key for s in samples],
        latents=torch.stack([s.latents for s in samples]),
        text_embeds=torch.stack([s.text_embeds for s in samples]),
        text_mask=torch.stack([s.text_mask for s in samples]),
        captions=[s.caption for s in samples],
        image_latents=None if any(i is None for i in image) else torch.stack(image),
        instances=_collate_group("instances", [s.instances for s in samples]),
        regions=_collate_group("regions", [s.regions for s in samples]),
        faces=_collate_group("faces", [s.faces for s in samples]),
        micro=micro,
        extras=_collate_extras(samples),
    )


def _collate_extras(samples: list[VideoSample]) -> dict[str, Tensor]:
    """Stack the extras every sample carries (same shapes per key)."""
    keys = set.intersection(*(set(s.extras) for s in samples)) if samples else set()
    return {k: torch.stack([s.extras[k] for s in samples]) for k in sorted(keys)}
