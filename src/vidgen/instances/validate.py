"""One clean error per malformed instance annotation (file / field / fix), checked per sample."""

from __future__ import annotations

from vidgen.data.sample import Instances
from vidgen.errors import DataError

_TOL = 1e-6


def check_instances(instances: Instances | None, key: str, max_instances: int, source: str) -> None:
    """Raise DataError naming the sample, the field and the fix; ``source`` names the dataset."""
    where = f"{source}, sample {key!r}"
    if instances is None:
        raise DataError(
            f"{where} has no instances; instance-grounded methods need instance prompts and boxes. Fix: use data "
            "whose annotations carry `instances` (re-run `vidgen precompute` with them)"
        )
    n = instances.boxes.shape[0]
    if len(instances.prompts) != n:
        raise DataError(
            f"{where}: instances.prompts has {len(instances.prompts)} entries but instances.boxes has "
            f"{n}. Fix: give one prompt per instance"
        )
    if n > max_instances:
        raise DataError(
            f"{where} has {n} instances, more than method.max_instances={max_instances}. Fix: raise "
            "method.max_instances (the tokenizer must have that many <extra_id_N> tokens) or drop instances"
        )
    if instances.boxes.ndim != 3 or instances.boxes.shape[-1] != 4:
        raise DataError(
            f"{where}: instances.boxes has shape {tuple(instances.boxes.shape)}, expected [N, F, 4]"
        )
    lo, hi = float(instances.boxes.min()) if n else 0.0, float(instances.boxes.max()) if n else 0.0
    if lo < -_TOL or hi > 1 + _TOL:
        raise DataError(
            f"{where}: instances.boxes has values in [{lo:.4g}, {hi:.4g}], outside [0, 1]. Fix: "
            "boxes are normalised xyxy (pixel / frame size); clip them to the frame"
        )
    if instances.prompt_embeds is not None and instances.prompt_embeds.shape[0] != n:
        raise DataError(
            f"{where}: instances.prompt_embeds has {instances.prompt_embeds.shape[0]} rows for {n} "
            "instances. Fix: re-run `vidgen precompute`"
        )
