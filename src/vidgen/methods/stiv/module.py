"""STIVModule: STIV's T2I / T2V training recipe (Sec. 2, A.1, E, G) on the STIV DiT.

Model: the registry's STIV DiT for ``method.task`` (t2i / t2v config variant) with the Table 2 / 3
switches of ``method.arch``, optionally initialised from earlier runs (``method.init``). Loss:
``method.objective`` (Eq. 1-2 flow matching, or the SD-DDPM baseline) on the tokens MaskDiT kept.
Sampling: the shared loop with CFG renormalisation (Sec. D). Derivations: docs/methods/stiv.md.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from vidgen.backbones import BackboneSpec, build_backbone
from vidgen.backbones.registry import _enable_checkpointing
from vidgen.data.sample import VideoBatch, VideoSample
from vidgen.diffusion import make_guidance, make_scheduler, sample_latents
from vidgen.errors import ConfigError
from vidgen.methods.base import DiffusionModule
from vidgen.methods.stiv import guidance as _guidance  # noqa: F401  (registers "cfg_renorm")
from vidgen.methods.stiv.masking import draw_keep, kept_latent_mask, masked_mse
from vidgen.methods.stiv.objective import OBJECTIVES, make_stiv_objective, sampler_call, scheduler_for
from vidgen.methods.stiv.progressive import initialize

TASKS = ("t2i", "t2v")


@dataclass(frozen=True)
class STIVConfig:
    """``conf/method/stiv.yaml``, parsed once (the only place defaults live)."""

    name: str
    task: str  # t2i | t2v
    objective: str  # flow | ddpm_eps
    arch: dict  # STIVDiT constructor overrides (Table 2 / 3 switches)
    spatial_mask_ratio: float  # MaskDiT (Sec. 2.2): fraction of spatial tokens dropped
    temporal_mask_ratio: float  # Table 3 "+ temp. mask"
    mask_steps: int | None  # masked steps, then unmasked fine-tuning (A.1); None: masked throughout
    mae_loss_weight: float  # MaskDiT's loss on masked tokens (0: loss on kept tokens only)
    cfg_renorm: bool  # Sec. D at sampling
    renorm_granularity: str  # sample | token
    init: dict = field(default_factory=dict)  # {from: RUN_DIR, temporal_from: RUN_DIR}

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"method.task={self.task!r} is not valid; use one of {', '.join(TASKS)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"method.objective={self.objective!r} is not valid; use one of {', '.join(OBJECTIVES)}"
            )
        for key in ("spatial_mask_ratio", "temporal_mask_ratio"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"method.{key}={getattr(self, key)} must be in [0, 1)")
        if self.temporal_mask_ratio and self.task == "t2i":
            raise ConfigError(
                "method.temporal_mask_ratio needs method.task=t2v (an image has one temporal token)"
            )
        unknown = sorted(set(self.init) - {"from", "temporal_from"})
        if unknown:
            raise ConfigError(f"method.init: unknown key(s) {unknown}; valid keys: from, temporal_from")

    @classmethod
    def parse(cls, cfg: DictConfig) -> STIVConfig:
        values = OmegaConf.to_container(cfg.method, resolve=True)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"method: unknown key(s) {unknown} for method=stiv; valid keys: {sorted(names)}"
            )
        try:
            return cls(**values)
        except TypeError as err:
            raise ConfigError(f"method=stiv: {err}; see src/vidgen/conf/method/stiv.yaml") from None


class STIVModule(DiffusionModule):
    required_fields: ClassVar[set[str]] = {"latents", "text_embeds", "micro"}

    def __init__(self, cfg: DictConfig | dict, model: nn.Module | None = None):
        super().__init__(cfg, model)
        self.hp = STIVConfig.parse(self.cfg)
        self.objective = make_stiv_objective(self.hp.objective, **OmegaConf.to_container(self.cfg.objective))

    # ----------------------------------------------------------------------------- model
    @classmethod
    def build_model(cls, cfg: DictConfig, spec: BackboneSpec) -> nn.Module:
        """The ``method.task`` variant of the backbone with ``method.arch``, then ``method.init``."""
        hp, b = STIVConfig.parse(cfg), cfg.backbone
        if b.weights is not None:
            return build_backbone(
                spec,
                size=b.size,
                weights=b.weights,
                init=b.init,
                gradient_checkpointing=b.gradient_checkpointing,
            )
        if b.size == "real" and b.init != "random" and not hp.init.get("from"):
            raise ConfigError(
                f"backbone {spec.name!r} at backbone.size=real needs weights: method.init.from=RUN_DIR "
                "(progressive training), backbone.init=random (from scratch), or backbone.size=tiny"
            )
        config = spec.config_for(b.size, hp.task)
        valid = set(inspect.signature(spec.model_cls).parameters)
        unknown = sorted(set(hp.arch) - valid)
        if unknown:
            raise ConfigError(f"method.arch: unknown STIVDiT option(s) {unknown}; valid: {sorted(valid)}")
        config.update(hp.arch)
        if (hp.spatial_mask_ratio or hp.temporal_mask_ratio) and not config["decoder_blocks"]:
            raise ConfigError("MaskDiT (method.*_mask_ratio > 0) needs method.arch.decoder_blocks >= 1")
        model = spec.model_cls(**config)
        if b.gradient_checkpointing:
            _enable_checkpointing(model, spec)
        initialize(model, hp.init.get("from"), hp.init.get("temporal_from"))
        return spec.adapter_cls(model, spec, b.size).eval()

    @classmethod
    def sample_transform(cls, cfg: DictConfig, datamodule) -> Callable[[VideoSample], VideoSample] | None:
        """T2I trains on images: the first frame of each clip (the shapes world serves both tasks)."""
        if STIVConfig.parse(cfg).task != "t2i":
            return None

        def first_frame(sample: VideoSample) -> VideoSample:
            f, h, w = sample.frame_size
            return dataclasses.replace(sample, latents=sample.latents[:, :1], frame_size=(1, h, w))

        return first_frame

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        c, f, h, w = self.spec.latent_shape(frames, height, width)
        return (c, 1 if self.hp.task == "t2i" else f, h, w)

    # ----------------------------------------------------------------------------- training
    def mask_ratios(self) -> tuple[float, float]:
        """MaskDiT ratios at this step: zero once ``mask_steps`` are done (unmasked fine-tuning)."""
        if self.hp.mask_steps is not None and self.global_step >= self.hp.mask_steps:
            return 0.0, 0.0
        return self.hp.spatial_mask_ratio, self.hp.temporal_mask_ratio

    def compute_loss(self, batch: VideoBatch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        x1 = batch.latents  # [B, C, F, H, W], the data (x1 in Eq. 1)
        b, dev = x1.shape[0], x1.device
        noise = torch.randn(x1.shape, generator=gen, device=gen.device, dtype=x1.dtype).to(dev)
        t = self.objective.sample_timesteps(b, gen).to(dev)
        x_t = self.objective.add_noise(x1, noise, t)
        text, text_mask = self.drop_text(batch.text_embeds, batch.text_mask, gen)
        dit = self.model.model
        pt, p = dit.temporal_patch_size, dit.patch_size
        grid = (x1.shape[2] // pt, x1.shape[3] // p, x1.shape[4] // p)
        ratio_s, ratio_t = self.mask_ratios()
        keep_s = draw_keep(b, grid[1] * grid[2], ratio_s, gen)
        keep_t = draw_keep(b, grid[0], ratio_t, gen)
        micro = self.micro(batch)
        pred = self.model(
            x_t,
            t,
            text,
            text_mask,
            micro=micro,
            keep_spatial=None if keep_s is None else keep_s.to(dev),
            keep_temporal=None if keep_t is None else keep_t.to(dev),
        )
        err = (pred.float() - self.objective.target(x1, noise, x_t, t).float()) ** 2
        kept = kept_latent_mask(keep_s, keep_t, b, grid, (pt, p, p), dev)
        loss = masked_mse(err, kept)
        extra = {}
        if self.hp.mae_loss_weight and (keep_s is not None or keep_t is not None):
            extra["loss_masked"] = masked_mse(err, 1.0 - kept).mean()
            loss = loss + self.hp.mae_loss_weight * masked_mse(err, 1.0 - kept)
        return loss.mean(), extra

    @staticmethod
    def micro(batch: VideoBatch) -> dict[str, Tensor] | None:
        if batch.micro is None:
            return None
        return {k: batch.micro[k].float() for k in ("original_size", "crop", "stride")}

    # ----------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate(
        self,
        text_embeds: Tensor,
        text_mask: Tensor,
        null_embeds: Tensor,
        null_mask: Tensor,
        latent_shape: tuple[int, ...],
        steps: int,
        guidance: str = "cfg",
        guidance_scale: float = 7.5,
        seed: int = 0,
        image_latents: Tensor | None = None,
    ) -> Tensor:
        """The shared sampler loop on this objective's scheduler; ``guidance=cfg`` becomes
        ``cfg_renorm`` when ``method.cfg_renorm`` (Table 2 "+ Renorm" onward)."""
        if image_latents is not None:
            raise ConfigError("method=stiv part 1 is text-conditioned only (TI2V is STIV part 2)")
        cls_name, sched_cfg = scheduler_for(self.hp.objective)
        kwargs: dict[str, Any] = {}
        if guidance == "cfg" and self.hp.cfg_renorm:
            guidance = "cfg_renorm"
            kwargs["granularity"] = self.hp.renorm_granularity
        if guidance in ("cfg", "cfg_renorm"):
            kwargs["scale"] = guidance_scale
        cond = {"text_embeds": text_embeds, "text_mask": text_mask}
        uncond = {
            "text_embeds": null_embeds.expand_as(text_embeds),
            "text_mask": null_mask.expand_as(text_mask),
        }
        return sample_latents(
            sampler_call(self.hp.objective, self.model),
            make_scheduler(cls_name, sched_cfg),
            (text_embeds.shape[0], *latent_shape),
            cond,
            uncond,
            make_guidance(guidance, **kwargs),
            num_steps=steps,
            generator=torch.Generator(device="cpu").manual_seed(int(seed)),
            device=self.device,
        )
