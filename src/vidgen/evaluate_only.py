"""`train.max_steps=0`: evaluate the weights a config builds, without training.

Used for the "without JDM" rows of JDM Tables 1-2, which are the released base models evaluated
zero-shot: the model is built as for training (``backbone.weights``: the pretrained folder), or
loaded from ``sample.ckpt`` when given; the method's ``evaluate`` runs once, and the run folder
gets ``config.yaml``, ``eval.csv`` (step 0) and ``summary.json`` with status ``completed``.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from vidgen import csv_table
from vidgen.eval.callback import EVAL_FILE
from vidgen.runs import SUMMARY_FILE, _atomic_write_text
from vidgen.strategies import resolve_precision


def _device(cfg: DictConfig) -> torch.device:
    wants_gpu = cfg.trainer.accelerator in ("gpu", "auto") and torch.cuda.is_available()
    return torch.device("cuda" if wants_gpu else "cpu")


def _autocast(device: torch.device, precision: str):
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    if device.type != "cuda" or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


def evaluate_only(cfg: DictConfig, module, datamodule, run_dir: Path) -> Path:
    """Evaluate ``module`` on ``datamodule`` once and record the run; returns ``run_dir``."""
    started = time.time()
    if cfg.sample.ckpt:
        from vidgen.sampling import load_weights

        load_weights(module, Path(cfg.sample.ckpt), cfg)
    device = _device(cfg)
    module.to(device).eval()
    datamodule.setup("fit")
    with torch.no_grad(), _autocast(device, resolve_precision(cfg, on_cpu=device.type == "cpu")):
        metrics = {k: float(v) for k, v in module.evaluate(datamodule).items()}
    if metrics:
        csv_table.rewrite_rows(run_dir / EVAL_FILE, ["step", *sorted(metrics)], [{"step": 0, **metrics}])
    summary = {
        "exp": cfg.exp_name,
        "status": "completed",
        "mode": "evaluate-only",
        "global_step": 0,
        "max_steps": 0,
        "weights": str(cfg.sample.ckpt or cfg.backbone.weights),
        "wall_time_s": round(time.time() - started, 3),
        "backbone": cfg.backbone.name,
        "method": cfg.method.name,
        **{f"eval/{k}": v for k, v in metrics.items()},
        **({"eval/step": 0} if metrics else {}),
    }
    _atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return run_dir
