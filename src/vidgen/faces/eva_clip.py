"""EVA02-CLIP vision tower (Ingredients Sec. 3.1: the CLIP image encoder of the facial extractor).

A torch re-implementation of EVA-CLIP's `EVAVisionTransformer` as configured for
EVA02-CLIP-L-14-336 (sub-LN attention with q/v biases, 2-D RoPE on the patch tokens, SwiGLU MLP
with an inner LayerNorm, final LN on the class token, linear head to 768). timm / open_clip
would build it, but both pull torchvision, whose wheel here replaces the CPU torch with a CUDA
build (torchvision 0.28 alone does not import against torch 2.13 CPU), so vidgen carries the
~120 lines. Parameter names follow EVA-CLIP's checkpoint (`visual.` prefix stripped), so the
released `EVA02_CLIP_L_336_psz14_s6B` state dict loads as is (converted to safetensors).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.errors import ConfigError

# OpenAI CLIP normalisation, used by EVA-CLIP's image transform.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class EvaClipConfig:
    image_size: int = 336
    patch_size: int = 14
    width: int = 1024
    layers: int = 24
    head_width: int = 64
    mlp_ratio: float = 2.6667
    embed_dim: int = 768  # the image embedding (CLIP space)
    pt_hw_seq_len: int = 16  # RoPE pre-training grid (224 / 14), interpolated to image_size / patch
    ln_eps: float = 1e-6

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def tokens(self) -> int:
        return self.grid**2 + 1


EVA02_CLIP_L_14_336 = EvaClipConfig()
# Same structure, random init: 28 px crops, 17 tokens, width 64, 5 blocks (tests, shapes world).
TINY_EVA_CLIP = EvaClipConfig(image_size=28, patch_size=7, width=64, layers=5, head_width=16, pt_hw_seq_len=4)


def _rotate_half(x: Tensor) -> Tensor:
    """EVA's rotate_half on interleaved pairs: (x1, x2) -> (-x2, x1)."""
    x = x.unflatten(-1, (-1, 2))
    return torch.stack((-x[..., 1], x[..., 0]), dim=-1).flatten(-2)


def rope_tables(cfg: EvaClipConfig) -> tuple[Tensor, Tensor]:
    """EVA's VisionRotaryEmbeddingFast: cos/sin [grid^2, head_width] (theta 10000, interpolated grid)."""
    dim = cfg.head_width // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    t = torch.arange(cfg.grid).float() / cfg.grid * cfg.pt_hw_seq_len
    freqs = torch.einsum("i,f->if", t, freqs).repeat_interleave(2, dim=-1)  # [G, dim]
    g = cfg.grid
    grid = torch.cat([freqs[:, None, :].expand(g, g, dim), freqs[None, :, :].expand(g, g, dim)], dim=-1)
    grid = grid.reshape(g * g, 2 * dim)
    return grid.cos(), grid.sin()


class EvaAttention(nn.Module):
    def __init__(self, cfg: EvaClipConfig):
        super().__init__()
        self.heads = cfg.width // cfg.head_width
        self.q_proj = nn.Linear(cfg.width, cfg.width, bias=False)
        self.k_proj = nn.Linear(cfg.width, cfg.width, bias=False)
        self.v_proj = nn.Linear(cfg.width, cfg.width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(cfg.width))
        self.v_bias = nn.Parameter(torch.zeros(cfg.width))
        self.inner_attn_ln = nn.LayerNorm(cfg.width, eps=cfg.ln_eps)  # sub-LN
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        b, n, c = x.shape
        q = (
            F.linear(x, self.q_proj.weight, self.q_bias)
            .view(b, n, self.heads, c // self.heads)
            .transpose(1, 2)
        )
        k = self.k_proj(x).view(b, n, self.heads, c // self.heads).transpose(1, 2)
        v = (
            F.linear(x, self.v_proj.weight, self.v_bias)
            .view(b, n, self.heads, c // self.heads)
            .transpose(1, 2)
        )
        # RoPE on the patch tokens only; the class token keeps its position-free q/k
        q = torch.cat([q[:, :, :1], q[:, :, 1:] * cos + _rotate_half(q[:, :, 1:]) * sin], dim=2)
        k = torch.cat([k[:, :, :1], k[:, :, 1:] * cos + _rotate_half(k[:, :, 1:]) * sin], dim=2)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, N, head_width]
        return self.proj(self.inner_attn_ln(out.transpose(1, 2).reshape(b, n, c)))


class EvaSwiGLU(nn.Module):
    def __init__(self, cfg: EvaClipConfig):
        super().__init__()
        hidden = int(cfg.width * cfg.mlp_ratio)
        self.w1 = nn.Linear(cfg.width, hidden)
        self.w2 = nn.Linear(cfg.width, hidden)
        self.ffn_ln = nn.LayerNorm(hidden, eps=cfg.ln_eps)  # sub-LN
        self.w3 = nn.Linear(hidden, cfg.width)

    def forward(self, x: Tensor) -> Tensor:
        return self.w3(self.ffn_ln(F.silu(self.w1(x)) * self.w2(x)))


class EvaBlock(nn.Module):
    def __init__(self, cfg: EvaClipConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.ln_eps)
        self.attn = EvaAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.ln_eps)
        self.mlp = EvaSwiGLU(cfg)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, cfg: EvaClipConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.width, cfg.patch_size, cfg.patch_size)


