"""DiffusionModule: the training loop every method shares.

It owns the objective (as the backbone was trained: CogVideoX v-prediction, ModelScope epsilon,
Wan flow matching), timestep sampling, caption dropout for classifier-free guidance,
optimiser and LR schedule, gradient clipping / accumulation (through the Trainer), logging and
sampling. A method subclass changes only what it must:

- `build_model(cfg, spec)`   the denoiser (default: the plain backbone; JDM inflates it, ...)
- `required_fields`          the sample fields it reads (checked against the data at start-up)
- `denoise(...)`             how a batch is fed to the denoiser (extra conditions)
- `compute_loss(batch, gen)` extra loss terms
- `sample_transform(...)`     per-sample data derivation (VideoSample.extras), run in the loader
- `latent_shape(...)`, `decode_sample(...)`  what sampling produces (JDM: video + mask)
- `evaluate(datamodule)`      metrics logged to W&B, metrics.csv and summary.json

Randomness of a training step (noise, timesteps, dropout) comes from a generator seeded by
(seed, micro-step, rank), never from the global RNG, so a resumed run reproduces the losses of
an uninterrupted one bit for bit on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from vidgen.backbones import BackboneSpec, build_backbone, get_backbone
from vidgen.data.sample import VideoBatch, VideoSample
from vidgen.diffusion import make_guidance, make_objective, make_scheduler, sample_latents
from vidgen.errors import ConfigError
from vidgen.optim import build_lr_schedule, build_optimizer


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


class DiffusionModule(L.LightningModule):
    required_fields: ClassVar[set[str]] = {"latents", "text_embeds"}

    def __init__(self, cfg: DictConfig | dict, model: nn.Module | None = None):
        super().__init__()
        self.cfg = OmegaConf.create(_plain(cfg))
        self.spec: BackboneSpec = get_backbone(self.cfg.backbone.name)
        self.model = model if model is not None else self.build_model(self.cfg, self.spec)
        self.model.train()  # from_pretrained returns eval mode; Lightning keeps submodule modes as they are
        self.objective = make_objective(
            self.spec.objective,
            self.spec.scheduler_cls,
            self.spec.scheduler_config,
            **_plain(self.cfg.objective),
        )
        text_len = self.spec.text_len_for(self.cfg.backbone.size)
        text_dim = self.spec.text_dim_for(self.cfg.backbone.size)
        # The empty-prompt embedding that replaces a dropped caption; set from the data.
        self.register_buffer("null_text_embeds", torch.zeros(text_len, text_dim), persistent=False)
        self.register_buffer("null_text_mask", torch.zeros(text_len, dtype=torch.bool), persistent=False)

    # ----------------------------------------------------------------------------- model
    @classmethod
    def build_model(cls, cfg: DictConfig, spec: BackboneSpec) -> nn.Module:
        b = cfg.backbone
        return build_backbone(
            spec,
            size=b.size,
            weights=b.weights,
            init=b.init,
            gradient_checkpointing=b.gradient_checkpointing,
            # plain lists and dicts: diffusers writes the constructor kwargs to config.json on export
            tiny_config=OmegaConf.to_container(b.tiny_config) if b.tiny_config is not None else None,
        )

    @classmethod
    def example_inputs(
        cls,
        spec: BackboneSpec,
        size: str,
        frames: int,
        height: int,
        width: int,
        model: nn.Module,
        batch: int = 1,
    ) -> dict[str, Tensor]:
        """Denoiser inputs for one forward at a pixel resolution (profiling, benchmarks)."""
        device = next(model.parameters()).device
        c, f, h, w = spec.latent_shape(frames, height, width)
        inputs = {
            "latents": torch.randn(batch, c, f, h, w, device=device),
            "timesteps": torch.full((batch,), 500, device=device),
            "text_embeds": torch.randn(
                batch, spec.text_len_for(size), spec.text_dim_for(size), device=device
            ),
        }
        if spec.image_condition:
            inputs["image_latents"] = torch.randn(batch, c, 1, h, w, device=device)
        return inputs

    @classmethod
    def sample_transform(cls, cfg: DictConfig, datamodule) -> Callable[[VideoSample], VideoSample] | None:
        """A per-sample transform the datamodule applies on load (None: samples as they are)."""
        return None

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """Shape [C, F', H', W'] of the latents `generate` samples at a pixel resolution."""
        return self.spec.latent_shape(frames, height, width)

    def decode_sample(self, latents: Tensor, codec) -> Tensor:
        """Generated latents [B, C, F', H', W'] -> pixels [B, 3, F, H, W] in [-1, 1] to write."""
        return codec.decode(latents.float()).clamp(-1, 1)

    @torch.no_grad()
    def evaluate(self, datamodule) -> dict[str, float]:
        """Metrics of the current weights (e.g. JDM's mask IoU), keyed without the "eval/" prefix.

        Called by the trainer every `train.eval_every` steps and at the end of training.
        """
        return {}

    def set_null_text(self, embeds: Tensor, mask: Tensor) -> None:
        self.null_text_embeds.copy_(embeds.to(self.null_text_embeds))
        self.null_text_mask.copy_(mask.to(torch.bool))

    def denoise(
        self, x_t: Tensor, t: Tensor, text_embeds: Tensor, text_mask: Tensor, batch: VideoBatch | None
    ):
        """One denoiser call; methods feed their extra conditions here."""
        image = batch.image_latents if (batch is not None and self.spec.image_condition) else None
        return self.model(x_t, t, text_embeds, text_mask=text_mask, image_latents=image)

    # ----------------------------------------------------------------------------- training
    def step_generator(self, batch_idx: int) -> torch.Generator:
        """Randomness of one micro-step, derived from (seed, micro-step, rank) only."""
        accumulate = self.trainer.accumulate_grad_batches if self._trainer is not None else 1
        micro_step = self.global_step * accumulate + batch_idx % accumulate
        rank = self.global_rank if self._trainer is not None else 0
        seed = (int(self.cfg.seed) * 1_000_003 + micro_step) * 1_009 + rank
        return torch.Generator(device=self.device).manual_seed(seed % (2**63))

    def drop_text(self, embeds: Tensor, mask: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Replace captions by the empty prompt with probability train.cfg_dropout (CFG training)."""
        p = float(self.cfg.train.cfg_dropout)
        drop = torch.rand(embeds.shape[0], generator=gen, device=embeds.device) < p
        if not drop.any():
            return embeds, mask
        keep = ~drop
        embeds = torch.where(keep[:, None, None], embeds, self.null_text_embeds.to(embeds.dtype)[None])
        mask = torch.where(keep[:, None], mask, self.null_text_mask[None])
        return embeds, mask

    def compute_loss(self, batch: VideoBatch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        x0 = batch.latents
        noise = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        t = self.objective.sample_timesteps(x0.shape[0], gen).to(x0.device)
        x_t = self.objective.add_noise(x0, noise, t)
        text, mask = self.drop_text(batch.text_embeds, batch.text_mask, gen)
        pred = self.denoise(x_t, t, text, mask, batch)
        loss = self.objective.loss(pred.float(), x0.float(), noise.float(), x_t.float(), t).mean()
        return loss, {}

    def training_step(self, batch: VideoBatch, batch_idx: int) -> Tensor:
        loss, extra = self.compute_loss(batch, self.step_generator(batch_idx))
        # logger=False: RunRecorder sends one record per optimizer step (loss, lr, these) to W&B
        self.log("train/loss", loss, prog_bar=True, logger=False, batch_size=len(batch))
        for name, value in extra.items():
            self.log(f"train/{name}", value, logger=False, batch_size=len(batch))
        return loss

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return (
            batch.to(device)
            if isinstance(batch, VideoBatch)
            else super().transfer_batch_to_device(batch, device, dataloader_idx)
        )

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optim_cfg = _plain(self.cfg.optim)
        optimizer = build_optimizer(params, **optim_cfg)
        sched_cfg = dict(_plain(self.cfg.schedule))
        scheduler, interval = build_lr_schedule(
            optimizer, max_steps=int(self.cfg.train.max_steps), **sched_cfg
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    # Schedules whose shape depends on train.max_steps cannot be stretched when a run is resumed.
    _STEP_BOUND_SCHEDULES = ("onecycle", "cosine_with_restarts")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["vidgen"] = {
            "max_steps": int(self.cfg.train.max_steps),
            "schedule": str(self.cfg.schedule.name),
            # what vidgen.checkpoints.check_matches compares before resume / sample / export
            **{"exp": str(self.cfg.exp_name), "method": str(self.cfg.method.name)},
            **{"backbone": str(self.cfg.backbone.name), "backbone_size": str(self.cfg.backbone.size)},
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("vidgen", {})
        now = int(self.cfg.train.max_steps)
        if saved.get("schedule") in self._STEP_BOUND_SCHEDULES and saved.get("max_steps") not in (None, now):
            raise ConfigError(
                f"this run folder was trained with schedule={saved['schedule']} over train.max_steps="
                f"{saved['max_steps']}; resuming with train.max_steps={now} would break the schedule. "
                f"Resume with train.max_steps={saved['max_steps']}, or start a new run (run.dir=...)"
            )

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
        guidance_scale: float = 6.0,
        seed: int = 0,
        image_latents: Tensor | None = None,
    ) -> Tensor:
        """Sample latents [B, *latent_shape] through the shared sampler loop."""
        b = text_embeds.shape[0]
        scheduler = make_scheduler(self.spec.scheduler_cls, self.spec.scheduler_config)
        cond = {"text_embeds": text_embeds, "text_mask": text_mask}
        uncond = {
            "text_embeds": null_embeds.expand_as(text_embeds),
            "text_mask": null_mask.expand_as(text_mask),
        }
        if image_latents is not None:
            cond["image_latents"] = uncond["image_latents"] = image_latents
        guide = (
            make_guidance(guidance, scale=guidance_scale) if guidance == "cfg" else make_guidance(guidance)
        )
        return self.sample_branches((b, *latent_shape), cond, uncond, guide, steps, seed, scheduler)

    def sampler_step(self, x: Tensor, t: Tensor, **kwargs: Tensor) -> Tensor:
        """The model at timestep ``t`` (one value for the batch, or one per row): the sampler's callable."""
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t
        return self.model(x, t.to(x.device), **kwargs)

    def configured_guidance(self, **extra):
        """``sample.guidance`` at ``sample.guidance_scale`` (``none`` takes no scale); ``extra`` goes to
        the guidance's constructor (e.g. MIS's fraction)."""
        name = str(self.cfg.sample.guidance)
        if name == "none":
            return make_guidance(name)
        return make_guidance(name, scale=float(self.cfg.sample.guidance_scale), **extra)

    def sample_branches(
        self, shape, cond: dict, uncond: dict, guide, steps: int, seed: int, scheduler=None, **kwargs
    ) -> Tensor:
        """The shared sampler loop over ``cond`` / ``uncond`` model kwargs on this backbone's scheduler
        (or ``scheduler``), seeded on the CPU so a sample is the same on any device."""
        return sample_latents(
            self.sampler_step,
            scheduler or make_scheduler(self.spec.scheduler_cls, self.spec.scheduler_config),
            tuple(shape),
            cond,
            uncond,
            guide,
            num_steps=steps,
            generator=torch.Generator(device="cpu").manual_seed(int(seed)),
            device=self.device,
            **kwargs,
        )
