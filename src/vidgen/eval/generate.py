"""One model built once, many prompts: the sampling path of `vidgen sample` for `vidgen eval`.

The method's guidance and the sampler settings are the run's ``sample.*`` (the paper's: steps,
guidance, guidance_scale); weights come from a checkpoint, or from ``backbone.weights`` for an
untrained released model (the "without method" rows).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from vidgen.backbones import get_backbone
from vidgen.errors import ConfigError
from vidgen.methods import method_class
from vidgen.train import build_datamodule, data_resolution


class Generator:
    def __init__(self, cfg: DictConfig, ckpt: Path | None):
        from vidgen.sampling import load_weights

        self.spec = get_backbone(cfg.backbone.name)
        if ckpt is not None:
            cfg = OmegaConf.merge(cfg, {"backbone": {"init": "random", "weights": None}})  # weights from ckpt
        self.cfg = cfg
        self.module = method_class(cfg.method.name)(cfg)
        if ckpt is not None:
            load_weights(self.module, ckpt, cfg)
        # on the GPU when there is one (slurm/eval.sh gives each task one); decoding stays on the codec's CPU
        wants_gpu = OmegaConf.select(cfg, "trainer.accelerator", default="auto") in ("gpu", "auto")
        self.device = torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")
        self.module.eval().to(self.device)
        self.datamodule = build_datamodule(cfg, self.spec, micro_batch_size=1)
        self.encoder, self.codec = self.datamodule.text_encoder(), self.datamodule.codec()
        self.null = [t.to(self.device) for t in self.encoder.encode([str(cfg.sample.negative_prompt)])]
        self.frames, self.height, self.width = data_resolution(cfg, self.spec)
        self.upsampler, self.fps = None, 8.0
        if cfg.sample.get("upsampler"):  # STIV-JIT-TUP (STIV Table 6): the cascade, in its own run folder
            from vidgen.methods.stiv.cascade import load_upsampler

            shape = self.module.latent_shape(self.frames, self.height, self.width)
            self.upsampler = load_upsampler(cfg.sample.upsampler, self.module, shape, self.null[0].shape[-1])
            self.fps = 16.0  # the TUP doubles the frame rate, as `vidgen sample upsampler=` writes it

    def ground_on_clips(self) -> None:
        """Instance-grounded methods (InstanceV) sample each shapes clip with that clip's own instances
        (prompts + boxes, through the method's transform and ``generate_instances``), as InstanceBench
        generates each prompt with its layout (InstanceV Sec. 5.2); identity-preserving methods
        (Ingredients) with that clip's reference faces (``generate_batch``), as FaceSim compares each
        generated face with its reference (Ingredients Sec. 4.1); other methods are unaffected."""
        if hasattr(self.module, "generate_instances"):
            self.grounded = "instances"
        elif hasattr(self.module, "generate_faces") and hasattr(self.module, "generate_batch"):
            self.grounded = "faces"
        if self.grounded:
            self.datamodule.transform = type(self.module).sample_transform(self.cfg, self.datamodule)

    grounded = ""

    @torch.no_grad()
    def image_latents(self, path: str) -> Tensor:
        """Latents of a conditioning image file (suite=vbench-i2v), resized to the model's frame size
        (``adapters/vbench_i2v.image_pixels``): the method's ``condition_latents`` (STIV TI2V, which checks
        that the model takes one image) or, for an image-conditioned backbone, the codec's encoding."""
        from vidgen.eval.adapters.vbench_i2v import image_pixels

        pixels = image_pixels(path, self.height, self.width)  # [1, 3, 1, H, W]
        if hasattr(self.module, "condition_latents"):
            import tempfile

            from vidgen.data.video_io import from_model_pixels

            with tempfile.TemporaryDirectory() as tmp:  # the method reads sample.image from a file
                from PIL import Image

                png = Path(tmp) / "image.png"
                Image.fromarray(from_model_pixels(pixels[0])[0].numpy()).save(png)
                cfg = OmegaConf.merge(self.cfg, {"sample": {"image": str(png), "video": None}})
                latents = self.module.condition_latents(cfg, self.codec, self.frames, self.height, self.width)
            if latents is None:
                raise ConfigError(
                    f"method={self.cfg.method.name} takes no conditioning image (suite=vbench-i2v)"
                )
            return latents.to(self.device)
        if self.spec.image_condition:
            return self.codec.encode(pixels)[0][None].to(self.device)
        raise ConfigError(
            f"suite=vbench-i2v needs an image-conditioned model (STIV TI2V, an I2V backbone); "
            f"exp={self.cfg.get('exp_name', '?')} (backbone {self.spec.name}, method {self.cfg.method.name}) is not"
        )

    @torch.no_grad()
    def __call__(self, prompt: str, seed: int, index: int = 0, image: str | None = None) -> Tensor:
        """One video [3, F, H, W] in [-1, 1]; ``image``: a conditioning image file (suite=vbench-i2v), else
        image-conditioned backbones use clip ``index``'s first frame; after ``ground_on_clips``,
        instance-grounded / identity-preserving methods use clip ``index``'s instances / faces."""
        if self.grounded:
            from vidgen.data.sample import collate

            batch = collate([self.datamodule.dataset[index]]).to(self.device)
            steps = int(self.cfg.sample.steps)
            latents = (self.module.generate_instances(batch, steps, int(seed)) if self.grounded == "instances"
                       else self.module.generate_batch(batch, steps, int(seed)))  # fmt: skip
            return self.module.decode_sample(latents.cpu(), self.codec)[0]
        embeds, mask = (t.to(self.device) for t in self.encoder.encode([prompt]))
        if image:
            image_latents = self.image_latents(image)
        elif self.spec.image_condition:
            if self.cfg.data.name != "shapes":
                raise ConfigError(f"{self.spec.name} is image-conditioned; `vidgen eval` conditions it on "
                                  "data=shapes clips or on suite=vbench-i2v's images only")  # fmt: skip
            image_latents = self.datamodule.dataset[index].image_latents[None].to(self.device)
        else:
            image_latents = None
        latents = self.module.generate(
            embeds,
            mask,
            *self.null,
            latent_shape=self.module.latent_shape(self.frames, self.height, self.width),
            steps=int(self.cfg.sample.steps),
            guidance=str(self.cfg.sample.guidance),
            guidance_scale=float(self.cfg.sample.guidance_scale),
            seed=int(seed),
            image_latents=image_latents,
        )
        if self.upsampler is not None:
            latents = self.upsampler(latents, embeds, mask, *self.null, int(seed))
        return self.module.decode_sample(latents.cpu(), self.codec)[0]


def write_atomic(path: Path, video: Tensor, fps: float = 8) -> None:
    """The mp4 (or, for a ``.png`` path, the first frame: T2I suites) appears whole or not at all."""
    from vidgen.data.video_io import from_model_pixels, write_video

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # the suffix picks the container
    try:
        if path.suffix == ".png":
            from PIL import Image

            Image.fromarray(from_model_pixels(video)[0].numpy()).save(tmp)
        else:
            write_video(tmp, video, fps=fps)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_model_video(path: Path) -> Tensor:
    """An mp4 back as [3, F, H, W] in [-1, 1]."""
    from vidgen.data.video_io import read_video, to_model_pixels

    frames, _ = read_video(path)
    return to_model_pixels(frames)
