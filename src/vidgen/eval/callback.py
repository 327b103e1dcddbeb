"""Runs `DiffusionModule.evaluate` every `train.eval_every` steps and at the end of training.

Results go to the loggers (W&B) as `eval/<name>`, to `<run.dir>/eval.csv` (one row per
evaluation: the curves of e.g. JDM Fig. 4) and into `summary.json` (the latest values).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from vidgen import csv_table
from vidgen.runs import RunRecorder, needs_closing

EVAL_FILE = "eval.csv"


def read_eval(run_dir: Path) -> list[dict[str, float]]:
    return csv_table.read_rows(Path(run_dir) / EVAL_FILE)


class EvalCallback(L.Callback):
    def __init__(self, run_dir: Path, every: int = 0, at_end: bool = True):
        self.run_dir, self.every, self.at_end = Path(run_dir), int(every), bool(at_end)
        self._last_step = -1
        self._trained = False  # the training loop ran (Lightning skips it for a run already at max_steps)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._trained = True
        if trainer.is_global_zero:  # a resumed run drops evaluations after its checkpoint
            csv_table.cut_after(self.run_dir / EVAL_FILE, trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        at_boundary = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if at_boundary and self.every > 0 and trainer.global_step % self.every == 0:
            self._evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from vidgen.preemption import STATE

        if self.at_end and STATE.outcome is None:  # not when a signal stopped training: time is short
            self._evaluate(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The final evaluation of a run killed after its last checkpoint (see runs.needs_closing).

        Lightning's teardown has moved the module to the CPU; it evaluates on the training device.
        """
        if self._trained or not self.at_end or not needs_closing(trainer, self.run_dir):
            return
        pl_module.to(trainer.strategy.root_device)
        self._evaluate(trainer, pl_module)
        pl_module.cpu()

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

    def _write(self, rows: list[dict[str, float]]) -> None:
        """Append; a new metric name widens the header by an atomic rewrite of the whole file."""
        path = self.run_dir / EVAL_FILE
        header = csv_table.read_header(path) or ["step"]
        new = sorted({k for r in rows for k in r} - set(header))
        if new or not path.is_file():
            csv_table.rewrite_rows(path, [*header, *new], read_eval(self.run_dir) + rows)
            return
        for row in rows:
            csv_table.append_row(path, row)
