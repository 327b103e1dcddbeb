"""InstanceVModule: IMCA + STAPE trained on a frozen Wan2.1, SAUG dropout and guidance (InstanceV Sec. 4, 9.2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from vidgen.backbones import BackboneSpec
from vidgen.data.sample import VideoBatch, VideoSample, collate
from vidgen.errors import ConfigError
from vidgen.instances.grounding import instance_token_masks
from vidgen.methods.base import DiffusionModule, _plain
from vidgen.methods.instancev import guidance as _saug  # noqa: F401  (registers "saug")
from vidgen.methods.instancev.config import InstanceVConfig
from vidgen.methods.instancev.denoiser import InstanceVWan
from vidgen.methods.instancev.transform import SENTINEL_EMBEDS, make_transform, pad_tokens
from vidgen.optim import build_optimizer

PROFILE_INSTANCES = 5  # Sec. 8: overheads are measured with 5 instance annotations per sample


class InstanceVModule(DiffusionModule):
    required_fields: ClassVar[set[str]] = {"latents", "text_embeds", "instances", "instances.prompt_embeds"}

    def __init__(self, cfg: DictConfig | dict, model: nn.Module | None = None):
        super().__init__(cfg, model)
        self.hp = InstanceVConfig.from_cfg(self.cfg)
        # With IMCA off (Table 3 "Backbone") nothing trains; an empty parameter keeps the training
        # loop valid (the loss depends on it, the optimiser steps it) and leaves the backbone as it is.
        trains = any(p.requires_grad for p in self.model.parameters())
        self.nothing_trains = None if trains else nn.Parameter(torch.zeros(0))

    # ----------------------------------------------------------------------------- model
    @classmethod
    def build_model(cls, cfg: DictConfig, spec: BackboneSpec) -> nn.Module:
        if spec.family != "wan":
            raise ConfigError(
                f"method=instancev is implemented on Wan2.1 backbones; backbone={spec.name}. "
                "Fix: backbone=wan2.1-1.3b or backbone=wan2.1-14b"
            )
        hp = InstanceVConfig.from_cfg(cfg)
        return InstanceVWan(
            super().build_model(cfg, spec), imca=hp.imca, stape=hp.stape, mask_base=hp.mask_base
        )

    @classmethod
    def example_inputs(cls, spec, size, frames, height, width, model, batch: int = 1) -> dict[str, Tensor]:
        """The base inputs plus ``PROFILE_INSTANCES`` instances of full text length over the whole frame."""
        inputs = super().example_inputs(spec, size, frames, height, width, model=model, batch=batch)
        if not isinstance(model, InstanceVWan):
            return inputs
        x, text = inputs["latents"], inputs["text_embeds"]
        _, p_h, p_w = spec.patch_size
        n, (f, gh, gw) = PROFILE_INSTANCES, (x.shape[2], x.shape[3] // p_h, x.shape[4] // p_w)
        inputs["instance_embeds"] = torch.randn(batch, n, *text.shape[1:], device=x.device)
        inputs["instance_masks"] = torch.ones(batch, f, n, gh * gw, dtype=torch.bool, device=x.device)
        return inputs

    @classmethod
    def sample_transform(cls, cfg: DictConfig, datamodule) -> Callable[[VideoSample], VideoSample]:
        return make_transform(cfg, datamodule)

    # ----------------------------------------------------------------------------- inputs
    def instance_inputs(self, batch: VideoBatch, latent_shape: tuple[int, ...]) -> dict[str, Tensor]:
        """Conditional instance inputs and SAUG's sentinel embeddings of a batch.

        Returns instance_embeds [B, N, L, D_text] (zero where padded), instance_masks [B, F', N, S]
        and, with SAUG, sentinel_embeds [B, N, L, D_text] (instance k -> <extra_id_k>).
        """
        inst = batch.instances
        _, f, h, w = latent_shape[-4:]
        _, p_h, p_w = self.spec.patch_size
        embeds = inst.prompt_embeds * inst.prompt_mask[..., None].to(inst.prompt_embeds.dtype)
        length = self.hp.instance_text_len or embeds.shape[2]
        embeds = pad_tokens(embeds, length)
        masks = instance_token_masks(
            inst.boxes,
            inst.visible,
            inst.valid,
            f,
            self.spec.vae_scale[0],
            (h // p_h, w // p_w),
            masks=getattr(inst, "masks", None) if self.hp.grounding == "mask" else None,
            grounding=self.hp.grounding,
        )
        out = {"instance_embeds": embeds, "instance_masks": masks}
        if self.hp.saug:
            sentinels = batch.extras[SENTINEL_EMBEDS][:, : embeds.shape[1]]  # [B, N, SENTINEL_LEN, D]
            out["sentinel_embeds"] = (
                pad_tokens(sentinels, length).to(embeds.dtype) * inst.valid[..., None, None]
            )
        return out

    def branches(self, batch: VideoBatch, latent_shape, text: Tensor, text_mask: Tensor) -> tuple[dict, dict]:
        """(cond, uncond) model kwargs; training's dropout and sampling both use this uncond.

        SAUG (Eq. 7, Sec. 4.3 / 10.4): uncond keeps M and the caption, instance k's prompt ->
        ``<extra_id_k>``: Eq. 7's two terms differ only in I, and Sec. 4.3 empties only the instance
        prompts (``method.saug_caption=keep``, the default: the equation as printed). ``drop`` is the
        other reading (null caption too: Sec. 9.2 puts SAUG at the backbone's CFG scale 5 and says a
        lower scale weakens text-visual alignment, which would need the caption in the guided
        difference). Plain CFG (``method.saug=false``):
        null caption and Sec. 9.2's "all-zero" grounding (zero prompts, no covered token)."""
        ins = self.instance_inputs(batch, latent_shape)
        cond = {
            "text_embeds": text,
            "text_mask": text_mask,
            "instance_embeds": ins["instance_embeds"],
            "instance_masks": ins["instance_masks"],
        }
        uncond_text = {
            "text_embeds": self.null_text_embeds.to(text.dtype)[None].expand_as(text),
            "text_mask": self.null_text_mask[None].expand_as(text_mask),
        }
        if not self.hp.saug:
            zeros = {k: torch.zeros_like(ins[k]) for k in ("instance_embeds", "instance_masks")}
            return cond, {**uncond_text, **zeros}
        if self.hp.saug_caption == "keep":
            uncond_text = {"text_embeds": text, "text_mask": text_mask}
        sentinels = {"instance_embeds": ins["sentinel_embeds"], "instance_masks": ins["instance_masks"]}
        return cond, {**uncond_text, **sentinels}

    # ----------------------------------------------------------------------------- training
    def compute_loss(self, batch: VideoBatch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        """Flow-matching loss; a train.cfg_dropout share of samples (20%, Sec. 9.2) takes the
        unconditional branch of ``branches`` (SAUG: sentinels with masks kept)."""
        x0 = batch.latents
        noise = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        t = self.objective.sample_timesteps(x0.shape[0], gen).to(x0.device)
        drop = torch.rand(x0.shape[0], generator=gen, device=gen.device) < float(self.cfg.train.cfg_dropout)
        drop = drop.to(x0.device)
        x_t = self.objective.add_noise(x0, noise, t)
        cond, uncond = self.branches(batch, x0.shape, batch.text_embeds, batch.text_mask.bool())
        kwargs = {
            k: torch.where(drop.view(-1, *[1] * (v.ndim - 1)), uncond[k].to(v.dtype), v)
            for k, v in cond.items()
        }
        pred = self.model(x_t, t, **kwargs)
        loss = self.objective.loss(pred.float(), x0.float(), noise.float(), x_t.float(), t).mean()
        if self.nothing_trains is not None:
            loss = loss + self.nothing_trains.sum()  # 0, but differentiable
        return loss, {"uncond_fraction": drop.float().mean()}

    def configure_optimizers(self):
        if self.nothing_trains is None:
            return super().configure_optimizers()
        # Table 3 "Backbone": an optimiser over the empty stand-in, so steps run and change nothing
        return build_optimizer([self.nothing_trains], **_plain(self.cfg.optim))

    # ----------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate(self, *args, guidance: str = "cfg", **kwargs) -> Tensor:
        """Caption-only sampling (`vidgen sample`): no instances, so SAUG is plain CFG at the same scale."""
        return super().generate(*args, guidance="cfg" if guidance == "saug" else guidance, **kwargs)

    @torch.no_grad()
    def generate_instances(self, batch: VideoBatch, steps: int, seed: int) -> Tensor:
        """Sample latents [B, C, F', H', W'] for a batch's captions and instances with ``sample.guidance``."""
        shape = tuple(batch.latents.shape)
        cond, uncond = self.branches(batch, shape, batch.text_embeds, batch.text_mask.bool())
        return self.sample_branches(shape, cond, uncond, self.configured_guidance(), steps, seed)

    @torch.no_grad()
    def evaluate(self, datamodule) -> dict[str, float]:
        """Layout IoU (and, with ``method.clip_models``, instance CLIP-Score) of generated shapes-world clips (Sec. 5.2)."""
        from vidgen.eval.instance_metrics import shapes_layout_metrics

        dataset = datamodule.dataset
        n = min(self.hp.eval_samples, len(dataset))
        if n <= 0 or not hasattr(dataset, "clip"):
            return {}  # real data: InstanceBench needs a detector and CLIP from local folders (eval/instance_metrics)
        samples = [dataset[i] for i in range(n)]
        codec, videos = datamodule.codec(), []
        for i, s in enumerate(samples):
            batch = collate([s]).to(self.device)
            videos.append(
                codec.decode(
                    self.generate_instances(batch, self.hp.eval_steps, int(self.cfg.seed) + i).cpu().float()
                )[0]
            )
        metrics = shapes_layout_metrics(videos, samples)
        folders = {k: v for k, v in self.hp.clip_models.items() if v}
        if folders:
            from vidgen.eval.instance_metrics import load_clip, shapes_clip_metrics

            clips = {k: load_clip(v, f"method.clip_models.{k}") for k, v in folders.items()}
            metrics.update(
                {f"instancebench/{k}": v for k, v in shapes_clip_metrics(videos, samples, clips).items()}
            )
        return metrics
