"""IngredientsModule: the two training stages of Ingredients Sec. 3.3 on CogVideoX-5B-I2V."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from omegaconf import DictConfig, OmegaConf
from peft import LoraConfig
from torch import Tensor, nn

from vidgen.backbones import BackboneSpec
from vidgen.data.sample import VideoBatch, VideoSample, collate
from vidgen.diffusion import make_guidance
from vidgen.errors import ConfigError
from vidgen.methods.base import DiffusionModule
from vidgen.methods.ingredients.composite import composite_latents
from vidgen.methods.ingredients.config import IngredientsConfig
from vidgen.methods.ingredients.denoiser import IngredientsCogVideoX
from vidgen.methods.ingredients.init_from import load_stage
from vidgen.methods.ingredients.losses import routing_accuracy, routing_loss
from vidgen.methods.ingredients.projector import MultiScaleProjector
from vidgen.methods.ingredients.sampler import make_sampler
from vidgen.methods.ingredients.t2v_init import init_from_t2v
from vidgen.methods.ingredients.transform import (
    ID_GLOBAL,
    ID_LOCAL,
    ID_VALID,
    LABELS,
    make_transform,
    pad_ids,
)

# Stage-1 dropout (Sec. 3.3): "uniformly select global, local and completed facial information"
GLOBAL_ONLY, LOCAL_ONLY, COMPLETE = 0, 1, 2


def trainable(model: IngredientsCogVideoX, stage: int) -> None:
    """Stage 1: projector, cross-attentions, LoRA; stage 2: routers, LoRA (Sec. 3.3). The rest is frozen."""
    model.requires_grad_(False)
    for name, p in model.named_parameters():
        lora = "lora_" in name
        if stage == 1:
            p.requires_grad_(lora or name.startswith("projector.") or ".pca." in name)
        else:
            p.requires_grad_(lora or ".router." in name)


class IngredientsModule(DiffusionModule):
    required_fields: ClassVar[set[str]] = {"latents", "text_embeds", "faces"}

    def __init__(self, cfg: DictConfig | dict, model: nn.Module | None = None):
        super().__init__(cfg, model)
        self.hp = IngredientsConfig.from_cfg(self.cfg)
        self.last_routing = None  # the latest sample's final-step routing (Fig. 5, save_routing_maps)

    # ----------------------------------------------------------------------------- model
    @classmethod
    def build_model(cls, cfg: DictConfig, spec: BackboneSpec) -> nn.Module:
        if spec.family != "cogvideox" or not spec.image_condition:
            raise ConfigError(
                f"method=ingredients is implemented on CogVideoX I2V (the global composite is the image "
                f"latent, Sec. 3.2); backbone={spec.name}. Fix: backbone=cogvideox-5b-i2v"
            )
        hp = IngredientsConfig.from_cfg(cfg)
        if hp.stage == 2 and not hp.init.get("from") and cfg.backbone.size == "real":
            raise ConfigError(
                "method.stage=2 (router fine-tuning) starts from stage 1 (Sec. 3.3): pass "
                "method.init.from=RUN_DIR of an ingredients_stage1 run (or set INGREDIENTS_STAGE1_RUN)"
            )
        backbone = super().build_model(cfg, spec)
        if hp.init["dit"] == "t2v":
            tiny = cfg.backbone.get("tiny_config")  # the T2V twin sized as the I2V one
            tiny = OmegaConf.to_container(tiny) if tiny is not None else None
            init_from_t2v(backbone.model, str(cfg.backbone.size), hp.init.get("t2v_weights"), tiny)
        # LoRA of the DiT (Sec. 3.3), peft through diffusers' PeftAdapterMixin; lora_B starts at 0
        backbone.model.add_adapter(
            LoraConfig(
                r=hp.lora["rank"], lora_alpha=hp.lora["alpha"], target_modules=list(hp.lora["targets"])
            )
        )
        id_dim = 512 + 768  # ArcFace ++ EVA02-CLIP (vidgen.faces; the tiny twins keep these widths)
        local_dim = 1024 if hp.faces["size"] == "real" else 64  # EVA02-CLIP-L width / the tiny twin's
        projector = MultiScaleProjector(id_dim=id_dim, local_dim=local_dim, scales=5, **hp.projector)
        p = hp.projector
        model = IngredientsCogVideoX(
            backbone,
            p["output_dim"],
            hp.injection,
            {**hp.router, "id_length": p["queries"]},
            projector=projector,
        )
        if hp.init.get("from"):
            load_stage(model, hp.init["from"])
        trainable(model, hp.stage)
        return model

    @classmethod
    def sample_transform(cls, cfg: DictConfig, datamodule) -> Callable[[VideoSample], VideoSample]:
        from vidgen.backbones import get_backbone

        return make_transform(cfg, datamodule, get_backbone(cfg.backbone.name))

    # ----------------------------------------------------------------------------- inputs
    def face_inputs(self, batch: VideoBatch) -> dict[str, Tensor]:
        """faces [B, M, Q, kv] (the projector of the extractor outputs) and face_valid [B, M]."""
        local = batch.extras[ID_LOCAL].transpose(0, 1)  # [S, B, M, L, C]
        faces = self.model.project(batch.extras[ID_GLOBAL], list(local))
        return {"faces": faces, "face_valid": batch.extras[ID_VALID].bool()}

    def face_dropout(self, batch: VideoBatch, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Per sample (stage 1 with method.face_dropout): global only / local only / complete, uniformly.

        Returns keep_local [B] (0: no face cross-attention) and the image latents (global dropped: 0).
        """
        b = len(batch)
        image = batch.image_latents
        if self.hp.stage != 1 or not self.hp.face_dropout:
            return image.new_ones(b), image
        choice = torch.randint(0, 3, (b,), generator=gen, device=gen.device).to(image.device)
        keep_local = (choice != GLOBAL_ONLY).to(image.dtype)
        keep_global = (choice != LOCAL_ONLY).to(image.dtype)
        return keep_local, image * keep_global.view(-1, 1, 1, 1, 1)

    def stage1_route_labels(self, batch: VideoBatch) -> Tensor | None:
        """``method.stage1_routing=labels``: stage 1's face tokens routed by their ID label, not the router.

        The paper is silent on how stage 1 routes (Sec. 3.3 trains the router only in stage 2). The
        default (``router``) uses the model as built: the router, random and frozen, so a face token
        gets the features of an ID unrelated to the face there, and stage 1 can teach the features
        only which IDs a clip has, not which ID belongs where (docs/methods/ingredients.md, "Scaled
        protocol"). ``labels`` gives each labelled token its own ID's features (background tokens keep
        the router's choice, as at inference), so stage 1 binds an ID's features to where it is
        painted and stage 2's router has a binding to serve. Training only: sampling always routes
        with the router. None in stage 2 and with ``router``."""
        if self.hp.stage != 1 or self.hp.stage1_routing != "labels":
            return None
        return batch.extras[LABELS]

    # ----------------------------------------------------------------------------- training
    def compute_loss(self, batch: VideoBatch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        """L_diff (Eq. 1, the backbone's v-objective) + lambda * L_route (Eq. 5, stage 2)."""
        x0 = batch.latents
        noise = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        t = self.objective.sample_timesteps(x0.shape[0], gen).to(x0.device)
        x_t = self.objective.add_noise(x0, noise, t)
        text, mask = self.drop_text(batch.text_embeds, batch.text_mask, gen)
        keep, image = self.face_dropout(batch, gen)
        forced = self.stage1_route_labels(batch)
        pred = self.model(
            x_t, t, text, mask, image, **self.face_inputs(batch), face_keep=keep, route_labels=forced
        )
        l_diff = self.objective.loss(pred.float(), x0.float(), noise.float(), x_t.float(), t).mean()
        logits, labels, valid = self.model.routing_logits, batch.extras[LABELS], batch.extras[ID_VALID].bool()
        extra = {"diff_loss": l_diff.detach(), "routing_accuracy": routing_accuracy(logits, labels, valid)}
        if self.hp.stage == 1 or self.hp.routing_loss == "none":
            return l_diff, extra
        l_route = routing_loss(logits, labels, valid, self.hp.routing_loss)
        extra["routing_loss"] = l_route.detach()
        return l_diff + self.hp.routing_weight * l_route, extra

    # ----------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate_faces(
        self,
        references,
        text_embeds: Tensor,
        text_mask: Tensor,
        null_embeds: Tensor,
        null_mask: Tensor,
        latent_shape: tuple[int, ...],
        steps: int,
        guidance: str = "cfg",
        guidance_scale: float = 6.0,
        seed: int = 0,
        codec=None,
    ) -> Tensor:
        """`vidgen sample ids=[...]`: latents [1, *latent_shape] of a prompt with reference faces
        (``vidgen.faces.sampling.ReferenceFaces``: aligned crops + embeddings, ID order); ``codec``
        encodes their global composite (Sec. 3.2)."""
        n = len(references.crops)
        if n > self.hp.max_ids:
            raise ConfigError(f"ids=: {n} reference faces, more than method.max_ids={self.hp.max_ids}")
        if codec is None:
            raise ConfigError(
                "Ingredients sampling needs the data's codec to encode the face composite (codec=)"
            )
        emb, m = references.embeddings, self.hp.max_ids
        dev = self.device
        faces = self.model.project(
            pad_ids(emb.global_.float(), m)[None].to(dev),
            [pad_ids(x.float(), m)[None].to(dev) for x in emb.local],
        )
        _, _, h, w = latent_shape
        scale = self.spec.vae_scale[1]
        image = composite_latents(
            references.crops.float().cpu(), codec, h * scale, w * scale, scale, self.hp.composite
        )
        cond = {
            "text_embeds": text_embeds.to(dev),
            "text_mask": text_mask.to(dev),
            "image_latents": image[None].to(dev),
            "faces": faces,
            "face_valid": (torch.arange(m) < n)[None].to(dev),
        }
        uncond = {**cond, "text_embeds": null_embeds.to(dev), "text_mask": null_mask.to(dev)}
        return self._sample(cond, uncond, (1, *latent_shape), steps, guidance, guidance_scale, seed)

    @torch.no_grad()
    def generate_batch(self, batch: VideoBatch, steps: int, seed: int) -> Tensor:
        """Latents [B, C, F', H', W'] for a batch's captions and faces (evaluation) with ``sample.guidance``."""
        text, mask = batch.text_embeds, batch.text_mask
        cond = {
            "text_embeds": text,
            "text_mask": mask,
            "image_latents": batch.image_latents,
            **self.face_inputs(batch),
        }
        uncond = {
            **cond,
            "text_embeds": self.null_text_embeds.to(text.dtype)[None].expand_as(text),
            "text_mask": self.null_text_mask[None].expand_as(mask),
        }
        guidance, scale = str(self.cfg.sample.guidance), float(self.cfg.sample.guidance_scale)
        return self._sample(cond, uncond, tuple(batch.latents.shape), steps, guidance, scale, seed)

    def _sample(
        self, cond: dict, uncond: dict, shape, steps: int, guidance: str, scale: float, seed: int
    ) -> Tensor:
        """The shared sampler loop; faces and composite go to both CFG branches (released code, facts C.4),
        only the caption is dropped in the unconditional one."""
        guide = make_guidance(guidance) if guidance == "none" else make_guidance(guidance, scale=scale)
        scheduler = make_sampler(self.hp.sampler, self.spec)
        _, p_h, p_w = self.spec.patch_size  # the token grid F' x H'/2 x W'/2 (CogVideoX 1.0)
        grid = (shape[2], shape[3] // p_h, shape[4] // p_w)

        def keep_routing(i: int, t: Tensor, x: Tensor) -> None:
            """After the final step: its routing (the last rows = CFG's conditional branch) for Fig. 5."""
            if i == len(scheduler.timesteps) - 1:
                logits = [phi[-1].detach().cpu() for phi in self.model.routing_logits]
                self.last_routing = (logits, cond["face_valid"][-1].cpu(), grid)

        return self.sample_branches(shape, cond, uncond, guide, steps, seed, scheduler, callback=keep_routing)

    def save_routing_maps(self, path) -> None:
        """Fig. 5: the last ``generate_faces``' final-step routing as a PNG grid (``routing_maps.py``)."""
        from vidgen.methods.ingredients.routing_maps import routing_grid, save_png

        if getattr(self, "last_routing", None) is None:
            raise ConfigError("routing_maps=true: no routing to save (sample with ids=[...] first)")
        logits, valid, grid = self.last_routing
        save_png(path, routing_grid(logits, valid, grid))

    # ----------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, datamodule) -> dict[str, float]:
        """On the first ``method.eval_samples`` clips: routing accuracy (Fig. 6) of the router against
        the ID labels, teacher-forced at t = 250, 500, 750 (noise seeded by the run's seed); on the
        shapes world also ``right_id_fraction``, the share of the face pixels found in the generations
        that carry their matched reference's identity (``right_id_regions``; ``method.eval_steps``)."""
        dataset = datamodule.dataset
        n = min(self.hp.eval_samples, len(dataset))
        if n <= 0:
            return {}
        batch = collate([dataset[i] for i in range(n)]).to(self.device)
        metrics = {"routing_accuracy": self.teacher_forced_routing(batch)}
        if hasattr(dataset, "clip") and self.hp.eval_steps > 0:
            metrics["right_id_fraction"] = self.right_id_fraction(batch, datamodule, range(n))
        return metrics

    @torch.no_grad()
    def right_id_fraction(self, batch: VideoBatch, datamodule, indices) -> float:
        """Share of the generated face pixels whose region carries the reference ID it is matched to."""
        right, total = self.right_id_regions(batch, datamodule, indices)
        return float(right.sum() / total.sum()) if total.sum() > 0 else 0.0

    @torch.no_grad()
    def right_id_regions(self, batch: VideoBatch, datamodule, indices) -> tuple[Tensor, Tensor]:
        """(right, total) pixels per face region found in the batch's generations (``method.eval_steps``).

        The generation is told the faces, not where they go (the composite is a canvas), so faces are
        detected in it and greedily matched to the references (Sec. 4.1; ``shapes_matched_identity``);
        the clip's ground-truth face masks would score a perfect generation at chance."""
        from vidgen.eval.face_metrics import shapes_matched_identity

        videos = self.generated_clips(batch, datamodule)
        pairs = [shapes_matched_identity(v, datamodule.dataset.clip(i)) for v, i in zip(videos, indices)]
        return torch.cat([r for r, _ in pairs]), torch.cat([t for _, t in pairs])

    @torch.no_grad()
    def generated_clips(self, batch: VideoBatch, datamodule) -> Tensor:
        """The batch's generations (``method.eval_steps``) decoded by the data's codec: [B, 3, F, H, W] in [-1, 1]."""
        latents = self.generate_batch(batch, self.hp.eval_steps, int(self.cfg.seed))
        return datamodule.codec().decode(latents.cpu().float()).clamp(-1, 1)

    @torch.no_grad()
    def teacher_forced_routing(self, batch: VideoBatch) -> float:
        n = len(batch)
        gen = torch.Generator(device="cpu").manual_seed(int(self.cfg.seed))
        faces = self.face_inputs(batch)
        labels, valid = batch.extras[LABELS], batch.extras[ID_VALID].bool()
        scores = []
        for step in (250, 500, 750):
            noise = torch.randn(batch.latents.shape, generator=gen).to(batch.latents)
            t = torch.full((n,), step, device=self.device)
            x_t = self.objective.add_noise(batch.latents, noise, t)
            self.model(x_t, t, batch.text_embeds, batch.text_mask, batch.image_latents, **faces)
            scores.append(float(routing_accuracy(self.model.routing_logits, labels, valid)))
        return sum(scores) / len(scores)
