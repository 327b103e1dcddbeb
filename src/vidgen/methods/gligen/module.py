"""GLIGENModule: gated self-attention + grounding tokens trained on a frozen backbone (official-code-facts A).

Training: the backbone's own objective (sd1.5 / ModelScope: epsilon; Wan: flow), AdamW lr 5e-5
(conf/exp/gligen_*.yaml); ``method.grounding_dropout`` (10 %) of the samples see only null
grounding tokens; captions drop with ``train.cfg_dropout``. Sampling: ``sample.guidance=gligen``
(CFG with scheduled sampling, ``guidance.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from vidgen.backbones import BackboneSpec
from vidgen.data.sample import VideoBatch, VideoSample, collate
from vidgen.diffusion import make_guidance
from vidgen.errors import DataError
from vidgen.instances.gated_attention import MAX_BOXES, grounding_slots, pool_phrases
from vidgen.instances.validate import check_instances
from vidgen.methods.base import DiffusionModule
from vidgen.methods.gligen import guidance as _scheduled  # noqa: F401  (registers "gligen")
from vidgen.methods.gligen.config import GLIGENConfig
from vidgen.methods.gligen.denoiser import GLIGENDenoiser, build_gligen

PROFILE_INSTANCES = 5  # InstanceV Sec. 8: overheads are measured with 5 instance annotations per sample


class GLIGENModule(DiffusionModule):
    required_fields: ClassVar[set[str]] = {"latents", "text_embeds", "instances", "instances.prompt_embeds"}

    def __init__(self, cfg: DictConfig | dict, model: nn.Module | None = None):
        super().__init__(cfg, model)
        self.hp = GLIGENConfig.from_cfg(self.cfg)

    # ----------------------------------------------------------------------------- model
    @classmethod
    def build_model(cls, cfg: DictConfig, spec: BackboneSpec) -> nn.Module:
        hp = GLIGENConfig.from_cfg(cfg)
        size = cfg.backbone.size
        token_dim = hp.token_dim_for(size, spec.tiny_text_dim)
        return build_gligen(
            super().build_model(cfg, spec),
            spec.text_dim_for(size),
            token_dim,
            hp.video_attention,
            hp.visual_position,
        )

    @classmethod
    def example_inputs(cls, spec, size, frames, height, width, model, batch: int = 1) -> dict[str, Tensor]:
        """The base inputs plus ``PROFILE_INSTANCES`` boxes in the 30 slots (the other slots hold null
        tokens: GLIGEN's cost does not depend on how many slots are filled)."""
        inputs = super().example_inputs(spec, size, frames, height, width, model=model, batch=batch)
        if not isinstance(model, GLIGENDenoiser):
            return inputs
        x = inputs["latents"]
        hp_slots, f = MAX_BOXES, x.shape[2]
        masks = torch.zeros(batch, f, hp_slots, device=x.device)
        masks[:, :, :PROFILE_INSTANCES] = 1
        inputs["grounding_boxes"] = torch.rand(batch, f, hp_slots, 4, device=x.device)
        inputs["grounding_masks"] = masks
        inputs["grounding_phrases"] = torch.randn(
            batch, f, hp_slots, spec.text_dim_for(size), device=x.device
        )
        return inputs

    @classmethod
    def sample_transform(cls, cfg: DictConfig, datamodule) -> Callable[[VideoSample], VideoSample]:
        hp = GLIGENConfig.from_cfg(cfg)
        source = f"data={cfg.data.name}" + (f" (data.root={cfg.data.root})" if cfg.data.get("root") else "")

        def transform(sample: VideoSample) -> VideoSample:
            n = 0 if sample.instances is None else sample.instances.boxes.shape[0]
            if n > hp.max_boxes:
                raise DataError(
                    f"{source}, sample {sample.key!r} has {n} instances, more than method.max_boxes="
                    f"{hp.max_boxes} grounding slots. Fix: keep the {hp.max_boxes} largest boxes (as GLIGEN's "
                    "data loader does) or raise method.max_boxes (at most 30)"
                )
            check_instances(sample.instances, sample.key, max(n, 1), source)
            return sample

        return transform

    # ----------------------------------------------------------------------------- inputs
    def grounding(
        self, batch: VideoBatch, latent_frames: int, drop: Tensor | None = None
    ) -> dict[str, Tensor]:
        """GLIGEN's grounding inputs of a batch: boxes / masks / pooled phrases per latent frame;
        rows where ``drop`` is True get all-zero masks (every slot the null token)."""
        inst = batch.instances
        embeds = inst.prompt_embeds
        mask = (
            inst.prompt_mask
            if inst.prompt_mask is not None
            else torch.ones(embeds.shape[:-1], dtype=torch.bool)
        )
        phrases = pool_phrases(embeds, mask.to(embeds.device), self.hp.phrase_pool)
        slots = grounding_slots(
            inst.boxes,
            inst.visible,
            inst.valid,
            phrases,
            latent_frames,
            self.spec.vae_scale[0],
            self.hp.max_boxes,
        )
        masks = slots["masks"]
        if drop is not None:
            masks = masks * (~drop).to(masks.dtype)[:, None, None]
        return {
            "grounding_boxes": slots["boxes"],
            "grounding_masks": masks,
            "grounding_phrases": slots["phrases"],
        }

    # ----------------------------------------------------------------------------- training
    def compute_loss(self, batch: VideoBatch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        x0 = batch.latents
        noise = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        t = self.objective.sample_timesteps(x0.shape[0], gen).to(x0.device)
        x_t = self.objective.add_noise(x0, noise, t)
        text, mask = self.drop_text(batch.text_embeds, batch.text_mask, gen)
        drop = torch.rand(x0.shape[0], generator=gen, device=gen.device) < self.hp.grounding_dropout
        drop = drop.to(x0.device)
        grounding = self.grounding(batch, x0.shape[2], drop)
        pred = self.model(x_t, t, text, text_mask=mask, **grounding)
        loss = self.objective.loss(pred.float(), x0.float(), noise.float(), x_t.float(), t).mean()
        return loss, {"grounding_dropped": drop.float().mean()}

    # ----------------------------------------------------------------------------- sampling
    def make_guidance(self, steps: int):
        name = str(self.cfg.sample.guidance)
        scale = float(self.cfg.sample.guidance_scale)
        if name == "gligen":
            return make_guidance(name, scale=scale, tau=self.hp.scheduled_tau, num_steps=steps)
        return make_guidance(name) if name == "none" else make_guidance(name, scale=scale)

    @torch.no_grad()
    def generate(self, *args, guidance: str = "cfg", **kwargs) -> Tensor:
        """Caption-only sampling (`vidgen sample`): no boxes, so GLIGEN's guidance is plain CFG."""
        return super().generate(*args, guidance="cfg" if guidance == "gligen" else guidance, **kwargs)

    @torch.no_grad()
    def generate_instances(self, batch: VideoBatch, steps: int, seed: int) -> Tensor:
        """Sample latents [B, C, F', H', W'] for a batch's captions and boxes with ``sample.guidance``."""
        shape = tuple(batch.latents.shape)
        grounding = self.grounding(batch, shape[2])
        text, text_mask = batch.text_embeds, batch.text_mask.bool()
        cond = {"text_embeds": text, "text_mask": text_mask, **grounding}
        uncond = {
            "text_embeds": self.null_text_embeds.to(text.dtype)[None].expand_as(text),
            "text_mask": self.null_text_mask[None].expand_as(text_mask),
            **grounding,
            "grounding_masks": torch.zeros_like(grounding["grounding_masks"]),  # null tokens (diffusers)
        }
        return self.sample_branches(shape, cond, uncond, self.make_guidance(steps), steps, seed)

    @torch.no_grad()
    def evaluate(self, datamodule) -> dict[str, float]:
        """Layout IoU of generated shapes-world clips (the exact segmenter finds each instance's prompt)."""
        from vidgen.eval.instance_metrics import shapes_layout_metrics

        dataset = datamodule.dataset
        n = min(self.hp.eval_samples, len(dataset))
        if n <= 0 or not hasattr(dataset, "clip"):
            return {}  # real data: box AP needs a detector (not part of this method)
        samples = [dataset[i] for i in range(n)]
        codec, videos = datamodule.codec(), []
        for i, s in enumerate(samples):
            batch = collate([s]).to(self.device)
            latents = self.generate_instances(batch, self.hp.eval_steps, int(self.cfg.seed) + i)
            videos.append(codec.decode(latents.cpu().float())[0])
        return shapes_layout_metrics(videos, samples)
