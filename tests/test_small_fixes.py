"""Issue 17 "Small": loader workers from the CPU count, the resumed progress bar's count, the epoch
column, transformers' weight-loading bar once per job."""

from __future__ import annotations

import os
import warnings
from types import SimpleNamespace

import pytest
from torch.utils.data import DataLoader

from vidgen.data.datamodule import loader_workers
from vidgen.runs import StepProgressBar, data_epoch


def test_loader_workers_follow_the_cpus_torch_allows(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # a 2-core allocation
    assert loader_workers(None) == 2 and loader_workers(3) == 3 and loader_workers(0) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "will create 4 worker processes ... suggested max" warning
        DataLoader(range(4), num_workers=loader_workers(None)).check_worker_number_rationality()
        with pytest.raises(UserWarning, match="suggested max number of worker"):
            DataLoader(range(4), num_workers=4).check_worker_number_rationality()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert loader_workers(None) == 4


@pytest.mark.parametrize(("global_step", "accumulate", "batch_idx", "shown"), [
    (8, 1, 0, 8),   # resumed: Lightning's epoch (and batch index) restarted after the step-7 checkpoint
    (3, 2, 0, 7),   # mid-accumulation: 3 steps of 2 micro-batches, plus one
    (4, 2, 1, 8),
])
def test_progress_bar_counts_the_runs_micro_batches(monkeypatch, global_step, accumulate, batch_idx, shown):
    from lightning.pytorch.callbacks import RichProgressBar

    seen = []
    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", lambda self, t, m, o, b, idx: seen.append(idx + 1))
    trainer = SimpleNamespace(global_step=global_step, accumulate_grad_batches=accumulate)
    StepProgressBar().on_train_batch_end(trainer, None, None, None, batch_idx)
    assert seen == [shown]


def test_data_epoch_counts_passes_over_the_data():
    dm = SimpleNamespace(train_sampler=SimpleNamespace(per_rank=6), micro_batch_size=2)

    def epoch(step, accumulate=1):
        return data_epoch(SimpleNamespace(global_step=step, accumulate_grad_batches=accumulate, datamodule=dm))

    assert [epoch(s) for s in range(1, 8)] == [0, 0, 0, 1, 1, 1, 2]  # 2 samples a step, 6 per pass
    assert epoch(3, accumulate=2) == 1 and epoch(0) == 0
    assert data_epoch(SimpleNamespace(global_step=5, accumulate_grad_batches=1, datamodule=None)) == 0


def test_transformers_weight_bar_only_on_the_main_process(tmp_path, monkeypatch, capfd):
    from fixtures_models import make_tiny_text_encoder
    from vidgen.data.encoders import load_text_encoder

    folder = make_tiny_text_encoder(tmp_path, "T5EncoderModel")
    capfd.readouterr()
    monkeypatch.setenv("RANK", "1")
    load_text_encoder(folder, "T5EncoderModel", 16)
    assert "Loading weights" not in capfd.readouterr().err
    monkeypatch.setenv("RANK", "0")
    load_text_encoder(folder, "T5EncoderModel", 16)
    assert "Loading weights" in capfd.readouterr().err
