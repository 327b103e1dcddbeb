"""InstanceDiffusionConfig: ``conf/method/instancediffusion.yaml`` parsed once (the only place defaults live)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import OmegaConf

from vidgen.errors import ConfigError
from vidgen.methods.instancediffusion.scaleu import SKIPS
from vidgen.methods.instancediffusion.tokenizers import ALL_FORMATS

FUSIONS = ("format_aware", "joint")
SKIP_FEATURES = ("scaleu", "freeu", "none")


@dataclass(frozen=True)
class InstanceDiffusionConfig:
    name: str
    max_instances: int  # N instance slots (30 in the released code)
    token_dim: int  # grounding-token width (768: CLIP-L text width)
    tokenizer_hidden: int  # the tokenizer MLPs' hidden width (3072)
    fourier_freqs: int  # Fourier frequencies of every format (16)
    scribble_points: int  # points per scribble (20)
    polygon_boundary_points: int  # polygon / mask points on the boundary (128; Table 6d varies the total)
    polygon_inside_points: int  # polygon / mask points inside the mask (128; 0 = Table 6c "polygons")
    fusion: str  # format_aware (default) | joint (Table 5 "w/o FA fusion")
    seg_tokens: int  # extra tokens from the binary masks (64; 0 = Table 6b "w/o extra tokens")
    seg_resolution: int  # side the instance masks are resized to before the ConvNeXt (512)
    seg_encoder: str | None  # local ConvNeXt folder (ConvNeXt-T); null = random init (tiny twin in smoke)
    format_drop: float  # per-format drop probability in training (0.1)
    grounding_drop: float  # whole grounding -> null tokens (0.1)
    train_formats: list  # formats given in training (then dropped at format_drop)
    inference_formats: list  # formats given at sampling / evaluation (Table 4 rows)
    mask_attn: bool  # Eq. 2 instance-masked fusion (paper: on; released code: off)
    mask_attn_containers: bool  # a token also sees the instances that contain its own
    skip_feature: str  # scaleu (paper) | freeu (Table 6a) | none (Table 5 "w/o ScaleU")
    scaleu_skip: str  # channel (paper: channel-wise s_s) | scalar (released code)
    scaleu_threshold: int  # half-size of the low-frequency window (1)
    freeu: dict  # FreeU's b1, b2, s1, s2 when skip_feature=freeu
    instance_captions: bool  # instance captions as tau(c_i) and MIS prompts (Table 5 "Inst. Cap.")
    mis: float  # fraction of sampler steps run per instance (0.36; 0 = Table 5 "w/o MIS")
    eval_samples: int
    eval_steps: int

    def __post_init__(self) -> None:
        for key in ("train_formats", "inference_formats"):
            bad = [f for f in getattr(self, key) if f not in ALL_FORMATS]
            if bad or not getattr(self, key):
                raise ConfigError(
                    f"method.{key}={list(getattr(self, key))}: use a non-empty subset of {list(ALL_FORMATS)}"
                )
        checks = {
            "fusion": (self.fusion in FUSIONS, f"one of {FUSIONS}"),
            "skip_feature": (self.skip_feature in SKIP_FEATURES, f"one of {SKIP_FEATURES}"),
            "scaleu_skip": (self.scaleu_skip in SKIPS, f"one of {SKIPS}"),
            "max_instances": (self.max_instances >= 1, ">= 1"),
            "polygon_boundary_points": (self.polygon_boundary_points >= 1, ">= 1"),
            "polygon_inside_points": (self.polygon_inside_points >= 0, ">= 0"),
            "scribble_points": (self.scribble_points >= 1, ">= 1"),
            "seg_tokens": (
                self.seg_tokens == 0 or round(self.seg_tokens**0.5) ** 2 == self.seg_tokens,
                "0 or a square",
            ),
            "format_drop": (0.0 <= self.format_drop <= 1.0, "in [0, 1]"),
            "grounding_drop": (0.0 <= self.grounding_drop <= 1.0, "in [0, 1]"),
            "mis": (0.0 <= self.mis <= 1.0, "in [0, 1] (0.36 in the released evaluation)"),
        }
        for key, (ok, want) in checks.items():
            if not ok:
                raise ConfigError(f"method.{key}={getattr(self, key)!r} must be {want}")
        if "seg" in self.inference_formats and self.seg_tokens == 0:
            raise ConfigError(
                "method.inference_formats has seg but method.seg_tokens=0. Fix: drop seg or set seg_tokens: 64"
            )

    @property
    def polygon_points(self) -> int:
        return self.polygon_boundary_points + self.polygon_inside_points

    @classmethod
    def from_cfg(cls, cfg) -> InstanceDiffusionConfig:
        values = (
            cfg.method if isinstance(cfg.method, dict) else OmegaConf.to_container(cfg.method, resolve=True)
        )
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(
                f"method=instancediffusion: {exc}. Valid keys: see conf/method/instancediffusion.yaml"
            ) from exc
