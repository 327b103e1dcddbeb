"""The facial extractor (Ingredients Sec. 3.1): per aligned ID crop, a 1280-d global embedding
(ArcFace 512 ++ L2-normalised EVA02-CLIP 768) and five CLIP hidden states (local features)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.errors import ConfigError
from vidgen.faces.eva_clip import TINY_EVA_CLIP, EvaClipVision
from vidgen.faces.recognition import load_recognition

# Outputs of EVA-CLIP blocks 3, 7, 11, 15, 19 (0-based; the released code captures them before
# blocks 4, 8, 12, 16, 20).
CLIP_BLOCKS = (3, 7, 11, 15, 19)
TINY_CLIP_BLOCKS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class FacesConfig:
    """Which face models to build.

    size: "real" loads `recognition` (a folder holding antelopev2's glintr100.onnx) and `clip`
    (a folder with config.json + model.safetensors of the EVA02-CLIP-L-14-336 vision tower);
    "tiny" builds random-init twins (seeded by `seed`) and ignores the folders. `detector` is read
    by `detector_from_config` (reference images at sampling), not by the extractor.
    """

    size: str = "tiny"  # real | tiny
    recognition: str | None = None
    clip: str | None = None
    detector: str | None = None  # folder with SCRFD (antelopev2); None: images are aligned crops already
    clip_blocks: tuple[int, ...] | None = None  # None: CLIP_BLOCKS (real) / TINY_CLIP_BLOCKS (tiny)
    seed: int = 0

    def __post_init__(self):
        if self.size not in ("real", "tiny"):
            raise ConfigError(f"faces.size={self.size!r} must be 'real' or 'tiny'")
        if self.size == "real":
            for key in ("recognition", "clip"):
                if not getattr(self, key):
                    raise ConfigError(
                        f"faces.size=real needs faces.{key}=FOLDER (local weights); or use faces.size=tiny"
                    )

    @property
    def blocks(self) -> tuple[int, ...]:
        if self.clip_blocks is not None:
            return tuple(self.clip_blocks)
        return CLIP_BLOCKS if self.size == "real" else TINY_CLIP_BLOCKS


@dataclass
class FaceEmbeddings:
    """Per-ID facial features. global_ [K, 1280] = ArcFace [K, 512] ++ normalised CLIP [K, 768];
    local: one [K, L, C] CLIP hidden state per chosen block (L = 577, C = 1024 for the real CLIP)."""

    global_: Tensor
    local: list[Tensor] = field(default_factory=list)

    def __len__(self) -> int:
        return self.global_.shape[0]


class FacialExtractor(nn.Module):
    """`forward(crops [K, 3, S, S] in [-1, 1], aligned faces)` -> FaceEmbeddings.

    Frozen: both networks are pretrained feature extractors in the released code (no gradients,
    eval mode); `forward` runs under no_grad.
    """

    def __init__(self, recognition: nn.Module, clip: EvaClipVision, clip_blocks: tuple[int, ...]):
        super().__init__()
        bad = [b for b in clip_blocks if not 0 <= b < clip.cfg.layers]
        if bad:
            raise ConfigError(f"faces.clip_blocks {list(bad)} outside the CLIP's {clip.cfg.layers} blocks")
        self.recognition, self.clip, self.clip_blocks = recognition, clip, tuple(clip_blocks)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_config(cls, cfg: FacesConfig) -> FacialExtractor:
        if cfg.size == "tiny":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                recognition, clip = load_recognition("tiny"), EvaClipVision(TINY_EVA_CLIP)
                for p in clip.parameters():  # EVA-CLIP's zeros (cls, pos, biases) -> random too
                    if p.dim() < 2 or p is clip.cls_token or p is clip.pos_embed:
                        nn.init.normal_(p, std=0.02)
                for m in clip.modules():
                    if isinstance(m, nn.LayerNorm):
                        nn.init.ones_(m.weight), nn.init.zeros_(m.bias)
        else:
            recognition, clip = load_recognition(cfg.recognition), EvaClipVision.from_pretrained(cfg.clip)
        return cls(recognition, clip, cfg.blocks)

    def train(self, mode: bool = True) -> FacialExtractor:
        return super().train(False)  # always eval: frozen feature extractor

    @property
    def global_dim(self) -> int:
        return 512 + self.clip.cfg.embed_dim

    @property
    def local_shape(self) -> tuple[int, int]:
        return self.clip.cfg.tokens, self.clip.cfg.width

    @torch.no_grad()
    def forward(self, crops: Tensor) -> FaceEmbeddings:
        if crops.dim() != 4 or crops.shape[1] != 3:
            raise ValueError(f"crops must be [K, 3, S, S], got {tuple(crops.shape)}")
        arcface = self.recognition(crops).float()  # [K, 512], raw
        clip_embed, hidden = self.clip(crops, self.clip_blocks)  # [K, 768], 5 x [K, L, C]
        global_ = torch.cat([arcface, F.normalize(clip_embed.float(), dim=-1)], dim=-1)  # [K, 1280]
        return FaceEmbeddings(global_=global_, local=[h.float() for h in hidden])
