"""JDMModule: joint video + regional-signal denoising (JDM Sec. 3.2-3.3, Eq. 10-13).

The backbone's input/output projections are inflated C -> 2C (``inflation.inflate``, zero-init);
video and signal get independent noise and one shared timestep (Eq. 10). Per sample,
L = (1 - w') L_diff + w' L_fine (Eq. 13) with w' = w exp(-alpha Ī) (``loss_weighting``), estimated
with one forward (``one_pass``) or two (``two_pass``). ``evaluate`` is Table 3's protocol
(``evaluation``). Equation -> code map and the choices where the paper is silent: docs/methods/jdm.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from vidgen.backbones import BackboneSpec
from vidgen.data.sample import VideoBatch, VideoSample
from vidgen.errors import ConfigError, require_choice
from vidgen.eval.mask_metrics import binarize
from vidgen.methods.base import DiffusionModule
from vidgen.methods.jdm import evaluation
from vidgen.methods.jdm.fresh_combinations import check_sampling, draw_subset, encode_subsets, region_counts
from vidgen.methods.jdm.inflation import inflate
from vidgen.methods.jdm.loss_weighting import check_estimator, choose_fine, dynamic_weight, two_pass_loss

SIGNALS = ("mask", "hed", "depth")
MASK_LATENTS = "jdm/mask_latents"  # [B, K, C, F', H', W']
CAPTION_EMBEDS = "jdm/caption_embeds"  # [B, K, L, D]
CAPTION_MASK = "jdm/caption_mask"  # [B, K, L]
MASKS = "jdm/masks"  # [B, K, F, H, W] bool
CMI = "jdm/cmi"  # [B]
TRAIN_KEYS = (MASK_LATENTS, CAPTION_EMBEDS, CAPTION_MASK)


L_DIFF = ("video", "joint")
COMBINATIONS = ("fresh", "pool")


@dataclass(frozen=True)
class JDMConfig:
    """``cfg.method`` of JDM, parsed once (defaults live in conf/method/jdm.yaml only)."""

    name: str
    signal: str  # mask | hed | depth (Table 5)
    combinations: (
        str  # fresh: a new subset every step (Fig. 2) | pool: K fixed per clip (faster, less diverse)
    )
    subset_sampling: str  # fresh: uniform over all non-empty subsets | size_first
    num_combinations: int  # pool: K per clip (combination 0 = all objects + global caption)
    max_objects_per_combination: int | None  # cap on a subset's size; None: no cap (paper)
    loss_w: float  # w of w' = w exp(-alpha Ī) (Sec. 3.3: 1.0)
    loss_alpha: float  # alpha (Sec. 3.3: 1.0)
    dynamic_weighting: bool  # False: w' = w for every sample (ablation knob; the paper weights by Ī)
    l_diff: str  # video: Eq. 3 on the video channels (paper) | joint: video + all-objects signal
    estimator: str  # one_pass | two_pass
    cmi_file: str | None  # Ī file; null: the data's (shards: <data.root>/jdm_cmi.json; shapes: stand-in)
    eval_samples: int | None  # Table 3 prompts; None: 100 of eval_prompts (paper), else 4 data captions
    eval_prompts: str | None  # prompt file, one per line; null: the data's global captions
    eval_steps: int | None  # sampler steps; null: sample.steps (50 in the paper's experiments)
    eval_reference_masks: str | None  # external segmentations of the generated videos (real data)
    eval_videos: str | None  # write the generated videos + masks here (input of the external segmenter)
    mask_threshold: float  # binarise the decoded mask: RGB mean > threshold

    def __post_init__(self) -> None:
        require_choice("method.signal", self.signal, SIGNALS)
        require_choice("method.l_diff", self.l_diff, L_DIFF)
        check_estimator(self.estimator)
        check_sampling(self.subset_sampling)
        require_choice("method.combinations", self.combinations, COMBINATIONS)
        dynamic_weight(torch.zeros(1), self.loss_w, self.loss_alpha)  # validates w and alpha


@dataclass
class JointDraw:
    """The randomness of one JDM training step (drawn in this order from the step generator)."""

    noise: Tensor  # [B, 2C, F', H', W']: video noise | signal noise (independent)
    t: Tensor  # [B] one timestep per sample, shared by video and signal
    k: Tensor  # [B] long: the regional combination of L_fine (1..K-1; 0 when K = 1)
    drop: Tensor  # [B] bool: caption replaced by the empty prompt
    u: Tensor  # [B] in [0, 1): the one-pass estimator's choice (fine when u < w')
    subsets: list[tuple[int, ...]] | None = None  # combinations=fresh: L_fine's regions per sample


class JDMModule(DiffusionModule):
    required_fields: ClassVar[set[str]] = {"latents", "text_embeds"}

    def __init__(self, cfg: DictConfig | dict, model: nn.Module | None = None):
        super().__init__(cfg, model)
        try:
            self.hp = JDMConfig(**OmegaConf.to_container(self.cfg.method, resolve=True))
        except TypeError as err:
            raise ConfigError(f"method=jdm: {err} (the keys are those of conf/method/jdm.yaml)") from None
        self.signal, self.estimator, self.mask_threshold = (
            self.hp.signal,
            self.hp.estimator,
            self.hp.mask_threshold,
        )

    # ----------------------------------------------------------------------------- model
    @classmethod
    def build_model(cls, cfg: DictConfig, spec: BackboneSpec) -> nn.Module:
        return inflate(super().build_model(cfg, spec))

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
        """As the base, with as many latent channels as ``model`` reads (2C inflated, C plain)."""
        inputs = super().example_inputs(spec, size, frames, height, width, model=model, batch=batch)
        channels = getattr(model, "in_channels", spec.latent_channels)
        if spec.image_condition:
            channels -= spec.latent_channels
        x = inputs["latents"]
        if channels != x.shape[1]:
            inputs["latents"] = torch.randn(x.shape[0], channels, *x.shape[2:], device=x.device)
        return inputs

    @classmethod
    def sample_transform(cls, cfg: DictConfig, datamodule) -> Callable[[VideoSample], VideoSample] | None:
        """The mask-caption combination sampler (``combinations.make_transform``)."""
        try:
            from vidgen.methods.jdm.combinations import make_transform
        except ImportError as err:  # pragma: no cover - only while the data side is missing
            raise ConfigError(
                "method=jdm needs the mask-caption combination sampler (vidgen.methods.jdm.combinations), "
                f"which could not be imported: {err}"
            ) from err
        return make_transform(cfg, datamodule)

    @property
    def channels(self) -> int:
        return self.spec.latent_channels

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        c, f, h, w = self.spec.latent_shape(frames, height, width)
        return (2 * c, f, h, w)

    def decode_signal(self, latents: Tensor, codec) -> Tensor:
        """The signal half of generated latents -> bool masks [B, F, H, W] (binarised)."""
        return binarize(codec.decode(latents[:, self.channels :].float()), self.mask_threshold)

    def decode_sample(self, latents: Tensor, codec) -> Tensor:
        """[B, 2C, F', H', W'] -> video | signal side by side, [B, 3, F, H, 2W] in [-1, 1].

        The mask is binarised (white = object); HED / depth are shown as decoded (grey levels)."""
        c = self.channels
        video = codec.decode(latents[:, :c].float()).clamp(-1, 1)
        if self.signal == "mask":
            signal = self.decode_signal(latents, codec).float() * 2 - 1
        else:
            signal = codec.decode(latents[:, c:].float()).float().mean(dim=1).clamp(-1, 1)
        signal = signal[:, None].expand(-1, 3, -1, -1, -1).to(video.dtype)
        return torch.cat([video, signal], dim=-1)

    # ----------------------------------------------------------------------------- training
    def _extras(self, batch: VideoBatch) -> tuple[Tensor, Tensor, Tensor]:
        missing = [k for k in TRAIN_KEYS if k not in batch.extras]
        if missing:
            raise ConfigError(
                f"method=jdm: the batch has no {missing}; the data must go through the JDM combination "
                "sampler (JDMModule.sample_transform) or carry precomputed combinations in its shards"
            )
        return batch.extras[MASK_LATENTS], batch.extras[CAPTION_EMBEDS], batch.extras[CAPTION_MASK]

    def w_prime(self, batch: VideoBatch) -> Tensor:
        """w' per sample [B]: w exp(-alpha Ī) from the data's CMI; w without dynamic weighting."""
        if not self.hp.dynamic_weighting:
            return torch.full((len(batch),), float(self.hp.loss_w), device=batch.latents.device)
        cmi = batch.extras.get(CMI)
        if cmi is None:
            raise ConfigError(
                "method=jdm: the batch has no jdm/cmi; compute it with `vidgen jdm cmi --data ROOT ...`, or set "
                "method.dynamic_weighting=false"
            )
        return dynamic_weight(cmi.reshape(len(batch)), self.hp.loss_w, self.hp.loss_alpha).to(
            batch.latents.device
        )

    def draw(self, batch: VideoBatch, gen: torch.Generator) -> JointDraw:
        x0 = batch.latents
        b = x0.shape[0]
        mask_latents = self._extras(batch)[0]
        k_count = mask_latents.shape[1]
        dev = gen.device
        noise = torch.randn((b, 2 * x0.shape[1], *x0.shape[2:]), generator=gen, device=dev, dtype=x0.dtype)
        t = self.objective.sample_timesteps(b, gen)
        if k_count > 1:
            k = torch.randint(1, k_count, (b,), generator=gen, device=dev)
        else:
            k = torch.zeros(b, dtype=torch.long, device=dev)
        drop = torch.rand(b, generator=gen, device=dev) < float(self.cfg.train.cfg_dropout)
        u = torch.rand(b, generator=gen, device=dev)
        subsets = None
        if self.hp.combinations == "fresh":  # a CPU generator seeded from the step's: (seed, step, rank)
            cpu = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=gen, device=dev)))
            cap, law = self.hp.max_objects_per_combination, self.hp.subset_sampling
            subsets = [draw_subset(n, cpu, cap, law) for n in region_counts(batch)]
        to = x0.device
        return JointDraw(noise.to(to), t.to(to), k.to(to), drop.to(to), u.to(to), subsets)

    def use_data(self, datamodule) -> None:
        """The data whose codec / text encoder encode fresh combinations (default: the trainer's)."""
        self._data, self._encoders = datamodule, None

    def fine_inputs(self, batch: VideoBatch, d: JointDraw, fine: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """L_fine's signal latents [B, C, ...], prompt [B, L, D] and mask [B, L] (rows where ``fine``)."""
        mask_latents, cap_embeds, cap_mask = self._extras(batch)
        if d.subsets is None:  # pool: combination k of the clip's K
            rows = torch.arange(len(batch), device=batch.latents.device)
            return mask_latents[rows, d.k], cap_embeds[rows, d.k], cap_mask[rows, d.k].bool()
        if getattr(self, "_encoders", None) is None:
            data = getattr(self, "_data", None) or self.trainer.datamodule
            self._encoders = (data.codec(), data.text_encoder())
        codec, text = self._encoders
        wanted = [s if f else None for s, f in zip(d.subsets, fine.tolist())]
        return encode_subsets(batch, wanted, codec, text, self.signal)

    def joint_loss(self, batch: VideoBatch, d: JointDraw, fine: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample loss [B] of one forward: sample i uses L_fine's inputs where ``fine[i]``, else L_diff's.

        L_fine (Eq. 11): a combination's regional prompt and signal (``combinations=fresh``: the step's
        subset, encoded now; ``pool``: combination k of the clip's K), MSE over all 2C channels.
        L_diff (Eq. 3): the global caption; with ``l_diff=video`` (default) the MSE covers the video
        channels only, while the signal input channels still hold the noised all-objects signal
        (combination 0, at the same t): the inflated network always reads 2C channels, and at
        sampling time those channels carry the jointly generated all-objects mask, so L_diff sees
        the input distribution of inference. ``l_diff=joint`` also scores the signal channels.
        """
        mask_latents = self._extras(batch)[0]
        fine_m0, fine_text, fine_mask = self.fine_inputs(batch, d, fine)
        m0 = torch.where(fine[:, None, None, None, None], fine_m0, mask_latents[:, 0]).to(batch.latents.dtype)
        text = torch.where(fine[:, None, None], fine_text.to(batch.text_embeds.dtype), batch.text_embeds)
        tmask = torch.where(fine[:, None], fine_mask, batch.text_mask.bool())
        keep = ~d.drop
        text = torch.where(keep[:, None, None], text, self.null_text_embeds.to(text.dtype)[None])
        tmask = torch.where(keep[:, None], tmask, self.null_text_mask[None])
        x0 = torch.cat([batch.latents, m0], dim=1)
        x_t = self.objective.add_noise(x0, d.noise, d.t)
        pred = self.denoise(x_t, d.t, text, tmask, batch)
        per = self.objective.loss(pred.float(), x0.float(), d.noise.float(), x_t.float(), d.t)
        c = self.channels
        if self.hp.l_diff == "video":  # Eq. 3: L_diff is the standard video-only objective
            video = self.objective.loss(
                pred[:, :c].float(), x0[:, :c].float(), d.noise[:, :c].float(), None, d.t
            )
            per = torch.where(fine, per, video)
        with torch.no_grad():
            parts = {
                "loss_video": self.objective.loss(
                    pred[:, :c].float(), x0[:, :c].float(), d.noise[:, :c].float(), None, d.t
                ),
                "loss_mask": self.objective.loss(
                    pred[:, c:].float(), x0[:, c:].float(), d.noise[:, c:].float(), None, d.t
                ),
            }
        return per, parts

    def loss_terms(self, batch: VideoBatch, d: JointDraw) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample loss [B] of the configured estimator for the draw ``d``, and what to log."""
        w_prime = self.w_prime(batch)
        b = len(batch)
        logs: dict[str, Tensor] = {"w_prime": w_prime.mean()}
        if self.estimator == "two_pass":
            l_diff, p_diff = self.joint_loss(
                batch, d, torch.zeros(b, dtype=torch.bool, device=w_prime.device)
            )
            l_fine, p_fine = self.joint_loss(batch, d, torch.ones(b, dtype=torch.bool, device=w_prime.device))
            per = two_pass_loss(l_diff, l_fine, w_prime)
            logs.update(loss_diff=l_diff.detach().mean(), loss_fine=l_fine.detach().mean())
            for key in p_diff:
                logs[key] = two_pass_loss(p_diff[key], p_fine[key], w_prime).mean()
            return per, logs
        fine = choose_fine(w_prime, d.u)
        per, parts = self.joint_loss(batch, d, fine)
        detached = per.detach()
        if fine.any():
            logs["loss_fine"] = detached[fine].mean()
        if (~fine).any():
            logs["loss_diff"] = detached[~fine].mean()
        logs["fine_fraction"] = fine.float().mean()
        logs.update({k: v.mean() for k, v in parts.items()})
        return per, logs

    def compute_loss(self, batch: VideoBatch, gen: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
        per, logs = self.loss_terms(batch, self.draw(batch, gen))
        return per.mean(), logs

    # ----------------------------------------------------------------------------- evaluation
    def _dataset_samples(self, datamodule):
        def take(n: int) -> list[VideoSample]:
            dataset = datamodule.val_dataset() if hasattr(datamodule, "val_dataset") else None
            if dataset is None:
                dataset = datamodule.dataset
            return [dataset[i] for i in range(min(n, len(dataset)))]

        return take

    @torch.no_grad()
    def generate_joint(
        self, prompts: list[evaluation.EvalPrompt], shape, codec, steps: int
    ) -> tuple[Tensor, Tensor]:
        """Jointly generate from each prompt: videos [N, 3, F, H, W] in [-1, 1] and bool masks [N, F, H, W]."""
        if self.spec.image_condition:
            raise ConfigError(
                f"method=jdm evaluation generates from text only; backbone {self.spec.name} needs an image"
            )
        chunk = max(1, int(self.cfg.train.micro_batch_size or 1))
        videos, masks = [], []
        for start in range(0, len(prompts), chunk):
            part = prompts[start : start + chunk]
            latents = self.generate(
                torch.stack([p.text_embeds for p in part]).to(self.device),
                torch.stack([p.text_mask for p in part]).to(self.device),
                self.null_text_embeds[None],
                self.null_text_mask[None],
                latent_shape=shape,
                steps=steps,
                guidance=str(self.cfg.sample.guidance),
                guidance_scale=float(self.cfg.sample.guidance_scale),
                seed=int(self.cfg.seed) + start,
                image_latents=None,
            ).cpu()
            videos.append(codec.decode(latents[:, : self.channels].float()).clamp(-1, 1))
            masks.append(self.decode_signal(latents, codec))
        return torch.cat(videos), torch.cat(masks)

    @torch.no_grad()
    def evaluate(self, datamodule) -> dict[str, float]:
        """Table 3 (mask signal only): ``mask_*`` vs. the generated video's segmentation, ``source_mask_*``
        vs. the source clip's mask (``evaluation``)."""
        if self.signal != "mask":
            return {}  # a regional HED / depth map has no binary segmentation to score against
        prompts = evaluation.eval_prompts(self.hp, datamodule, self._dataset_samples(datamodule))
        if not prompts:
            return {}
        sample = self._dataset_samples(datamodule)(1)[0]
        steps = int(self.hp.eval_steps if self.hp.eval_steps is not None else self.cfg.sample.steps)
        shape = (2 * self.channels, *sample.latents.shape[1:])
        videos, masks = self.generate_joint(prompts, shape, datamodule.codec(), steps)
        if self.hp.eval_videos:
            for p, v, m in zip(prompts, videos, masks):
                evaluation.write_generated(self.hp.eval_videos, p.video_id, v, m)
        from vidgen.data.shapes_datamodule import ShapesDataModule

        shapes_world = isinstance(datamodule, ShapesDataModule)
        return evaluation.score(prompts, videos, masks, self.hp.eval_reference_masks, shapes_world)
