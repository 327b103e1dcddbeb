"""Cost of a vidgen training step against a plain PyTorch loop of the same model, batch and optimizer.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/step_overhead.py [--exp ft_cogvideox] [--repeats 3]

Standing target: at tiny size a vidgen step costs at most 1.5x the plain loop.

Both sides train the `preset=smoke` model of the experiment (tiny backbone) on the same
shapes-world batches with the same AdamW, LR schedule, gradient clipping and loss
(`DiffusionModule.compute_loss`). vidgen runs `vidgen.train.train(cfg)` in this process with all a
user gets (progress bar, metrics.csv, summary.json, W&B offline); the plain loop is
`zero_grad / loss / backward / clip / step / schedule`, the batches coming from the same data
loader. The per-step cost of each is (T(N2) - T(N1)) / (N2 - N1): start-up, the final checkpoint
and the final evaluation cancel. The sides alternate, each repeat measures both, and the ratio
is the median of the per-repeat ratios. Both wall time and this process's CPU time are reported:
on a loaded machine the CPU clock is the one to compare (W&B's own service process is outside
it). A second vidgen configuration without W&B attributes the overhead.

Writes benchmarks/results/step_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "step_overhead.json"


def _cfg(exp: str, steps: int, run_dir: Path, extra: list[str]):
    from vidgen.config import load_config

    return load_config(
        [
            f"exp={exp}",
            "preset=smoke",
            f"train.max_steps={steps}",
            "train.checkpoint_every=100000",
            f"run.dir={run_dir}",
            *extra,
        ]
    )


def time_vidgen(exp: str, steps: int, extra: list[str]) -> float:
    from vidgen.train import quiet_libraries, train

    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _cfg(exp, steps, Path(tmp) / "run", extra)
        clock = _Clock()
        train(cfg)
        return clock.read()


def time_plain(exp: str, steps: int) -> float:
    """The same model, data, optimizer, schedule and loss in a hand-written loop."""
    from vidgen.backbones import get_backbone
    from vidgen.methods import method_class
    from vidgen.train import build_datamodule, resolve_micro_batch

    with tempfile.TemporaryDirectory() as tmp:
        cfg = resolve_micro_batch(_cfg(exp, steps, Path(tmp) / "run", []))
        clock = _Clock()
        torch.manual_seed(int(cfg.seed))
        spec = get_backbone(cfg.backbone.name)
        module_cls = method_class(cfg.method.name)
        dm = build_datamodule(cfg, spec)
        dm.transform = module_cls.sample_transform(cfg, dm)
        module = module_cls(cfg)
        module.set_null_text(*dm.null_text())
        dm.setup("fit")
        opt_cfg = module.configure_optimizers()
        optimizer, scheduler = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
        params = [p for p in module.parameters() if p.requires_grad]
        clip = float(cfg.train.grad_clip)
        batches = iter(dm.train_dataloader())
        for step in range(steps):
            batch = next(batches)
            gen = torch.Generator().manual_seed(step)
            loss, _ = module.compute_loss(batch, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            scheduler.step()
        return clock.read()


class _Clock:
    """Wall time and this process's CPU time (all threads): the CPU clock is what to compare on a
    loaded machine, where other processes stretch wall time unevenly."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict[str, float]:
        return {"wall": time.perf_counter() - self.wall, "cpu": time.process_time() - self.cpu}


def per_step(fn, n1: int, n2: int) -> dict[str, float]:
    a, b = fn(n1), fn(n2)
    return {k: (b[k] - a[k]) / (n2 - n1) for k in a}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exp", default="ft_cogvideox")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n1", type=int, default=10)
    parser.add_argument("--n2", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")

    sides = {
        "plain": lambda n: time_plain(args.exp, n),
        "vidgen": lambda n: time_vidgen(args.exp, n, []),
        "vidgen_no_wandb": lambda n: time_vidgen(args.exp, n, ["logger.wandb.enabled=false"]),
    }
    time_plain(args.exp, 2)  # warm imports and caches once, outside the measurement
    time_vidgen(args.exp, 2, [])
    per_repeat: list[dict[str, float]] = []
    for r in range(args.repeats):
        row = {name: per_step(fn, args.n1, args.n2) for name, fn in sides.items()}
        per_repeat.append(row)
        print(
            f"repeat {r}: "
            + ", ".join(
                f"{k} {v['wall'] * 1e3:.1f} ms wall / {v['cpu'] * 1e3:.1f} ms cpu" for k, v in row.items()
            ),
            file=sys.stderr,
        )

    def ratio(name: str, clock: str) -> float:
        return round(statistics.median(row[name][clock] / row["plain"][clock] for row in per_repeat), 3)

    def median_ms(name: str, clock: str) -> float:
        return round(statistics.median(row[name][clock] for row in per_repeat) * 1e3, 2)

    result = {
        "exp": args.exp,
        "steps": [args.n1, args.n2],
        "repeats": per_repeat,
        "ms_per_step": {c: {k: median_ms(k, c) for k in sides} for c in ("wall", "cpu")},
        "ratio_vs_plain": {
            c: {k: ratio(k, c) for k in ("vidgen", "vidgen_no_wandb")} for c in ("wall", "cpu")
        },
        "target": 1.5,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": 1,
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, RESULTS)
    print(json.dumps({k: result[k] for k in ("ms_per_step", "ratio_vs_plain")}, indent=2))


if __name__ == "__main__":
    main()
