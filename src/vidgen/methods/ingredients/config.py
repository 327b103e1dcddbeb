"""IngredientsConfig: ``conf/method/ingredients.yaml`` parsed once (the only place defaults live)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from omegaconf import OmegaConf

from vidgen.errors import ConfigError
from vidgen.methods.ingredients.losses import ROUTING_LOSSES
from vidgen.methods.ingredients.sampler import SAMPLERS

SECTIONS = ("projector", "injection", "router", "lora")  # the parts ``tiny`` may resize


@dataclass(frozen=True)
class IngredientsConfig:
    name: str
    stage: int  # 1: facial embedding alignment; 2: router fine-tuning (Sec. 3.3)
    init: dict  # {from: RUN_DIR | null}
    max_ids: int
    faces: dict  # vidgen.faces.FacesConfig fields
    projector: dict  # MultiScaleProjector kwargs (dims)
    injection: dict  # interval, heads, dim_head, scale, zero_init
    router: dict  # mlp, inner, sqrt_d, mode
    routing_loss: str
    routing_weight: float  # lambda of Eq. 5
    labels: str  # seg | box
    lora: dict  # rank, alpha, targets
    stage1_routing: str  # router | labels: how stage 1 routes the face tokens (module.stage1_route_labels)
    face_dropout: bool
    composite: str  # before | after (Table 2) | none (zero image latent; diagnostic, composite.py)
    eval_samples: int
    eval_steps: int  # sampler steps of evaluate()'s generations (0: no generation)
    sampler: str  # dpm | cogvideox_dpm | ddim: the inference scheduler (Sec. 4.1, sampler.py)
    tiny: dict  # per-section overrides for backbone.size=tiny

    def __post_init__(self) -> None:
        checks = [
            (self.stage in (1, 2), f"method.stage={self.stage} must be 1 or 2"),
            (self.max_ids >= 1, f"method.max_ids={self.max_ids} must be >= 1"),
            (self.injection["interval"] in (1, 2), "method.injection.interval must be 1 (every block) or 2"),
            (self.router["mode"] in ("argmax", "softmax"), "method.router.mode must be argmax or softmax"),
            (self.routing_loss in ROUTING_LOSSES, f"method.routing_loss must be one of {ROUTING_LOSSES}"),
            (self.routing_weight >= 0, "method.routing_weight (lambda) must be >= 0"),
            (self.labels in ("seg", "box"), "method.labels must be seg or box"),
            (self.stage1_routing in ("router", "labels"), "method.stage1_routing must be router or labels"),
            (self.composite in ("before", "after", "none"), "method.composite must be before, after or none"),
            (self.sampler in SAMPLERS, f"method.sampler must be one of {', '.join(SAMPLERS)}"),
            (set(self.tiny) <= set(SECTIONS), f"method.tiny may only resize {', '.join(SECTIONS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def sized(self, size: str) -> IngredientsConfig:
        """This config with ``tiny`` merged over its sections when ``size == "tiny"``."""
        if size != "tiny":
            return self
        values = {k: copy.deepcopy(getattr(self, k)) for k in self.__dataclass_fields__}
        for section, over in self.tiny.items():
            values[section] = {**values[section], **over}
        values["faces"] = {**values["faces"], "size": "tiny"}
        return IngredientsConfig(**values)

    @classmethod
    def from_cfg(cls, cfg) -> IngredientsConfig:
        values = (
            OmegaConf.to_container(cfg.method, resolve=True)
            if not isinstance(cfg.method, dict)
            else cfg.method
        )
        try:
            hp = cls(**values)
        except TypeError as exc:
            raise ConfigError(
                f"method=ingredients: {exc}. Valid keys: see conf/method/ingredients.yaml"
            ) from exc
        return hp.sized(str(cfg.backbone.size))
