"""`data=shapes`: the synthetic shapes world as a datamodule, every sample field filled.

`ShapesDataset[i]` renders clip i of `ShapesWorld` (deterministic in (seed, i)), encodes it with
`ShapesCodec` and the captions with `CaptionEmbedder`, and returns a `VideoSample` with all
groups (instances with masks and prompt embeddings, regions with hed / depth / caption
embeddings, faces, micro-conditions) and the first frame's latents as the image condition.
Encoded samples are cached in memory (per process / dataloader worker), so epochs after the
first cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor
from torch.utils.data import Dataset

from vidgen.data.caption_embedder import CaptionEmbedder
from vidgen.data.datamodule import VideoDataModule
from vidgen.data.sample import FIELDS, Faces, Instances, MicroConditions, Regions, VideoSample
from vidgen.data.shapes import ShapesClip, ShapesWorld
from vidgen.data.shapes_codec import ShapesCodec
from vidgen.errors import ConfigError

SHAPES_FPS = 8.0


class ShapesDataset(Dataset):
    """Map-style dataset of `num_clips` encoded shapes-world clips."""

    def __init__(
        self,
        world: ShapesWorld,
        codec: ShapesCodec,
        embedder: CaptionEmbedder,
        num_clips: int,
        image_condition: bool = True,
        cache: bool = True,
    ):
        self.world = world
        self.codec = codec
        self.embedder = embedder
        self.num_clips = int(num_clips)
        self.image_condition = image_condition
        self.cache = cache
        self._cache: dict[int, VideoSample] = {}

    def __len__(self) -> int:
        return self.num_clips

    def clip(self, index: int) -> ShapesClip:
        """The rendered (pixel-space) clip behind sample `index`."""
        return self.world.render_clip(self._check_index(index))

    def _check_index(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += self.num_clips
        if not 0 <= index < self.num_clips:
            raise IndexError(f"shapes dataset index {index} out of range (num_clips={self.num_clips})")
        return index

    def __getitem__(self, index: int) -> VideoSample:
        index = self._check_index(index)
        sample = self._cache.get(index)
        if sample is None:
            sample = self.encode_clip(self.world.render_clip(index))
            if self.cache:
                self._cache[index] = sample
        return sample

    def encode_clip(self, clip: ShapesClip) -> VideoSample:
        video = clip.video
        latents = self.codec.encode(video[None])[0]
        image_latents = self.codec.encode(clip.first_frame[None])[0] if self.image_condition else None
        # one text-encoder call for every string of the clip
        n, r = len(clip.prompts), len(clip.region_captions)
        emb, mask = self.embedder.encode([clip.caption, *clip.prompts, *clip.region_captions])
        return VideoSample(
            key=f"shapes-{self.world.seed}-{clip.index:06d}",
            latents=latents,
            text_embeds=emb[0],
            text_mask=mask[0],
            caption=clip.caption,
            frame_size=tuple(video.shape[1:]),
            image_latents=image_latents,
            instances=Instances(
                boxes=clip.boxes,
                visible=clip.visible,
                prompts=list(clip.prompts),
                masks=clip.masks,
                prompt_embeds=emb[1 : 1 + n],
                prompt_mask=mask[1 : 1 + n],
            ),
            regions=Regions(
                masks=clip.region_masks,
                captions=list(clip.region_captions),
                hed=clip.hed,
                depth=clip.depth,
                caption_embeds=emb[1 + n : 1 + n + r],
                caption_mask=mask[1 + n : 1 + n + r],
            ),
            faces=Faces(
                boxes=clip.face_boxes,
                id_index=clip.face_ids,
                crops=clip.face_crops,
                id_masks=clip.face_masks,
            ),
            micro=MicroConditions(
                original_size=clip.original_size, crop=clip.crop, stride=clip.stride, fps=SHAPES_FPS
            ),
        )


class ShapesDataModule(VideoDataModule):
    """`data=shapes`: `num_clips` synthetic clips with exact ground truth for every field."""

    def __init__(
        self,
        num_clips: int = 64,
        frames: int = 9,
        height: int = 64,
        width: int = 64,
        latent_channels: int = 16,
        vae_scale: Sequence[int] = (4, 8, 8),
        text_dim: int = 64,
        text_len: int = 32,
        max_instances: int = 4,
        image_condition: bool = True,
        seed: int = 0,
        micro_batch_size: int = 1,
        face_prob: float = 0.25,
        min_faces: int = 1,
        small_overlap: bool = False,
        background_ramp: float = 0.0,
        num_workers: int = 0,
        cache: bool = True,
        val_samples: int = 0,
    ) -> None:
        super().__init__(
            micro_batch_size=micro_batch_size,
            seed=seed,
            num_workers=num_workers,
            max_instances=max_instances,
            val_samples=val_samples,
        )
        if num_clips < 1:
            raise ConfigError(f"data.num_clips={num_clips} must be >= 1")
        if frames is None or height is None or width is None:
            raise ConfigError(
                "data=shapes needs data.frames, data.height and data.width "
                f"(got {frames}, {height}, {width}); set them or let the backbone fill them in"
            )
        vae_scale = tuple(int(v) for v in vae_scale)
        if len(vae_scale) != 3:
            raise ConfigError(f"vae_scale must be (t, h, w), got {vae_scale}")
        t, s = vae_scale[0], vae_scale[1]
        if height % s or width % s:
            raise ConfigError(
                f"data.height={height} and data.width={width} must be multiples of the VAE's "
                f"spatial factor {s}; pick a resolution divisible by {s}"
            )
        if (frames - 1) % t:
            raise ConfigError(
                f"data.frames={frames} must be 1 + a multiple of the VAE's temporal factor {t} "
                f"(e.g. {1 + t * max(1, (frames - 1) // t)})"
            )
        if max_instances < 1:
            raise ConfigError(f"data.max_instances={max_instances} must be >= 1")
        if not 0.0 <= background_ramp <= 0.5:
            raise ConfigError(
                f"data.background_ramp={background_ramp} must be in [0, 0.5] (0: flat backgrounds). Fix: data.background_ramp=0.2"
            )
        if small_overlap and not 2 <= max_instances <= 6:
            raise ConfigError(
                f"data.small_overlap=true puts a small instance on a large one in every clip, so it needs "
                f"2 <= data.max_instances <= 6 (got {max_instances}). Fix: data.max_instances=4"
            )
        self.num_clips = int(num_clips)
        self.frames, self.height, self.width = int(frames), int(height), int(width)
        self.latent_channels = int(latent_channels)
        self.vae_scale = vae_scale
        self.text_dim, self.text_len = int(text_dim), int(text_len)
        self.image_condition = bool(image_condition)
        self.cache = bool(cache)
        if not 0.0 <= face_prob <= 1.0 or min_faces < 0:
            raise ConfigError(f"data.face_prob={face_prob} must be in [0, 1] and data.min_faces={min_faces} >= 0")
        self.world = ShapesWorld(
            self.frames, self.height, self.width, max_instances=max_instances, seed=self.seed,
            face_prob=float(face_prob), min_faces=int(min_faces), small_overlap=bool(small_overlap),
            background_ramp=float(background_ramp),
        )
        # The codec and the text embedder play the role of pretrained models: their seeds are fixed
        # (not the data seed), so a checkpoint trained on one shapes dataset samples with another.
        self._codec = ShapesCodec(self.latent_channels, vae_scale, seed=0)
        self._embedder = CaptionEmbedder(self.text_dim, self.text_len, seed=0)
        self._null: tuple[Tensor, Tensor] | None = None

    def build_dataset(self) -> ShapesDataset:
        return ShapesDataset(
            self.world,
            self._codec,
            self._embedder,
            self.num_clips,
            image_condition=self.image_condition,
            cache=self.cache,
        )

    @property
    def available_fields(self) -> set[str]:
        fields = set(FIELDS)
        if not self.image_condition:
            fields.discard("image_latents")
        return fields

    def null_text(self) -> tuple[Tensor, Tensor]:
        if self._null is None:
            emb, mask = self._embedder.encode([""])
            self._null = (emb[0], mask[0])
        return self._null

    def text_encoder(self) -> CaptionEmbedder:
        return self._embedder

    def codec(self) -> ShapesCodec:
        return self._codec
