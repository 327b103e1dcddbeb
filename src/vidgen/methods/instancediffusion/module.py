"""InstanceDiffusionModule: fusers, tokenizers and ScaleU trained on a frozen SD1.5 U-Net (epsilon MSE);
ported to Wan2.1 (`wan.py`, flow objective, no ScaleU) and ModelScope (`modelscope.py`), grounding per latent frame.

Training follows the released recipe (the slides have none): epsilon MSE, AdamW 5e-5 constant after
5k warm-up, EMA 0.9999 (experiments/instancediffusion_sd15.yaml); per-format and whole-grounding
drops (``format_switches``). Sampling: CFG with null grounding in the unconditional branch, and
the multi-instance sampler (guidance ``mis``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from vidgen.backbones import BackboneSpec
from vidgen.data.sample import VideoBatch, VideoSample, collate
from vidgen.diffusion import make_scheduler
from vidgen.errors import ConfigError
from vidgen.methods.base import DiffusionModule
from vidgen.methods.instancediffusion.config import InstanceDiffusionConfig
from vidgen.methods.instancediffusion.denoiser import InstanceDiffusionUNet
from vidgen.methods.instancediffusion.mask_bits import pack_bits
from vidgen.methods.instancediffusion.modelscope import InstanceDiffusionModelScope
from vidgen.methods.instancediffusion.sampler import MultiInstanceGuidance, sample_multi_instance
from vidgen.methods.instancediffusion.tokenizers import ALL_FORMATS, format_switches
from vidgen.methods.instancediffusion.transform import KEYS, make_transform
from vidgen.methods.instancediffusion.wan import InstanceDiffusionWan, check_skip_feature
from vidgen.methods.instancev.transform import pad_tokens

PROFILE_INSTANCES = 5  # InstanceV Sec. 8: overheads are measured with 5 instance annotations


def slot_valid(valid: Tensor) -> Tensor:
    """[B, N] or per latent frame [B, F', N] -> [B, N]: slots holding an instance in any frame."""
    valid = valid.bool()
    return valid.any(1) if valid.dim() == 3 else valid


class InstanceDiffusionModule(DiffusionModule):
    required_fields: ClassVar[set[str]] = {"latents", "text_embeds", "instances", "instances.prompt_embeds"}

    def __init__(self, cfg: DictConfig | dict, model: nn.Module | None = None):
        super().__init__(cfg, model)
        self.hp = InstanceDiffusionConfig.from_cfg(self.cfg)

    @classmethod
    def build_model(cls, cfg: DictConfig, spec: BackboneSpec) -> nn.Module:
        hp = InstanceDiffusionConfig.from_cfg(cfg)
        if spec.family == "wan":
            check_skip_feature(hp, spec.name)  # before building the backbone
            return InstanceDiffusionWan(super().build_model(cfg, spec), hp)
        if spec.family == "modelscope":
            return InstanceDiffusionModelScope(super().build_model(cfg, spec), hp)
        if spec.family != "sd":
            raise ConfigError(
                f"method=instancediffusion is implemented on sd1.5, modelscope-t2v and Wan2.1; "
                f"backbone={spec.name}. Fix: backbone=sd1.5, backbone=modelscope-t2v or backbone=wan2.1-1.3b"
            )
        return InstanceDiffusionUNet(super().build_model(cfg, spec), hp)

    @classmethod
    def example_inputs(cls, spec, size, frames, height, width, model, batch: int = 1) -> dict[str, Tensor]:
        """The base inputs plus ``PROFILE_INSTANCES`` instances with every inference format given
        (InstanceV Table 1 measures overheads with 5 instance annotations per sample)."""
        inputs = super().example_inputs(spec, size, frames, height, width, model=model, batch=batch)
        video = isinstance(model, (InstanceDiffusionWan, InstanceDiffusionModelScope))
        if video:
            uni = model.position_net.unifusion
        elif isinstance(model, InstanceDiffusionUNet):
            uni = model.model.position_net.unifusion
        else:
            return inputs
        n, dev, (h, w) = uni.slots, inputs["latents"].device, inputs["latents"].shape[-2:]
        valid = (torch.arange(n, device=dev) < PROFILE_INSTANCES).expand(batch, n)
        box = torch.tensor([0.1, 0.1, 0.6, 0.6], device=dev).expand(batch, n, 4)
        scribble, polygon = (uni.pos_dims[f] // (4 * uni.freqs) for f in ("scribble", "polygon"))  # points
        side = uni.seg.resolution if uni.seg is not None else 64
        rows = [valid] * (len(ALL_FORMATS) - 1) + [torch.ones_like(valid)]
        inputs.update(
            g_text=torch.randn(batch, n, uni.text_dim, device=dev),
            g_valid=valid, g_boxes=box, g_points=box[..., :2], g_given=torch.stack(rows, dim=1),
            g_scribbles=torch.rand(batch, n, scribble, 2, device=dev), g_polygons=torch.rand(batch, n, polygon, 2, device=dev),
            g_masks=pack_bits(torch.ones(batch, n, side, side, dtype=torch.bool, device=dev)), g_latent=(int(h), int(w)),
        )  # fmt: skip
        if video:  # the same instances in every latent frame
            f = inputs["latents"].shape[2]
            for k, v in inputs.items():
                if k.startswith("g_") and k != "g_latent":
                    inputs[k] = v[:, None].expand(batch, f, *v.shape[1:])
        return inputs

    @classmethod
    def sample_transform(cls, cfg: DictConfig, datamodule) -> Callable[[VideoSample], VideoSample]:
        return make_transform(cfg, datamodule)

    # ----------------------------------------------------------------------------- inputs
    def grounding(self, batch: VideoBatch, given: dict[str, Tensor], valid: Tensor | None = None) -> dict:
        """The denoiser's ``g_*`` kwargs; ``given`` from ``format_switches``; ``valid`` [B, N] (or
        [B, F', N] per latent frame on Wan, ``transform.py``) overrides the slots."""
        ex = {k: batch.extras[v] for k, v in KEYS.items()}
        valid = ex["valid"].bool() if valid is None else valid
        text = ex["text"] if self.hp.instance_captions else torch.zeros_like(ex["text"])

        def every_frame(s: Tensor) -> Tensor:  # a sample's switch [B] or [B, N] -> valid's shape
            return s.reshape(*s.shape[:1], *[1] * (valid.dim() - s.dim()), *s.shape[1:]).expand_as(valid)

        rows = [every_frame(given[f]) & (valid if f != "seg" else True) for f in ALL_FORMATS]
        h, w = batch.latents.shape[-2:]
        return {
            "g_text": text, "g_valid": valid, "g_boxes": ex["boxes"], "g_points": ex["points"],
            "g_scribbles": ex["scribbles"], "g_polygons": ex["polygons"], "g_masks": ex["masks"],
            "g_given": torch.stack(rows, dim=-2),
            "g_latent": (int(h), int(w)),
        }  # fmt: skip

    def null_grounding(self, batch: VideoBatch) -> dict:
        """Every slot empty and every format null: the unconditional branch of CFG (released sampler)."""
        valid = torch.zeros_like(batch.extras[KEYS["valid"]].bool())
        return self.grounding(batch, format_switches(slot_valid(valid), ()), valid)

    # ----------------------------------------------------------------------------- training
    def compute_loss(self, batch: VideoBatch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        """The backbone objective's loss (SD / ModelScope: epsilon MSE; Wan: flow) with caption dropout
        (train.cfg_dropout) and the per-format / whole-grounding drops."""
        x0 = batch.latents
        noise = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        t = self.objective.sample_timesteps(x0.shape[0], gen).to(x0.device)
        x_t = self.objective.add_noise(x0, noise, t)
        text, mask = self.drop_text(batch.text_embeds, batch.text_mask, gen)
        valid = slot_valid(batch.extras[KEYS["valid"]])
        given = format_switches(
            valid, self.hp.train_formats, self.hp.format_drop, self.hp.grounding_drop, gen
        )
        pred = self.model(x_t, t, text, text_mask=mask, **self.grounding(batch, given))
        loss = self.objective.loss(pred.float(), x0.float(), noise.float(), x_t.float(), t).mean()
        return loss, {}

    # ----------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate(self, *args, guidance: str = "cfg", **kwargs) -> Tensor:
        """Caption-only sampling (`vidgen sample`): no instances, so MIS is plain CFG at the same scale."""
        return super().generate(*args, guidance="cfg" if guidance == "mis" else guidance, **kwargs)

    @torch.no_grad()
    def generate_instances(self, batch: VideoBatch, steps: int, seed: int) -> Tensor:
        """Latents [B, C, F', H', W'] for a batch's captions and instances (``method.inference_formats``).

        ``sample.guidance=mis``: the multi-instance sampler for the first ``method.mis`` of the steps
        (slot j alone: its grounding, its instance caption as the prompt); otherwise ``cfg`` / ``none``.
        """
        valid = slot_valid(batch.extras[KEYS["valid"]])
        given = format_switches(valid, self.hp.inference_formats)
        text, text_mask = batch.text_embeds, batch.text_mask.bool()
        cond = {"text_embeds": text, "text_mask": text_mask, **self.grounding(batch, given)}
        null_t = self.null_text_embeds.to(text.dtype)[None].expand_as(text)
        uncond = {"text_embeds": null_t, "text_mask": self.null_text_mask[None].expand_as(text_mask)}
        uncond.update(self.null_grounding(batch))
        guide = self.configured_guidance(
            **({"fraction": self.hp.mis} if self.cfg.sample.guidance == "mis" else {})
        )
        shape = tuple(batch.latents.shape)
        if isinstance(guide, MultiInstanceGuidance) and guide.fraction > 0:
            slots = [j for j in range(valid.shape[1]) if valid[:, j].any()]  # empty slots add nothing
            inst = [self.instance_input(batch, given, valid, j, cond) for j in slots]
            return sample_multi_instance(
                self.sampler_step, make_scheduler(self.spec.scheduler_cls, self.spec.scheduler_config), shape,
                cond, inst, valid[:, slots], uncond, guide,
                num_steps=steps, generator=torch.Generator(device="cpu").manual_seed(int(seed)), device=self.device,
            )  # fmt: skip
        return self.sample_branches(shape, cond, uncond, guide, steps, seed)

    def instance_input(self, batch: VideoBatch, given: dict, valid: Tensor, j: int, cond: dict) -> dict:
        """MIS input of slot j: only that instance's grounding; its caption as the prompt (method.instance_captions)."""
        frame_valid = batch.extras[KEYS["valid"]].bool()  # [B, N] or [B, F', N]
        only = frame_valid & (torch.arange(valid.shape[1], device=valid.device) == j)
        out = {**cond, **self.grounding(batch, given, only)}
        inst = batch.instances
        if self.hp.instance_captions and j < inst.prompt_embeds.shape[1]:
            length = cond["text_embeds"].shape[1]
            emb = pad_tokens(inst.prompt_embeds[:, j], length).to(cond["text_embeds"].dtype)
            msk = pad_tokens(inst.prompt_mask[:, j, :, None].float(), length)[..., 0].bool()
            has = valid[:, j]
            out["text_embeds"] = torch.where(has[:, None, None], emb, cond["text_embeds"])
            out["text_mask"] = torch.where(has[:, None], msk, cond["text_mask"])
        return out

    @torch.no_grad()
    def evaluate(self, datamodule) -> dict[str, float]:
        """Layout IoU, box / mask AP and colour-binding accuracy of generated shapes-world images."""
        from vidgen.methods.instancediffusion.metrics import shapes_instance_metrics

        dataset = datamodule.dataset
        n = min(self.hp.eval_samples, len(dataset))
        if n <= 0 or not hasattr(dataset, "clip"):
            return {}  # real data: YOLOv8 detectors are not part of the project
        samples = [dataset[i] for i in range(n)]  # the datamodule applies sample_transform
        codec, videos = datamodule.codec(), []
        for i, s in enumerate(samples):
            batch = collate([s]).to(self.device)
            latents = self.generate_instances(batch, self.hp.eval_steps, int(self.cfg.seed) + i)
            videos.append(codec.decode(latents.cpu().float())[0])
        return shapes_instance_metrics(videos, samples)