class EvaClipVision(nn.Module):
    """`forward(pixels [B, 3, S, S] in [-1, 1])` -> (embedding [B, embed_dim], hidden states).

    The crops are resized (bicubic) to `image_size` and CLIP-normalised, as EVA-CLIP's transform
    does. `hidden_blocks` are 0-based block indices whose outputs are returned ([B, tokens,
    width] each); Ingredients uses (3, 7, 11, 15, 19), captured before blocks 4, 8, 12, 16, 20.
    The embedding is the raw head output (not normalised; the facial extractor normalises it).
    """

    def __init__(self, cfg: EvaClipConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = _PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.tokens, cfg.width))
        self.blocks = nn.ModuleList(EvaBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.ln_eps)
        self.head = nn.Linear(cfg.width, cfg.embed_dim)
        cos, sin = rope_tables(cfg)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, pixels: Tensor) -> Tensor:
        size = self.cfg.image_size
        x = (pixels.float() + 1) / 2  # [-1, 1] -> [0, 1]
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
        return (x - self.mean) / self.std

    def forward(self, pixels: Tensor, hidden_blocks: tuple[int, ...] = ()) -> tuple[Tensor, list[Tensor]]:
        x = self.patch_embed.proj(self.preprocess(pixels)).flatten(2).transpose(1, 2)  # [B, G*G, W]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed  # [B, T, W]
        hidden = []
        for i, block in enumerate(self.blocks):
            x = block(x, self.rope_cos, self.rope_sin)
            if i in hidden_blocks:
                hidden.append(x)
        return self.head(self.norm(x[:, 0])), hidden  # [B, embed_dim], [B, T, W] each

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> EvaClipVision:
        """Load `folder/config.json` (EvaClipConfig fields) + `folder/model.safetensors` (EVA-CLIP names)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        cfg_path, weights = folder / "config.json", folder / "model.safetensors"
        for p in (cfg_path, weights):
            if not p.is_file():
                raise ConfigError(
                    f"EVA02-CLIP folder {folder}: {p.name} is missing. Fix: put the EVA02-CLIP-L-14-336 "
                    f"vision tower there (config.json with {sorted(asdict(EVA02_CLIP_L_14_336))} and "
                    f"model.safetensors with EVA-CLIP's parameter names), or set the faces size to tiny."
                )
        try:
            cfg = EvaClipConfig(**json.loads(cfg_path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as e:
            raise ConfigError(
                f"EVA02-CLIP config {cfg_path} is invalid ({e}); expected EvaClipConfig fields"
            ) from None
        model = cls(cfg)
        state = {k.removeprefix("visual."): v for k, v in load_file(str(weights)).items()}
        # EVA-CLIP stores the RoPE tables (rope.freqs_cos, blocks.N.attn.rope.freqs_*): recomputed here
        state = {k: v for k, v in state.items() if not (k.startswith("rope.") or ".rope." in k)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        unexpected = [k for k in unexpected if not k.startswith(("text.", "logit_scale", "transformer."))]
        if missing or unexpected:
            raise ConfigError(
                f"EVA02-CLIP weights {weights} do not match {cfg}: missing {missing[:4]}, "
                f"unexpected {unexpected[:4]}. Fix: convert EVA-CLIP's visual tower with its own names."
            )
        return model

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(asdict(self.cfg)), encoding="utf-8")
        save_file(
            {k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors")
        )
