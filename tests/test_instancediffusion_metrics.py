"""InstanceDiffusion's shapes-world metrics: COCO box / mask AP, colour binding, PiM from the exact detector."""

from __future__ import annotations

import dataclasses

import torch

from vidgen.data.shapes_datamodule import ShapesDataModule
from vidgen.methods.instancediffusion.metrics import shapes_instance_metrics


def _exact(sample, clip):
    """Instances the colour detector finds exactly: no faces, no repeated colour, none occluded."""
    colours = [sp.colour for sp in clip.specs]
    inst = sample.instances
    keep = [
        k for k, sp in enumerate(clip.specs)
        if sp.identity < 0 and colours.count(sp.colour) == 1 and bool(inst.visible[k, 0])
    ]  # fmt: skip
    sub = dataclasses.replace(
        inst,
        boxes=inst.boxes[keep],
        visible=inst.visible[keep],
        masks=inst.masks[keep],
        prompts=[inst.prompts[k] for k in keep],
    )
    return dataclasses.replace(sample, instances=sub), len(keep)


def test_ground_truth_images_score_high_and_blank_images_zero():
    dm = ShapesDataModule(
        num_clips=6, frames=1, height=64, width=64, latent_channels=4, text_dim=32, text_len=16
    )
    ds = dm.build_dataset()
    clips = [ds.clip(i) for i in range(6)]
    pairs = [_exact(ds[i], clips[i]) for i in range(6)]
    assert sum(n for _, n in pairs) >= 4
    samples = [p for p, _ in pairs]
    good = shapes_instance_metrics([c.video for c in clips], samples)
    assert all(v > 0.999 for v in good.values()), good  # the exact detector on the world's own render
    blank = shapes_instance_metrics([torch.zeros_like(c.video) for c in clips], samples)
    assert all(v == 0.0 for k, v in blank.items()), blank
