"""Load a local text encoder / VAE (`from_pretrained(path)`) behind the data protocols.

    text_encoder = load_text_encoder("ckpt/CogVideoX-2b", "T5EncoderModel", max_length=226)
    embeds, mask = text_encoder.encode(["a red square"])      # [B, L, D], [B, L] bool
    vae = load_vae("ckpt/CogVideoX-2b", "AutoencoderKLCogVideoX")
    latents = vae.encode(video)                              # [B, 3, F, H, W] in [-1, 1] -> [B, C, F', H', W']

A path is either a diffusers pipeline folder (`text_encoder/` + `tokenizer/`, or `vae/`) or a
folder holding the model itself (and, for text encoders, its tokenizer files next to it).
Nothing is downloaded: a missing folder is a `DataError` naming the path and the layout.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from vidgen.errors import ConfigError, DataError

TEXT_ENCODER_KINDS = ("T5EncoderModel", "UMT5EncoderModel", "CLIPTextModel", "AutoModel")
VAE_KINDS = ("AutoencoderKLCogVideoX", "AutoencoderKLWan", "AutoencoderKL")

_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "spiece.model",
    "vocab.json",
    "sentencepiece.bpe.model",
)

_TEXT_LAYOUT = (
    "expected either a pipeline folder with `text_encoder/` (config.json + weights) and "
    "`tokenizer/` subfolders, or one folder holding config.json, the weights and the tokenizer files"
)
_VAE_LAYOUT = (
    "expected either a pipeline folder with a `vae/` subfolder, or the VAE folder itself "
    "(config.json + diffusion_pytorch_model.safetensors)"
)


def _has_tokenizer(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).is_file() for name in _TOKENIZER_FILES)


def resolve_text_encoder_dirs(path: str | Path) -> tuple[Path, Path]:
    """(model folder, tokenizer folder) for a pipeline or flat text-encoder folder."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"text encoder folder {path} does not exist; {_TEXT_LAYOUT}.")
    if (path / "text_encoder").is_dir():
        model_dir = path / "text_encoder"
        candidates = [path / "tokenizer", model_dir, path]
    else:
        model_dir = path
        candidates = [path, path / "tokenizer"]
    if not (model_dir / "config.json").is_file():
        raise DataError(f"no config.json in text encoder folder {model_dir}; {_TEXT_LAYOUT}.")
    for folder in candidates:
        if _has_tokenizer(folder):
            return model_dir, folder
    raise DataError(
        f"no tokenizer found for text encoder {path} (looked in {', '.join(str(c) for c in candidates)} "
        f"for {', '.join(_TOKENIZER_FILES)}); {_TEXT_LAYOUT}."
    )


def resolve_vae_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"VAE folder {path} does not exist; {_VAE_LAYOUT}.")
    folder = path / "vae" if (path / "vae").is_dir() else path
    if not (folder / "config.json").is_file():
        raise DataError(f"no config.json in VAE folder {folder}; {_VAE_LAYOUT}.")
    return folder


# ---------------------------------------------------------------------------------------------
# Text encoders


