"""STIV-JIT-TUP (Table 6, App. K): the main model's clip, then the temporal upsampler on it.

App. K: "We also cascade the temporal upsampler with our main model". The upsampler is a STIV-TUP
run (``exp=stiv_tup_xl``: ``method.condition_frames: "stride:2"``); the main model's N latent frames
become its condition frames 0, 2, ..., 2N - 2 (frame replacement at every step, bit for bit) and it
generates the frames in between. Frame counts and sampler settings: ``TemporalUpsampler``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from vidgen.errors import ConfigError

FIELD = "sample.upsampler"


@dataclass
class TemporalUpsampler:
    """The TUP stage of the cascade: a loaded STIV-TUP run.

    Frame count: App. K does not state it. The upsampled clip has the TUP run's own clip length
    F (``data.frames``, what it was trained on), which must hold exactly the main model's N frames at
    stride 2: F = 2N (the paper's temporal patch 2 needs an even clip; the last frame follows the
    main model's last one) or F = 2N - 1 (temporal patch 1: only frames between two given ones).
    Sampler: the paper states none for the TUP (Table 21: "with text conditioning" is better).
    Each stage samples with its own run's settings: the main model with ``sample.*`` of the
    sampling command (STIV-JIT: JIT-CFG, s = 7.5, renorm), the upsampler with its run's
    ``sample.steps`` / ``guidance`` / ``guidance_scale`` and ``method.guidance_drop`` (stiv_tup_xl:
    plain text CFG 7.5 with the frames in both branches, renorm), the same prompt (encoded once
    by the main run's text encoder) and the same seed (our choice).
    """

    module: torch.nn.Module  # STIVModule of the TUP run, weights loaded, eval mode
    cfg: DictConfig  # the TUP run's config
    source: Path  # the checkpoint it was loaded from
    latent_shape: tuple[int, int, int, int]  # (C, F, H', W') of the upsampled clip

    @torch.no_grad()
    def __call__(self, latents: Tensor, text_embeds, text_mask, null_embeds, null_mask, seed: int) -> Tensor:
        """latents [B, C, N, H', W'] of the main model -> [B, C, F, H', W'] holding them at 0, 2, ..."""
        s = self.cfg.sample
        return self.module.generate(
            text_embeds,
            text_mask,
            null_embeds,
            null_mask,
            latent_shape=self.latent_shape,
            steps=int(s.steps),
            guidance=str(s.guidance),
            guidance_scale=float(s.guidance_scale),
            seed=int(seed),
            image_latents=latents.to(self.module.device),
        )


def _run_and_checkpoint(path: Path) -> tuple[Path, Path]:
    """(run folder, checkpoint) of ``upsampler=``: a run folder, or a checkpoint file inside one."""
    from vidgen.checkpoints import resume_checkpoint

    if not path.exists():
        raise ConfigError(f"{FIELD}={path}: no such run folder or checkpoint; pass a STIV-TUP run folder")
    if path.is_dir() and (path / "config.yaml").is_file():
        ckpt = resume_checkpoint(path, quiet=True)[0]
        if ckpt is None:
            raise ConfigError(f"{FIELD}={path}: the run has no checkpoint under checkpoints/; train it first")
        return path, ckpt
    run = path.parent.parent  # <run>/checkpoints/<name>.ckpt (or a DeepSpeed folder there)
    if not (run / "config.yaml").is_file():
        raise ConfigError(
            f"{FIELD}={path}: no config.yaml in {path if path.is_dir() else run}; pass a STIV-TUP run folder "
            "written by `vidgen train` (or a checkpoint in its checkpoints/)"
        )
    return run, path


def load_upsampler(path: str | Path, main, main_shape: tuple[int, ...], text_dim: int) -> TemporalUpsampler:
    """The TUP run at ``path`` for a main STIV module ``main`` sampling latents ``main_shape``
    (C, N, H', W') with text embeddings of width ``text_dim``; every mismatch is one ConfigError."""
    from vidgen.methods.stiv.conditioning import condition_mask, describe
    from vidgen.methods.stiv.module import STIVModule
    from vidgen.sampling import load_weights
    from vidgen.train import data_resolution

    if not isinstance(main, STIVModule):
        raise ConfigError(
            f"{FIELD}: the cascade needs a STIV run to upsample (this run's method is not stiv)"
        )
    run, ckpt = _run_and_checkpoint(Path(path))
    cfg = OmegaConf.load(run / "config.yaml")
    if (
        OmegaConf.select(cfg, "method.name") != "stiv"
        or OmegaConf.select(cfg, "method.condition_frames") != "stride:2"
    ):
        got = OmegaConf.select(cfg, "method.condition_frames", default=None)
        raise ConfigError(
            f"{FIELD}={path}: {run} is not a temporal upsampler (method.condition_frames={got}, needs 'stride:2'); "
            "pass a run of exp=stiv_tup_xl"
        )
    # the weights come from the checkpoint: no pretrained folder, no progressive initialisation
    cfg = OmegaConf.merge(
        cfg,
        {
            "backbone": {"init": "random", "weights": None},
            "method": {"init": {"from": None, "temporal_from": None}},
        },
    )
    module = STIVModule(cfg)
    load_weights(module, ckpt, cfg)
    module.eval().to(main.device)
    shape = module.latent_shape(*data_resolution(cfg, module.spec))
    c, n, h, w = main_shape
    given = int(condition_mask(module.hp.condition_frames, shape[1]).sum())
    where = f"{FIELD}={path}"
    if (shape[0], shape[2], shape[3]) != (c, h, w):
        raise ConfigError(
            f"{where}: the upsampler's latents are {(shape[0], shape[2], shape[3])} (C, H', W') but this run's are "
            f"{(c, h, w)}; train the upsampler at this run's data.height x data.width and latent channels"
        )
    if given != n:
        raise ConfigError(
            f"{where}: the upsampler's {shape[1]}-frame clip takes {given} condition frame(s) "
            f"(method.condition_frames={describe(module.hp.condition_frames)}) but this run generates {n}; "
            f"use an upsampler trained with data.frames={2 * n} (or {2 * n - 1} with temporal patch 1)"
        )
    want = module.model.model.caption_proj[0].in_features
    if want != text_dim:
        raise ConfigError(
            f"{where}: the upsampler reads {want}-d text embeddings but this run's text encoder gives {text_dim}-d; "
            "both runs must use the same text encoder"
        )
    return TemporalUpsampler(module, cfg, ckpt, tuple(shape))


def check_eval_folder(cfg: DictConfig, run_dir: Path) -> None:
    """`vidgen eval RUN sample.upsampler=...`: refused unless RUN's own config names that upsampler,
    so cascade videos never mix with (or are taken for) the run's own in ``<run>/eval/<suite>/``."""
    recorded = Path(run_dir) / "config.yaml"
    if not recorded.is_file():
        return
    saved = OmegaConf.select(OmegaConf.load(recorded), FIELD, default=None)
    if saved != cfg.sample.get("upsampler"):
        raise ConfigError(
            f"{FIELD}={cfg.sample.get('upsampler')}: {run_dir} records {FIELD}={saved}; its eval folder holds "
            "that run's own videos. Evaluate the cascade as its own run: `vidgen train exp=stiv_ti2v_m "
            "variant=stiv/table6_stiv_jit_tup` (STIV_JIT_CKPT, STIV_TUP_RUN), then `vidgen eval` on that folder"
        )
