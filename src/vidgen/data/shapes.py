"""The shapes world: deterministic synthetic videos with exact ground truth.

`ShapesWorld(frames, height, width, max_instances, seed).render_clip(index)` draws a clip that
depends only on (seed, index) (scene parameters come from `random.Random(f"{seed}:{index}")`,
which seeds from SHA-512, so it is identical across processes and machines):

- a flat background colour and 1..max_instances coloured shapes (circle, square, triangle,
  diamond, cross, and "face": a circle carrying an identity texture) moving on a path
  (linear, bounce, circular); linear paths may leave the frame partially or fully;
- occlusion by depth: each instance has a distinct depth value in [0.3, 1] (1 = nearest), and
  is painted far to near, so a nearer instance hides a farther one;
- exact ground truth computed from what is rendered: `masks[n, f]` are the *visible* pixels of
  instance n (after occlusion and clipping), `boxes[n, f]` the bounding box of that mask in
  normalised xyxy (x0 = min col / W, x1 = (max col + 1) / W; zeros when not visible) and
  `visible[n, f]` = the mask is not empty;
- instance prompts ("a red circle moving right"), a global caption naming every instance,
  regions (instances grouped; mask union + regional caption), a whole-scene edge map (label
  boundaries, HED-like) and depth map (the front instance's depth value, background 0);
- faces: instances of shape "face" carry the texture of an identity of a fixed table of
  `NUM_IDENTITIES` identities (independent of the seed); `face_crops` is the identity texture
  rendered aligned at S x S (outside the face disc: 0, i.e. mid grey);
- pixels are float32 in [-1, 1], layout [3, F, H, W];
- `small_overlap=True` (off by default): every clip's instance 1 is a small shape on top of a
  large instance 0 (`shapes_layouts.small_on_large`, InstanceV Sec. 4.3's case);
- `background_ramp=a` (0, off, by default): the background colour gains a ramp of amplitude `a` in
  [0, 1] units, red across the columns and blue down the rows (`bg + a * (x / W - 0.5, 0, y / H - 0.5)`),
  so the background says where a pixel is, as a photograph's sky and ground do; a denoiser of the flat
  world has no use for a token's absolute position (docs/methods/gligen.md, section 5).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch
from torch import Tensor

# Named colours (RGB in [0, 1]); all contrast with every background below.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.80, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.90, 0.10),
    "cyan": (0.10, 0.90, 0.90),
    "magenta": (0.90, 0.10, 0.85),
    "orange": (1.00, 0.55, 0.05),
    "white": (0.97, 0.97, 0.97),
}
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "black": (0.05, 0.05, 0.05),
    "gray": (0.35, 0.35, 0.35),
    "brown": (0.30, 0.20, 0.12),
    "navy": (0.05, 0.08, 0.28),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "face")
MOTIONS = ("linear", "bounce", "circular")
NUM_IDENTITIES = 8
FACE_CROP_SIZE = 32

# The identity table: skin colour name (from COLOURS, so captions stay "a <colour> face") and
# feature geometry of each identity. Fixed, so identity k looks the same in every dataset.
_ID_SKIN = ("orange", "yellow", "white", "cyan", "magenta", "green", "red", "blue")


@dataclass(frozen=True)
class Identity:
    index: int
    skin: str
    eye_y: float  # eye height in the unit face square
    eye_dx: float  # half the distance between the eyes
    eye_r: float
    mouth_y: float
    mouth_w: float
    hair: tuple[float, float, float]  # RGB in [0, 1]
    hair_h: float  # hair band height (fraction of the face)
    stripes: int  # number of vertical stripes in the hair band


def _make_identities() -> tuple[Identity, ...]:
    rng = random.Random("vidgen-shapes-identities")
    out = []
    for k in range(NUM_IDENTITIES):
        out.append(
            Identity(
                index=k,
                skin=_ID_SKIN[k],
                eye_y=rng.uniform(0.33, 0.45),
                eye_dx=rng.uniform(0.12, 0.22),
                eye_r=rng.uniform(0.06, 0.10),
                mouth_y=rng.uniform(0.66, 0.76),
                mouth_w=rng.uniform(0.15, 0.32),
                hair=(rng.uniform(0, 0.6), rng.uniform(0, 0.6), rng.uniform(0, 0.6)),
                hair_h=rng.uniform(0.12, 0.24),
                stripes=rng.randint(0, 3),
            )
        )
    return tuple(out)


IDENTITIES = _make_identities()


def identity_texture(identity: int, u: Tensor, v: Tensor) -> Tensor:
    """RGB in [-1, 1] of identity `identity` at unit-square coordinates u (x), v (y) -> [3, *u.shape]."""
    ident = IDENTITIES[identity]
    rgb = torch.tensor(COLOURS[ident.skin], dtype=torch.float32).view(3, *([1] * u.dim()))
    img = rgb.expand(3, *u.shape).clone()
    hair = torch.tensor(ident.hair, dtype=torch.float32).view(3, *([1] * u.dim()))
    hair_band = v < ident.hair_h
    if ident.stripes:
        stripe = torch.floor(u * (2 * ident.stripes + 1)).remainder(2) == 1
        hair_band = hair_band | ((v < ident.hair_h + 0.1) & stripe)
    img = torch.where(hair_band, hair.expand_as(img), img)
    eyes = ((u - (0.5 - ident.eye_dx)) ** 2 + (v - ident.eye_y) ** 2 < ident.eye_r**2) | (
        (u - (0.5 + ident.eye_dx)) ** 2 + (v - ident.eye_y) ** 2 < ident.eye_r**2
    )
    mouth = ((u - 0.5).abs() < ident.mouth_w) & ((v - ident.mouth_y).abs() < 0.04)
    dark = eyes | mouth
    img = torch.where(dark, torch.full_like(img, 0.02), img)
    return img * 2 - 1


def face_crop(identity: int, size: int = FACE_CROP_SIZE) -> Tensor:
    """The aligned crop of an identity: [3, size, size] in [-1, 1]; 0 outside the face disc."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    v, u = torch.meshgrid(c, c, indexing="ij")
    img = identity_texture(identity, u, v)
    disc = (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    return torch.where(disc, img, torch.zeros_like(img))


@dataclass
class InstanceSpec:
    """Scene parameters of one instance (pixel units; y down)."""

    colour: str
    shape: str
    motion: str
    size: float  # half extent in pixels
    depth: float  # in [0.3, 1], 1 = nearest
    path: Tensor  # [F, 2] centre (x, y) per frame
    direction: str  # motion words used in the prompt
    identity: int = -1  # face identity index, -1 for non-faces

    @property
    def prompt(self) -> str:
        return f"a {self.colour} {self.shape} {self.direction}"


@dataclass
class ShapesClip:
    index: int
    video: Tensor  # [3, F, H, W] float32 in [-1, 1]
    background: str
    caption: str
    specs: list[InstanceSpec]
    boxes: Tensor  # [N, F, 4] normalised xyxy of the visible mask (zeros when not visible)
    visible: Tensor  # [N, F] bool
    masks: Tensor  # [N, F, H, W] bool, visible pixels
    prompts: list[str]
    region_members: list[list[int]]  # instance indices of each region
    region_masks: Tensor  # [R, F, H, W] bool, union of the members' masks
    region_captions: list[str]
    hed: Tensor  # [F, H, W] float in {0, 1}: boundaries of the label map
    depth: Tensor  # [F, H, W] float in [0, 1]: front instance's depth, background 0
    face_instances: list[int]  # instance index of each face
    face_ids: Tensor  # [K] long
    face_boxes: Tensor  # [K, F, 4]
    face_crops: Tensor  # [K, 3, S, S] in [-1, 1]
    face_masks: Tensor  # [K, F, H, W] bool
    original_size: tuple[int, int] = (0, 0)
    crop: tuple[int, int] = (0, 0)
    stride: int = 1
    extras: dict = field(default_factory=dict)

    @property
    def first_frame(self) -> Tensor:
        """The image condition: [3, 1, H, W]."""
        return self.video[:, :1]


def masks_to_boxes(masks: Tensor) -> tuple[Tensor, Tensor]:
    """[..., H, W] bool -> (boxes [..., 4] normalised xyxy, visible [...]); empty masks give zeros."""
    h, w = masks.shape[-2:]
    rows = masks.any(dim=-1)  # [..., H]
    cols = masks.any(dim=-2)  # [..., W]
    visible = rows.any(dim=-1)
    ar_h = torch.arange(h)
    ar_w = torch.arange(w)
    big = max(h, w) + 1
    y0 = torch.where(rows, ar_h, big).amin(dim=-1)
    y1 = torch.where(rows, ar_h, -1).amax(dim=-1) + 1
    x0 = torch.where(cols, ar_w, big).amin(dim=-1)
    x1 = torch.where(cols, ar_w, -1).amax(dim=-1) + 1
    boxes = torch.stack([x0 / w, y0 / h, x1 / w, y1 / h], dim=-1).float()
    boxes = torch.where(visible[..., None], boxes, torch.zeros_like(boxes))
    return boxes, visible


def _direction_words(dx: float, dy: float) -> str:
    if math.hypot(dx, dy) < 1e-6:
        return "standing still"
    angle = math.degrees(math.atan2(-dy, dx)) % 360  # y is down in images
    names = ("right", "up and right", "up", "up and left", "left", "down and left", "down", "down and right")
    return "moving " + names[int(((angle + 22.5) % 360) // 45)]


class ShapesWorld:
    """Deterministic synthetic clips: `render_clip(index)` depends only on (seed, index)."""

    def __init__(
        self,
        frames: int,
        height: int,
        width: int,
        max_instances: int = 4,
        seed: int = 0,
        face_prob: float = 0.25,
        min_faces: int = 1,
        crop_size: int = FACE_CROP_SIZE,
        small_overlap: bool = False,
        background_ramp: float = 0.0,
    ):
        if frames < 1 or height < 4 or width < 4:
            raise ValueError(f"shapes world needs frames >= 1 and height, width >= 4 (got {frames}x{height}x{width})")
        if max_instances < 1:
            raise ValueError(f"max_instances must be >= 1 (got {max_instances})")
        if small_overlap and not 2 <= max_instances <= 6:
            raise ValueError(f"small_overlap needs 2 <= max_instances <= 6 (got {max_instances})")
        if not 0.0 <= background_ramp <= 0.5:
            raise ValueError(f"background_ramp must be in [0, 0.5] (got {background_ramp})")
        self.small_overlap = small_overlap
        self.background_ramp = float(background_ramp)
        self.frames, self.height, self.width = frames, height, width
        self.max_instances = max_instances
        self.seed = seed
        self.face_prob = face_prob
        self.min_faces = min_faces
        self.crop_size = crop_size
        ys = torch.arange(height, dtype=torch.float32) + 0.5
        xs = torch.arange(width, dtype=torch.float32) + 0.5
        self._ys = ys.view(1, height, 1)
        self._xs = xs.view(1, 1, width)
        self._crops = {k: face_crop(k, crop_size) for k in range(NUM_IDENTITIES)}

    # -- scene sampling ------------------------------------------------------------------------
    def _sample_specs(self, rng: random.Random) -> list[InstanceSpec]:
        f, h, w = self.frames, self.height, self.width
        m = min(h, w)
        n = rng.randint(2 if self.small_overlap else 1, self.max_instances)
        depths = sorted(rng.sample(range(n * 4), n))
        faces = [rng.random() < self.face_prob for _ in range(n)]
        if sum(faces) < min(self.min_faces, n):
            for i in rng.sample(range(n), min(self.min_faces, n)):
                faces[i] = True
        t = torch.arange(f, dtype=torch.float32)
        specs = []
        for i in range(n):
            is_face = faces[i]
            shape = "face" if is_face else rng.choice(SHAPES[:-1])
            identity = rng.randrange(NUM_IDENTITIES) if is_face else -1
            colour = IDENTITIES[identity].skin if is_face else rng.choice(list(COLOURS))
            size = rng.uniform(0.10, 0.22) * m
            motion = rng.choice(MOTIONS)
            speed = rng.uniform(0.01, 0.05) * m  # pixels per frame
            angle = rng.uniform(0, 2 * math.pi)
            vx, vy = speed * math.cos(angle), speed * math.sin(angle)
            if motion == "linear":
                # start anywhere in frame (possibly near an edge): may leave the frame
                x0, y0 = rng.uniform(0.05 * w, 0.95 * w), rng.uniform(0.05 * h, 0.95 * h)
                path = torch.stack([x0 + vx * t, y0 + vy * t], dim=-1)
                direction = _direction_words(vx, vy)
            elif motion == "bounce":
                x0, y0 = rng.uniform(size, w - size), rng.uniform(size, h - size)
                path = torch.stack(
                    [_bounce(x0 + vx * t, size, w - size), _bounce(y0 + vy * t, size, h - size)], dim=-1
                )
                direction = "bouncing around"
            else:
                radius = rng.uniform(0.1, 0.25) * m
                cx, cy = rng.uniform(0.3 * w, 0.7 * w), rng.uniform(0.3 * h, 0.7 * h)
                omega = rng.choice((-1, 1)) * rng.uniform(0.15, 0.5)  # radians per frame
                phase = rng.uniform(0, 2 * math.pi)
                ang = phase + omega * t
                path = torch.stack([cx + radius * torch.cos(ang), cy + radius * torch.sin(ang)], dim=-1)
                direction = "moving in a circle"
            specs.append(
                InstanceSpec(
                    colour=colour,
                    shape=shape,
                    motion=motion,
                    size=size,
                    depth=0.3 + 0.7 * (depths[i] + 1) / (n * 4),
                    path=path,
                    direction=direction,
                    identity=identity,
                )
            )
        if self.small_overlap:
            from vidgen.data.shapes_layouts import small_on_large  # imports this module

            small_on_large(specs, rng, f, h, w)
        return specs

    # -- rendering -----------------------------------------------------------------------------
    def _shape_mask(self, spec: InstanceSpec) -> Tensor:
        """[F, H, W] bool: the full (unoccluded, clipped to frame) silhouette."""
        cx = spec.path[:, 0].view(-1, 1, 1)
        cy = spec.path[:, 1].view(-1, 1, 1)
        dx, dy, r = self._xs - cx, self._ys - cy, spec.size
        if spec.shape in ("circle", "face"):
            return dx * dx + dy * dy <= r * r
        if spec.shape == "square":
            return (dx.abs() <= 0.85 * r) & (dy.abs() <= 0.85 * r)
        if spec.shape == "triangle":
            return (dy >= -r) & (dy <= 0.75 * r) & (dx.abs() <= (dy + r) * 0.55)
        if spec.shape == "diamond":
            return dx.abs() + dy.abs() <= r
        if spec.shape == "cross":
            a, b = dx.abs(), dy.abs()
            return ((a <= r / 3) & (b <= r)) | ((b <= r / 3) & (a <= r))
        raise ValueError(f"unknown shape {spec.shape!r}")

    def _appearance(self, spec: InstanceSpec, sil: Tensor) -> Tensor:
        """[3, P] colour (in [-1, 1]) of the instance at the P pixels where `sil` [F, H, W] is True."""
        if spec.identity < 0:
            rgb = torch.tensor(COLOURS[spec.colour], dtype=torch.float32) * 2 - 1
            return rgb[:, None]
        f, y, x = sil.nonzero(as_tuple=True)
        u = (x.float() + 0.5 - spec.path[f, 0]) / (2 * spec.size) + 0.5
        v = (y.float() + 0.5 - spec.path[f, 1]) / (2 * spec.size) + 0.5
        return identity_texture(spec.identity, u, v)

    def render_clip(self, index: int) -> ShapesClip:
        rng = random.Random(f"{self.seed}:{index}")
        f, h, w = self.frames, self.height, self.width
        background = rng.choice(list(BACKGROUNDS))
        specs = self._sample_specs(rng)
        n = len(specs)

        bg = torch.tensor(BACKGROUNDS[background], dtype=torch.float32) * 2 - 1
        video = bg.view(3, 1, 1, 1).expand(3, f, h, w).clone()
        if self.background_ramp:  # [-1, 1] units: twice the [0, 1] amplitude
            a = 2 * self.background_ramp
            video[0] += a * (self._xs / w - 0.5)
            video[2] += a * (self._ys / h - 0.5)
        label = torch.full((f, h, w), -1, dtype=torch.long)
        depth = torch.zeros(f, h, w)
        order = sorted(range(n), key=lambda i: specs[i].depth)  # far to near
        for i in order:
            spec = specs[i]
            sil = self._shape_mask(spec)
            video[:, sil] = self._appearance(spec, sil)
            label[sil] = i
            depth[sil] = spec.depth
        masks = label[None] == torch.arange(n).view(n, 1, 1, 1)  # [N, F, H, W]
        boxes, visible = masks_to_boxes(masks)

        # edges: pixels whose label differs from a 4-neighbour (inside the frame)
        hed = torch.zeros(f, h, w, dtype=torch.bool)
        dv = label[:, 1:, :] != label[:, :-1, :]
        dh = label[:, :, 1:] != label[:, :, :-1]
        hed[:, 1:, :] |= dv
        hed[:, :-1, :] |= dv
        hed[:, :, 1:] |= dh
        hed[:, :, :-1] |= dh

        prompts = [s.prompt for s in specs]
        caption = "a video of " + _join(prompts) + f" on a {background} background"

        # regions: a random partition of the instances into 1..min(n, 3) groups
        n_regions = rng.randint(1, min(n, 3))
        perm = list(range(n))
        rng.shuffle(perm)
        members: list[list[int]] = [sorted(perm[r::n_regions]) for r in range(n_regions)]
        region_masks = torch.stack([masks[m].any(dim=0) for m in members])
        region_captions = [_join([prompts[i] for i in m]) for m in members]

        face_instances = [i for i, s in enumerate(specs) if s.identity >= 0]
        face_ids = torch.tensor([specs[i].identity for i in face_instances], dtype=torch.long)
        if face_instances:
            face_crops = torch.stack([self._crops[specs[i].identity] for i in face_instances])
        else:
            face_crops = torch.zeros(0, 3, self.crop_size, self.crop_size)
        return ShapesClip(
            index=index,
            video=video.contiguous(),
            background=background,
            caption=caption,
            specs=specs,
            boxes=boxes,
            visible=visible,
            masks=masks,
            prompts=prompts,
            region_members=members,
            region_masks=region_masks,
            region_captions=region_captions,
            hed=hed.float(),
            depth=depth,
            face_instances=face_instances,
            face_ids=face_ids,
            face_boxes=boxes[face_instances],
            face_crops=face_crops,
            face_masks=masks[face_instances],
            original_size=(h, w),
            crop=(0, 0),
            stride=1,
        )


def _bounce(x: Tensor, lo: float, hi: float) -> Tensor:
    """Reflect a free 1-D trajectory into [lo, hi] (triangle wave)."""
    span = hi - lo
    if span <= 0:
        return torch.full_like(x, (lo + hi) / 2)
    y = (x - lo).remainder(2 * span)
    return lo + torch.where(y > span, 2 * span - y, y)


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
