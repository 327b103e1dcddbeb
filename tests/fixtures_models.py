"""Tiny random-init VAE / text-encoder folders for tests (no downloads).

    vae_path = make_tiny_vae(tmp_path, "AutoencoderKLCogVideoX")          # <tmp>/tiny-<kind>/vae/
    te_path = make_tiny_text_encoder(tmp_path, "T5EncoderModel", dim=32)  # <tmp>/tiny-<kind>/{text_encoder,tokenizer}/

`layout="pipeline"` (default) writes the diffusers pipeline layout (the returned path is the
pipeline root holding `vae/` or `text_encoder/` + `tokenizer/`); `layout="flat"` writes the
model (and tokenizer) directly into the returned folder. Pass `root=` to put both into one
pipeline folder. The tokenizer is a lower-casing WordLevel tokenizer over `VOCAB_WORDS` (other
words map to the unknown token), wrapped in `PreTrainedTokenizerFast` so that
`AutoTokenizer.from_pretrained(path)` loads it.
"""

from __future__ import annotations

from pathlib import Path

import torch

VAE_KINDS = ("AutoencoderKLCogVideoX", "AutoencoderKLWan", "AutoencoderKL")
TEXT_KINDS = ("T5EncoderModel", "UMT5EncoderModel", "CLIPTextModel")

VOCAB_WORDS = (
    "a red square moves left right up down on blue green black white background circle ball "
    "the dog cat person walks runs in park street with and of small large video frame sky car"
).split()


def _folder(tmp: Path, kind: str, layout: str, root: Path | None, sub: str) -> tuple[Path, Path]:
    if layout not in ("pipeline", "flat"):
        raise ValueError(f"layout must be 'pipeline' or 'flat', got {layout!r}")
    base = Path(root) if root is not None else Path(tmp) / f"tiny-{kind}-{layout}"
    target = base / sub if layout == "pipeline" else base
    target.mkdir(parents=True, exist_ok=True)
    return base, target


def tiny_vae_model(kind: str, seed: int = 0):
    """A tiny random-init diffusers VAE of class `kind` (8x spatial; 4x temporal for video VAEs)."""
    import diffusers

    torch.manual_seed(seed)
    if kind == "AutoencoderKLCogVideoX":
        return diffusers.AutoencoderKLCogVideoX(
            in_channels=3,
            out_channels=3,
            down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
        )
    if kind == "AutoencoderKLWan":
        return diffusers.AutoencoderKLWan(
            base_dim=3,
            z_dim=4,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
            latents_mean=[0.1, -0.2, 0.3, 0.0],
            latents_std=[1.5, 2.0, 0.5, 1.0],
        )
    if kind == "AutoencoderKL":
        return diffusers.AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            scaling_factor=0.18215,
        )
    raise ValueError(f"unknown VAE kind {kind!r}; use one of {VAE_KINDS}")


def make_tiny_vae(tmp: Path, kind: str, layout: str = "pipeline", root: Path | None = None) -> Path:
    """Save a tiny random-init VAE; returns the pipeline root (layout='pipeline') or the VAE folder."""
    base, target = _folder(tmp, kind, layout, root, "vae")
    tiny_vae_model(kind).save_pretrained(target)
    return base


def make_tiny_tokenizer(kind: str, max_length: int = 226):
    """A WordLevel tokenizer with the special tokens of the family's real tokenizer."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    if kind == "CLIPTextModel":
        specials = ["<|endoftext|>", "<|startoftext|>", "<unk>"]
        vocab = {tok: i for i, tok in enumerate(specials)}
        for word in VOCAB_WORDS:
            vocab.setdefault(word, len(vocab))
        tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
        post = processors.TemplateProcessing(
            single="<|startoftext|> $A <|endoftext|>",
            special_tokens=[
                ("<|startoftext|>", vocab["<|startoftext|>"]),
                ("<|endoftext|>", vocab["<|endoftext|>"]),
            ],
        )
        special = dict(
            bos_token="<|startoftext|>",
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            unk_token="<unk>",
        )
    else:  # T5 / umT5: pad=0, eos=1, unk=2, no BOS
        specials = ["<pad>", "</s>", "<unk>"]
        vocab = {tok: i for i, tok in enumerate(specials)}
        for word in VOCAB_WORDS:
            vocab.setdefault(word, len(vocab))
        tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
        post = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
        special = dict(eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = post
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, **special)


def tiny_text_model(kind: str, vocab_size: int, dim: int = 32, seed: int = 0, max_positions: int = 77):
    import transformers

    torch.manual_seed(seed)
    if kind in ("T5EncoderModel", "UMT5EncoderModel"):
        config_cls = transformers.T5Config if kind == "T5EncoderModel" else transformers.UMT5Config
        config = config_cls(
            vocab_size=vocab_size,
            d_model=dim,
            d_kv=8,
            d_ff=2 * dim,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
        return getattr(transformers, kind)(config)
    if kind == "CLIPTextModel":
        config = transformers.CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=dim,
            intermediate_size=2 * dim,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=max_positions,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=0,
        )
        return transformers.CLIPTextModel(config)
    raise ValueError(f"unknown text encoder kind {kind!r}; use one of {TEXT_KINDS}")


def make_tiny_text_encoder(
    tmp: Path, kind: str, dim: int = 32, layout: str = "pipeline", root: Path | None = None
) -> Path:
    """Save a tiny text encoder + tokenizer; returns the pipeline root or the flat folder."""
    base, target = _folder(tmp, kind, layout, root, "text_encoder")
    tokenizer = make_tiny_tokenizer(kind, max_length=77 if kind == "CLIPTextModel" else 512)
    tiny_text_model(kind, vocab_size=len(tokenizer), dim=dim).save_pretrained(target)
    tokenizer.save_pretrained(base / "tokenizer" if layout == "pipeline" else target)
    return base
