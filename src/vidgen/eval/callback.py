"""Runs `DiffusionModule.evaluate` every `train.eval_every` steps and at the end of training.

Results go to the loggers (W&B) as `eval/<name>`, to `<run.dir>/eval.csv` (one row per
evaluation: the curves of e.g. JDM Fig. 4) and into `summary.json` (the latest values).
"""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L

from vidgen.runs import RunRecorder

EVAL_FILE = "eval.csv"


def read_eval(run_dir: Path) -> list[dict[str, float]]:
    path = Path(run_dir) / EVAL_FILE
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


class EvalCallback(L.Callback):
    def __init__(self, run_dir: Path, every: int = 0, at_end: bool = True):
        self.run_dir, self.every, self.at_end = Path(run_dir), int(every), bool(at_end)
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:  # a resumed run drops evaluations after its checkpoint
            rows = [r for r in read_eval(self.run_dir) if r.get("step", 0) <= trainer.global_step]
            self._write(rows, rewrite=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        at_boundary = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if at_boundary and self.every > 0 and trainer.global_step % self.every == 0:
            self._evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from vidgen.preemption import STATE

        if self.at_end and STATE.outcome is None:  # not when a signal stopped training: time is short
            self._evaluate(trainer, pl_module)

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = int(trainer.global_step)
        if step == self._last_step:
            return
        self._last_step = step
        metrics: dict[str, float] = {}
        if trainer.is_global_zero:
            was_training = pl_module.training
            pl_module.eval()
            metrics = {k: float(v) for k, v in pl_module.evaluate(trainer.datamodule).items()}
            pl_module.train(was_training)
        trainer.strategy.barrier("vidgen-eval")
        if not metrics:
            return
        for logger in trainer.loggers:
            logger.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=step)
        self._write([{"step": step, **metrics}])
        recorder = next((c for c in trainer.callbacks if isinstance(c, RunRecorder)), None)
        if recorder is not None:
            recorder.extra_summary.update({f"eval/{k}": v for k, v in metrics.items()}, **{"eval/step": step})

    def _write(self, rows: list[dict[str, float]], rewrite: bool = False) -> None:
        path = self.run_dir / EVAL_FILE
        if not rows and not (rewrite and path.is_file()):
            return
        fields = sorted({k for r in rows for k in r} - {"step"})
        if path.is_file() and not rewrite:
            with path.open() as f:
                header = next(csv.reader(f), ["step"])
            fields = [k for k in header if k != "step"] + [k for k in fields if k not in header]
            existing = read_eval(self.run_dir)
            rows, rewrite = existing + rows, True
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", *fields], extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: (int(v) if k == "step" else repr(v)) for k, v in row.items()})