class HFTextEncoder:
    """A transformers text encoder + tokenizer returning what each family's pipeline feeds its model.

    - T5EncoderModel (CogVideoX): the encoder runs without an attention mask and every position
      (padding included, up to `max_length` = 226) is kept, as `CogVideoXPipeline` does.
    - UMT5EncoderModel (Wan): the encoder runs with the mask and positions beyond the prompt are
      zeroed, as `WanPipeline` does.
    - CLIPTextModel (ModelScope): `last_hidden_state` of 77 tokens; the mask is passed only when
      the config sets `use_attention_mask`, as the Stable Diffusion style pipelines do.
    - AutoModel (any transformers text model, e.g. STIV's text-encoder knob): `last_hidden_state`
      of the class its config names, run with the attention mask.
    The returned mask is the tokenizer's attention mask (True = real token) in every case.
    """

    def __init__(self, model, tokenizer, kind: str, max_length: int, batch_size: int = 32):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.kind = kind
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def dim(self) -> int:
        config = self.model.config
        return int(getattr(config, "d_model", None) or config.hidden_size)

    def tokenize(self, prompts: list[str]):
        return self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )

    @torch.no_grad()
    def _encode_batch(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        tokens = self.tokenize(prompts)
        ids = tokens.input_ids.to(self.device)
        mask = tokens.attention_mask.to(self.device)
        if self.kind == "AutoModel":
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        elif self.kind == "UMT5EncoderModel":
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            hidden = hidden * mask[..., None].to(hidden.dtype)
        elif self.kind == "CLIPTextModel" and getattr(self.model.config, "use_attention_mask", False):
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        else:
            hidden = self.model(input_ids=ids).last_hidden_state
        return hidden, mask.bool()

    def encode(self, prompts: list[str] | str) -> tuple[Tensor, Tensor]:
        """Prompts -> (embeddings [B, max_length, D], mask [B, max_length] bool), batched internally."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            empty = torch.zeros(0, self.max_length, self.dim, dtype=self.dtype, device=self.device)
            return empty, torch.zeros(0, self.max_length, dtype=torch.bool, device=self.device)
        embeds, masks = [], []
        for i in range(0, len(prompts), self.batch_size):
            e, m = self._encode_batch(prompts[i : i + self.batch_size])
            embeds.append(e)
            masks.append(m)
        return torch.cat(embeds), torch.cat(masks)

    __call__ = encode


@contextlib.contextmanager
def _weight_bar_on_main_process_only() -> Iterator[None]:
    """transformers' "Loading weights" bar once per job: not in DataLoader workers, not on ranks > 0
    (each printed its own copy)."""
    from torch.utils.data import get_worker_info
    from transformers.utils import logging as hf_logging

    rank = next((os.environ[k] for k in ("RANK", "SLURM_PROCID", "LOCAL_RANK") if os.environ.get(k)), "0")
    quiet = get_worker_info() is not None or rank != "0"
    enabled = hf_logging.is_progress_bar_enabled()
    if quiet and enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and enabled:
            hf_logging.enable_progress_bar()


def load_text_encoder(
    path: str | Path,
    kind: str,
    max_length: int,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    batch_size: int = 32,
) -> HFTextEncoder:
    """Load `kind` (a transformers class name) and its tokenizer from a local folder."""
    if kind not in TEXT_ENCODER_KINDS:
        raise ConfigError(f"unknown text encoder kind {kind!r}; use one of {list(TEXT_ENCODER_KINDS)}")
    import transformers
    from transformers import AutoTokenizer

    model_dir, tokenizer_dir = resolve_text_encoder_dirs(path)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    try:
        with _weight_bar_on_main_process_only():
            model = getattr(transformers, kind).from_pretrained(model_dir, **kwargs)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load {kind} from {model_dir}: {exc}. {_TEXT_LAYOUT}.") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load the tokenizer from {tokenizer_dir}: {exc}. {_TEXT_LAYOUT}.") from exc
    return HFTextEncoder(model.to(device), tokenizer, kind, max_length, batch_size=batch_size)


# ---------------------------------------------------------------------------------------------
# VAEs


class DiffusersVAE:
    """A diffusers VAE as a `LatentCodec`: pixels [B, 3, F, H, W] in [-1, 1] <-> scaled latents.

    - AutoencoderKLCogVideoX: latents = z * scaling_factor (CogVideoX training scripts / pipeline).
    - AutoencoderKLWan: latents = (z - latents_mean) / latents_std per channel (WanPipeline).
    - AutoencoderKL (ModelScope / SD): applied frame by frame, latents = (z - shift) * scaling_factor.
    `sample=False` (default) encodes the posterior mode, so precomputed latents are deterministic.
    """

    def __init__(
        self,
        vae,
        kind: str,
        sample: bool = False,
        generator: torch.Generator | None = None,
        frame_batch: int = 8,
    ):
        self.vae = vae.eval().requires_grad_(False)
        self.kind = kind
        self.sample = sample
        self.generator = generator
        self.frame_batch = int(frame_batch)
        config = vae.config
        self.scaling_factor = float(getattr(config, "scaling_factor", None) or 1.0)
        self.shift_factor = float(getattr(config, "shift_factor", None) or 0.0)
        if kind == "AutoencoderKLWan":
            self.scaling_factor, self.shift_factor = 1.0, 0.0
            self.latents_mean = torch.tensor(config.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
            self.latents_std = torch.tensor(config.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @property
    def latent_channels(self) -> int:
        config = self.vae.config
        return int(getattr(config, "z_dim", None) or config.latent_channels)

    def _posterior(self, x: Tensor) -> Tensor:
        dist = self.vae.encode(x).latent_dist
        return dist.sample(generator=self.generator) if self.sample else dist.mode()

    def _normalise(self, z: Tensor) -> Tensor:
        if self.kind == "AutoencoderKLWan":
            mean = self.latents_mean.to(z.device, z.dtype)
            std = self.latents_std.to(z.device, z.dtype)
            return (z - mean) / std
        return (z - self.shift_factor) * self.scaling_factor

    def _denormalise(self, latents: Tensor) -> Tensor:
        if self.kind == "AutoencoderKLWan":
            mean = self.latents_mean.to(latents.device, latents.dtype)
            std = self.latents_std.to(latents.device, latents.dtype)
            return latents * std + mean
        return latents / self.scaling_factor + self.shift_factor

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """[B, 3, F, H, W] in [-1, 1] -> [B, C, F', H', W']."""
        if video.dim() != 5 or video.shape[1] != 3:
            raise ValueError(f"expected video [B, 3, F, H, W], got shape {tuple(video.shape)}")
        x = video.to(self.device, self.dtype)
        if self.kind == "AutoencoderKL":
            b, _, f, h, w = x.shape
            frames = x.permute(0, 2, 1, 3, 4).reshape(b * f, 3, h, w)
            z = torch.cat(
                [self._posterior(frames[i : i + self.frame_batch]) for i in range(0, b * f, self.frame_batch)]
            )
            z = z.reshape(b, f, *z.shape[1:]).permute(0, 2, 1, 3, 4)
        else:
            z = self._posterior(x)
        return self._normalise(z)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """[B, C, F', H', W'] -> [B, 3, F, H, W] in [-1, 1]."""
        if latents.dim() != 5:
            raise ValueError(f"expected latents [B, C, F, H, W], got shape {tuple(latents.shape)}")
        z = self._denormalise(latents.to(self.device, self.dtype))
        if self.kind == "AutoencoderKL":
            b, c, f, h, w = z.shape
            flat = z.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
            x = torch.cat(
                [
                    self.vae.decode(flat[i : i + self.frame_batch]).sample
                    for i in range(0, b * f, self.frame_batch)
                ]
            )
            x = x.reshape(b, f, *x.shape[1:]).permute(0, 2, 1, 3, 4)
        else:
            x = self.vae.decode(z).sample
        return x.clamp(-1, 1)


def load_vae(
    path: str | Path,
    kind: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    sample: bool = False,
    tiling: bool = False,
) -> DiffusersVAE:
    """Load `kind` (a diffusers class name) from a pipeline folder (`vae/`) or the VAE folder itself."""
    if kind not in VAE_KINDS:
        raise ConfigError(f"unknown VAE kind {kind!r}; use one of {list(VAE_KINDS)}")
    import diffusers

    folder = resolve_vae_dir(path)
    kwargs = {"torch_dtype": dtype} if dtype is not None else {}
    try:
        vae = getattr(diffusers, kind).from_pretrained(folder, **kwargs)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load {kind} from {folder}: {exc}. {_VAE_LAYOUT}.") from exc
    if tiling and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    return DiffusersVAE(vae.to(device), kind, sample=sample)
