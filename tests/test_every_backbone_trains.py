"""Every registry backbone goes through the real training loop and the sampler at tiny size."""

from __future__ import annotations

import pytest
import torch

from vidgen.backbones import get_backbone, list_backbones
from vidgen.config import load_config
from vidgen.runs import read_metrics, read_summary
from vidgen.sampling import sample
from vidgen.train import data_resolution, train

NAMES = [spec.name for spec in list_backbones()]


@pytest.mark.parametrize("name", NAMES)
def test_backbone_trains_and_samples(name, smoke, tmp_path):
    run = tmp_path / name
    cfg = load_config(smoke(f"backbone={name}", "logger=none", "train.max_steps=2", "sample.steps=2",
                            f"sample.out={tmp_path / 'clip.mp4'}", run_dir=run))
    train(cfg)
    assert read_summary(run)["global_step"] == 2
    losses = [r["train/loss"] for r in read_metrics(run)]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))

    import av

    out = sample(cfg)  # ckpt defaults to the run folder's last.ckpt
    frames, height, width = data_resolution(cfg, get_backbone(name))
    with av.open(str(out)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == frames and decoded[0].shape == (height, width, 3)
