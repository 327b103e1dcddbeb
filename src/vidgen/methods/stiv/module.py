"""STIVModule: STIV's T2I / T2V training recipe (Sec. 2, A.1, E, G) and TI2V / V2V / TUP (Sec. 2.3).

Model: the registry's STIV DiT for ``method.task`` (t2i / t2v config variant) with the Table 2 / 3 / 5
switches of ``method.arch``, optionally initialised from earlier runs (``method.init``). Loss:
``method.objective`` (Eq. 1-2 flow matching, or the SD-DDPM baseline) on the tokens MaskDiT kept and,
with ``method.condition_frames``, not on the replaced frames. Sampling: the shared loop with CFG
renormalisation (Sec. D); conditioned models with frame replacement and JIT-CFG. Derivations:
docs/methods/stiv.md.
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
from vidgen.errors import ConfigError, require_choice
from vidgen.methods.base import DiffusionModule
from vidgen.methods.stiv import guidance as _guidance  # noqa: F401  (registers "cfg_renorm", "jit_cfg")
from vidgen.methods.stiv.conditioning import (
    check_condition_size,
    condition_mask,
    describe,
    draw_dropout,
    parse_condition_frames,
    replace_frames,
    replaced_frames,
)
from vidgen.methods.stiv.guidance import DROPS, JITCFG
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
    # part 2 (Sec. 2.3, E; Tables 5-7, 20-21); see conditioning.py
    condition_frames: Any = field(
        default_factory=list
    )  # [] T2V | [0] TI2V | [0, 1, 2, 3] V2V | "stride:2" TUP
    frame_replacement: bool = True  # Table 5 "FR"; false: the condition only through cross-attention (CA)
    image_dropout: float = 0.08  # Sec. E: the image condition is dropped 8 % (independent of the text's 10 %)
    guidance_drop: str = "joint"  # JIT-CFG null branch: joint (as printed) | text | image

    def __post_init__(self) -> None:
        require_choice("method.task", self.task, TASKS)
        require_choice("method.objective", self.objective, OBJECTIVES)
        for key in ("spatial_mask_ratio", "temporal_mask_ratio"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"method.{key}={getattr(self, key)} must be in [0, 1)")
        if self.temporal_mask_ratio and self.task == "t2i":
            raise ConfigError(
                "method.temporal_mask_ratio needs method.task=t2v (an image has one temporal token)"
            )
        object.__setattr__(self, "condition_frames", parse_condition_frames(self.condition_frames))
        if not 0.0 <= self.image_dropout <= 1.0:
            raise ConfigError(f"method.image_dropout={self.image_dropout} must be in [0, 1]")
        require_choice("method.guidance_drop", self.guidance_drop, DROPS)
        if self.conditioned and self.task == "t2i":
            raise ConfigError("method.condition_frames needs method.task=t2v (an image has one frame)")
        if self.conditioned and self.objective != "flow":
            raise ConfigError(
                "method.condition_frames needs method.objective=flow (STIV part 2 is on Eq. 1-2)"
            )
        unknown = sorted(set(self.init) - {"from", "temporal_from"})
        if unknown:
            raise ConfigError(f"method.init: unknown key(s) {unknown}; valid keys: from, temporal_from")

    @property
    def conditioned(self) -> bool:
        """Frame conditioning is on (TI2V / V2V / TUP): condition frames are named."""
        return self.condition_frames != []

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
        if self.hp.conditioned:  # more condition frames than the clip has: refused before training
            from vidgen.train import data_resolution

            condition_mask(
                self.hp.condition_frames, self.latent_shape(*data_resolution(self.cfg, self.spec))[1]
            )

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
        cond: dict[str, Tensor] = {}
        replaced = None
        if self.hp.conditioned:
            # Sec. 2.3: text 10 % (train.cfg_dropout) and image 8 % dropped independently (E)
            drop_text, drop_image = draw_dropout(
                b, float(self.cfg.train.cfg_dropout), self.hp.image_dropout, gen
            )
            text, text_mask = self.apply_text_drop(batch.text_embeds, batch.text_mask, drop_text.to(dev))
            sel, present = condition_mask(self.hp.condition_frames, x1.shape[2], dev), ~drop_image.to(dev)
            if self.hp.frame_replacement:  # Sec. 2.3.1: the clean latents replace the noised frames
                x_t = replace_frames(x_t, x1, sel, present)
                replaced = replaced_frames(sel, present)
            if self.model.model.image_cross_attention:  # Table 5 CA: the condition frames as tokens
                cond = {"image_latents": x1[:, :, sel], "image_mask": present}
        else:
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
            **cond,
        )
        err = (pred.float() - self.objective.target(x1, noise, x_t, t).float()) ** 2
        kept = kept_latent_mask(keep_s, keep_t, b, grid, (pt, p, p), dev)
        if replaced is not None:  # Sec. 2.3.1: no loss on the replaced frames
            kept = kept * (1.0 - replaced)
        loss = masked_mse(err, kept)
        extra = {}
        if self.hp.mae_loss_weight and (keep_s is not None or keep_t is not None):
            hidden = kept_latent_mask(keep_s, keep_t, b, grid, (pt, p, p), dev)
            hidden = (1.0 - hidden) if replaced is None else (1.0 - hidden) * (1.0 - replaced)
            extra["loss_masked"] = masked_mse(err, hidden).mean()
            loss = loss + self.hp.mae_loss_weight * masked_mse(err, hidden)
        return loss.mean(), extra

    def apply_text_drop(self, embeds: Tensor, mask: Tensor, drop: Tensor) -> tuple[Tensor, Tensor]:
        """Captions of the ``drop`` [B] samples replaced by the empty prompt (as ``drop_text``)."""
        keep = ~drop
        embeds = torch.where(keep[:, None, None], embeds, self.null_text_embeds.to(embeds.dtype)[None])
        return embeds, torch.where(keep[:, None], mask, self.null_text_mask[None])

    @staticmethod
    def micro(batch: VideoBatch) -> dict[str, Tensor] | None:
        if batch.micro is None:
            return None
        return {k: batch.micro[k].float() for k in ("original_size", "crop", "stride")}

    # ----------------------------------------------------------------------------- sampling
    def condition_latents(
        self, cfg: DictConfig, codec, frames: int, height: int, width: int
    ) -> Tensor | None:
        """`vidgen sample image=PATH | video=PATH`: the clean latents [1, C, K, H', W'] of the K
        condition frames, or None (T2V). A model trained without image dropout cannot do T2V
        (Table 6 "STIV"): sampling it without an image is refused."""
        image, video = cfg.sample.get("image"), cfg.sample.get("video")
        if not self.hp.conditioned:
            if image or video:
                raise ConfigError(
                    f"exp={cfg.exp_name} is text-only (method.condition_frames=[]); drop image= / video=, "
                    "or sample a TI2V / V2V / TUP experiment"
                )
            return None
        shape = self.latent_shape(frames, height, width)
        count = int(condition_mask(self.hp.condition_frames, shape[1]).sum())
        if not (image or video):
            if self.hp.image_dropout > 0:
                return None  # STIV-JIT samples T2V without an image (Sec. 2.3.2)
            what = "image=PATH" if count == 1 else f"video=PATH (its first {count} frames)"
            raise ConfigError(
                f"exp={cfg.exp_name} is conditioned on {count} frame(s) (method.condition_frames="
                f"{describe(self.hp.condition_frames)}) and was trained without image dropout, so it cannot sample "
                f"without them: pass {what}"
            )
        from vidgen.data.condition_input import load_condition_pixels

        pixels = load_condition_pixels(image, video, count, height, width)
        latents = codec.encode(pixels.to(self.device))
        check_condition_size(latents, shape, f"sample.{'image' if image else 'video'}={image or video}")
        return latents

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
        """The shared sampler loop on this objective's scheduler.

        T2V / T2I models (no ``method.condition_frames``): ``guidance=cfg`` becomes ``cfg_renorm``
        when ``method.cfg_renorm`` (Table 2 "+ Renorm" onward). Conditioned models: ``image_latents``
        [B, C, K, H', W'] are the clean latents of the K condition frames (TI2V: the image, K = 1),
        placed at ``method.condition_frames`` by frame replacement at every step
        (``frame_replacement_sampling``); ``cfg`` / ``jit_cfg`` is JIT-CFG with
        ``method.guidance_drop`` and CFG renorm. Without ``image_latents`` a conditioned model
        samples T2V (c_I = ∅ in both branches, JIT-CFG reduces to CFG, Sec. 2.3.2).
        """
        if not self.hp.conditioned:
            if image_latents is not None:
                raise ConfigError(
                    "this STIV model has no condition frames (method.condition_frames=[]): it is text-only; "
                    "sample it without an image / video, or use a TI2V / V2V / TUP experiment"
                )
            return self._generate_text_only(
                text_embeds,
                text_mask,
                null_embeds,
                null_mask,
                latent_shape,
                steps,
                guidance,
                guidance_scale,
                seed,
            )
        b = text_embeds.shape[0]
        shape = (b, *latent_shape)
        sel = condition_mask(self.hp.condition_frames, latent_shape[1], self.device)
        clean = None
        if image_latents is not None:
            check_condition_size(image_latents, latent_shape, "the conditioning image / video")
            k = int(sel.sum())
            if image_latents.shape[2] != k:
                raise ConfigError(
                    f"method.condition_frames={describe(self.hp.condition_frames)} takes {k} condition frame(s) of a "
                    f"{latent_shape[1]}-frame clip, got {image_latents.shape[2]}; pass {k} frame(s)"
                )
            clean = torch.zeros(shape, device=self.device)
            clean[:, :, sel] = image_latents.to(self.device, clean.dtype).expand(b, -1, -1, -1, -1)
        if guidance in ("cfg", "cfg_renorm", "jit_cfg"):
            guide = JITCFG(
                guidance_scale,
                self.hp.guidance_drop if clean is not None else "joint",
                self.hp.cfg_renorm,
                self.hp.renorm_granularity,
            )
        else:
            guide = make_guidance(guidance)
        return self.frame_replacement_sampling(
            text_embeds, text_mask, null_embeds, null_mask, shape, steps, guide, seed, clean, sel
        )

    def frame_replacement_sampling(
        self, text_embeds, text_mask, null_embeds, null_mask, shape, steps, guide, seed, clean, sel
    ) -> Tensor:
        """Sec. 2.3.1 at inference: "the un-noised latent of the original image condition for the
        first frame at each TI2V diffusion step".

        Branches with the image present (``image_cond`` 1) see ``clean`` on the condition frames,
        bit for bit, at every step; branches with it dropped see the scheduler state there. That
        state is kept on the condition's own noising path ``x_t = t c + (1 - t) eps0`` (eps0: the
        initial noise) by stepping those frames with the exact velocity ``c - eps0`` (our choice:
        the paper does not say what the image-dropped branch of JIT-CFG sees; this is what it saw
        in training, the noised true frame). The returned latents hold ``clean`` on the condition
        frames exactly. ``clean=None``: T2V (``image_cond`` 0 in both branches, no replacement).
        """
        from diffusers.utils.torch_utils import randn_tensor

        cls_name, sched_cfg = scheduler_for(self.hp.objective)
        scheduler = make_scheduler(cls_name, sched_cfg)
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        eps0 = randn_tensor(shape, generator=generator, device=self.device, dtype=torch.float32)
        b = shape[0]
        on = torch.ones(b, device=self.device) if clean is not None else torch.zeros(b, device=self.device)
        cond = {"text_embeds": text_embeds, "text_mask": text_mask, "image_cond": on}
        uncond = {
            "text_embeds": null_embeds.expand_as(text_embeds),
            "text_mask": null_mask.expand_as(text_mask),
            "image_cond": torch.zeros(b, device=self.device),
        }
        base = sampler_call(self.hp.objective, self.model)
        ca = self.model.model.image_cross_attention
        fr = self.hp.frame_replacement and clean is not None

        def denoise(x: Tensor, t: Tensor, image_cond: Tensor, **kwargs) -> Tensor:
            present = image_cond > 0.5
            reps = x.shape[0] // b
            full = clean.repeat(reps, 1, 1, 1, 1) if clean is not None else None
            if fr:
                x = replace_frames(x, full, sel, present)
            if ca:
                frames = full[:, :, sel] if full is not None else torch.zeros_like(x[:, :, sel])
                kwargs.update(image_latents=frames, image_mask=present)
            return base(x, t, **kwargs)

        def guided(den, x, t, c, u):
            out = guide(den, x, t, c, u)
            if not fr:
                return out
            path = (eps0 - clean).to(out.dtype)  # the scheduler's -v of x_t = t c + (1 - t) eps0
            return torch.where(sel[None, None, :, None, None], path, out)

        latents = sample_latents(
            denoise,
            scheduler,
            shape,
            cond,
            uncond,
            guided,
            num_steps=steps,
            generator=generator,
            device=self.device,
            latents=eps0 * getattr(scheduler, "init_noise_sigma", 1.0),
        )
        return replace_frames(latents, clean, sel, on > 0.5) if fr else latents

    def _generate_text_only(
        self,
        text_embeds,
        text_mask,
        null_embeds,
        null_mask,
        latent_shape,
        steps,
        guidance,
        guidance_scale,
        seed,
    ) -> Tensor:
        """STIV part 1's path (T2I / T2V models), unchanged."""
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
