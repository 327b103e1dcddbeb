"""JDMModule: joint video + regional-signal denoising (JDM Sec. 3.2-3.3, Eq. 10-13).

Model
    The registry backbone with its input patchify and output projection inflated C -> 2C
    (``inflation.inflate``; new weights zero, so step 0 reproduces the pretrained video
    prediction). The denoiser reads and writes ``[video C | signal C]``; the signal is the
    regional mask (default), or regional HED / depth (``method.signal``, Table 5), encoded by the
    data's VAE / codec like video (by the combination sampler, ``combinations.make_transform``).

Joint noising (Eq. 10-11)
    ``x_t = noise(x0, eps_x, t)`` and ``m_t = noise(m0, eps_m, t)`` with the backbone's own
    schedule and objective (CogVideoX v, ModelScope eps, Wan flow), with **independent noise**
    ``eps_x``, ``eps_m`` ("noise is added to both the mask and the input video (sampling
    independently)", Sec. 3.3) and **one shared timestep** t per sample: Eq. 10 is a single
    Gaussian with one ``alpha_bar_t`` over the pair (x0, m0), and at sampling time the pair is one
    latent denoised with one schedule, so the network only ever sees (x_t, m_t) at equal noise
    levels. The loss is the objective's MSE over all 2C channels, i.e. the mean of the video and
    the signal terms (equal sizes); both halves are logged (``train/loss_video``, ``train/loss_mask``).

The two terms of Eq. 13 (per sample; combinations come from ``batch.extras``)
    - ``L_diff``: the standard objective on the **global caption** (``batch.text_embeds``), with the
      signal channels carrying combination 0, the **"all objects" signal** (union of every region
      mask, which pairs with the global caption, as y = concat(y^1..y^n) pairs with the union of
      m^1..m^n). So L_diff trains p(x, m_all | y): exactly what is sampled at inference (prompt ->
      video + all-objects mask) and what ``evaluate`` scores.
    - ``L_fine`` (Eq. 11): a random combination k in 1..K-1 (drawn per sample) with its regional
      prompt (the concatenated regional captions) and its signal latents. With K = 1 there is no
      regional combination and L_fine falls back to combination 0 (= L_diff).
    - ``w' = w exp(-alpha I_bar)`` per sample (``loss_weighting.dynamic_weight``; ``jdm/cmi`` = 0
      without a CMI table, so w' = w = 1 and training is all L_fine, as in the paper's default).
    - ``method.estimator``: ``two_pass`` evaluates both terms every step (two forwards, exact
      ``(1 - w') L_diff + w' L_fine``, with the same noise, t and caption dropout for both terms);
      ``one_pass`` (default) draws u ~ U[0, 1) per sample and evaluates L_fine if u < w', else
      L_diff: one forward, unbiased for the two-pass loss (test: the mean over many u equals it).
    Caption dropout (``train.cfg_dropout``, for CFG) replaces the chosen prompt by the empty one;
    the signal channels keep their combination's signal.

All randomness of a step (both noises, t, k, dropout, u) is drawn from ``self.step_generator``
in a fixed order (``draw``), so a resumed run reproduces an uninterrupted one exactly.

Sampling and evaluation
    ``latent_shape`` has 2C channels; ``decode_sample`` decodes both halves with the data's codec,
    binarises the mask (``method.mask_threshold`` on the RGB mean of the decoded signal) and puts
    video | mask side by side ([B, 3, F, H, 2W]), so ``vidgen sample`` writes both. ``evaluate``
    generates ``method.eval_samples`` clips jointly from their combination-0 (global) caption with
    ``method.eval_steps`` sampler steps and CFG, and scores the binarised mask against the ground
    truth ``jdm/masks[0]`` (``eval/mask_iou``, ``eval/mask_f1``, ``eval/mask_pixel_acc``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from vidgen.backbones import BackboneSpec
from vidgen.data.sample import VideoBatch, VideoSample
from vidgen.errors import ConfigError
from vidgen.eval.mask_metrics import binarize, mask_metrics, resize_masks
from vidgen.methods.base import DiffusionModule
from vidgen.methods.jdm.inflation import inflate
from vidgen.methods.jdm.loss_weighting import check_estimator, choose_fine, dynamic_weight, two_pass_loss

SIGNALS = ("mask", "hed", "depth")
MASK_LATENTS = "jdm/mask_latents"  # [B, K, C, F', H', W']
CAPTION_EMBEDS = "jdm/caption_embeds"  # [B, K, L, D]
CAPTION_MASK = "jdm/caption_mask"  # [B, K, L]
MASKS = "jdm/masks"  # [B, K, F, H, W] bool
CMI = "jdm/cmi"  # [B]
TRAIN_KEYS = (MASK_LATENTS, CAPTION_EMBEDS, CAPTION_MASK)


@dataclass
class JointDraw:
    """The randomness of one JDM training step (drawn in this order from the step generator)."""

    noise: Tensor  # [B, 2C, F', H', W']: video noise | signal noise (independent)
    t: Tensor  # [B] one timestep per sample, shared by video and signal
    k: Tensor  # [B] long: the regional combination of L_fine (1..K-1; 0 when K = 1)
    drop: Tensor  # [B] bool: caption replaced by the empty prompt
    u: Tensor  # [B] in [0, 1): the one-pass estimator's choice (fine when u < w')


class JDMModule(DiffusionModule):
    required_fields: ClassVar[set[str]] = {"latents", "text_embeds"}

    def __init__(self, cfg: DictConfig | dict, model: nn.Module | None = None):
        super().__init__(cfg, model)
        m = self.cfg.method
        self.signal = str(m.get("signal", "mask"))
        if self.signal not in SIGNALS:
            raise ConfigError(f"method.signal={self.signal!r} is not valid; use one of {', '.join(SIGNALS)}")
        self.estimator = check_estimator(str(m.get("estimator", "one_pass")))
        self.loss_w = float(m.get("loss_w", 1.0))
        self.loss_alpha = float(m.get("loss_alpha", 1.0))
        dynamic_weight(torch.zeros(1), self.loss_w, self.loss_alpha)  # validates w and alpha
        self.mask_threshold = float(m.get("mask_threshold", 0.0))

    # ----------------------------------------------------------------------------- model
    @classmethod
    def build_model(cls, cfg: DictConfig, spec: BackboneSpec) -> nn.Module:
        return inflate(super().build_model(cfg, spec))

    @classmethod
    def example_inputs(
        cls, spec: BackboneSpec, size: str, frames: int, height: int, width: int, model: nn.Module, batch: int = 1
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
        cmi = batch.extras.get(CMI)
        if cmi is None:
            cmi = torch.zeros(len(batch))
        return dynamic_weight(cmi.reshape(len(batch)), self.loss_w, self.loss_alpha).to(batch.latents.device)

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
        to = x0.device
        return JointDraw(noise.to(to), t.to(to), k.to(to), drop.to(to), u.to(to))

    def joint_loss(self, batch: VideoBatch, d: JointDraw, fine: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample loss [B] of one forward: sample i uses L_fine's inputs where ``fine[i]``, else L_diff's."""
        mask_latents, cap_embeds, cap_mask = self._extras(batch)
        b = len(batch)
        rows = torch.arange(b, device=batch.latents.device)
        combo = torch.where(fine, d.k, torch.zeros_like(d.k))
        m0 = mask_latents[rows, combo].to(batch.latents.dtype)
        text = torch.where(fine[:, None, None], cap_embeds[rows, d.k].to(batch.text_embeds.dtype), batch.text_embeds)
        tmask = torch.where(fine[:, None], cap_mask[rows, d.k].bool(), batch.text_mask.bool())
        keep = ~d.drop
        text = torch.where(keep[:, None, None], text, self.null_text_embeds.to(text.dtype)[None])
        tmask = torch.where(keep[:, None], tmask, self.null_text_mask[None])
        x0 = torch.cat([batch.latents, m0], dim=1)
        x_t = self.objective.add_noise(x0, d.noise, d.t)
        pred = self.denoise(x_t, d.t, text, tmask, batch)
        per = self.objective.loss(pred.float(), x0.float(), d.noise.float(), x_t.float(), d.t)
        c = self.channels
        with torch.no_grad():
            parts = {
                "loss_video": self.objective.loss(pred[:, :c].float(), x0[:, :c].float(), d.noise[:, :c].float(), None, d.t),
                "loss_mask": self.objective.loss(pred[:, c:].float(), x0[:, c:].float(), d.noise[:, c:].float(), None, d.t),
            }
        return per, parts

    def loss_terms(self, batch: VideoBatch, d: JointDraw) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample loss [B] of the configured estimator for the draw ``d``, and what to log."""
        w_prime = self.w_prime(batch)
        b = len(batch)
        logs: dict[str, Tensor] = {"w_prime": w_prime.mean()}
        if self.estimator == "two_pass":
            l_diff, p_diff = self.joint_loss(batch, d, torch.zeros(b, dtype=torch.bool, device=w_prime.device))
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
    def _eval_samples(self, datamodule) -> list[VideoSample]:
        n = int(self.cfg.method.get("eval_samples", 4))
        if n <= 0:
            return []
        dataset = datamodule.val_dataset() if hasattr(datamodule, "val_dataset") else None
        if dataset is None:
            dataset = datamodule.dataset
        return [dataset[i] for i in range(min(n, len(dataset)))]

    @torch.no_grad()
    def generate_masks(self, samples: list[VideoSample], codec, steps: int) -> Tensor:
        """Jointly generate from each sample's combination-0 (global) caption; bool masks [N, F, H, W]."""
        c, f, h, w = samples[0].latents.shape
        chunk = max(1, int(self.cfg.train.micro_batch_size or 1))
        out = []
        for start in range(0, len(samples), chunk):
            part = samples[start : start + chunk]
            embeds = torch.stack([s.extras[CAPTION_EMBEDS][0] for s in part]).to(self.device)
            mask = torch.stack([s.extras[CAPTION_MASK][0] for s in part]).bool().to(self.device)
            image = None
            if self.spec.image_condition:
                image = torch.stack([s.image_latents for s in part]).to(self.device)
            latents = self.generate(
                embeds,
                mask,
                self.null_text_embeds[None],
                self.null_text_mask[None],
                latent_shape=(2 * c, f, h, w),
                steps=steps,
                guidance=str(self.cfg.sample.guidance),
                guidance_scale=float(self.cfg.sample.guidance_scale),
                seed=int(self.cfg.seed) + start,
                image_latents=image,
            )
            out.append(self.decode_signal(latents.cpu(), codec))
        return torch.cat(out)

    @torch.no_grad()
    def evaluate(self, datamodule) -> dict[str, float]:
        """Mask IoU / F1 / pixel accuracy of jointly generated masks vs. ``jdm/masks[0]`` (mask signal only)."""
        if self.signal != "mask":
            return {}  # a regional HED / depth map has no binary ground truth to score against
        samples = self._eval_samples(datamodule)
        if not samples or any(MASKS not in s.extras for s in samples):
            return {}
        pred = self.generate_masks(samples, datamodule.codec(), int(self.cfg.method.get("eval_steps", 10)))
        target = torch.stack([s.extras[MASKS][0].bool() for s in samples])
        pred = resize_masks(pred, tuple(target.shape[-2:]))
        n = min(pred.shape[1], target.shape[1])
        return mask_metrics(pred[:, :n], target[:, :n])
