"""Which Lightning `Trainer` arguments a user may set under `trainer.*`, and what to use instead.

vidgen builds the Trainer itself (vidgen.train.build_trainer): steps, batches, clipping, logging,
checkpoints and the strategy come from vidgen's own keys, so a Trainer argument set directly would
either fight them or be silently ignored. Hence:

- PASS_THROUGH: Trainer arguments that change nothing vidgen relies on; `+trainer.KEY=VALUE` is
  handed to `L.Trainer(KEY=VALUE)` unchanged.
- OWNED: Trainer arguments vidgen sets from one of its own keys; setting them under `trainer.` is
  refused with the key to use.
- Any other Trainer argument is refused: vidgen does not support it (the message says so).
"""

from __future__ import annotations

from typing import Any

PRECISIONS = ("auto", "32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")

PASS_THROUGH = ("benchmark", "detect_anomaly", "profiler", "sync_batchnorm")

_STEPS = "train.max_steps (vidgen counts optimizer steps over an infinite sampler)"
OWNED = {
    "max_steps": "train.max_steps",
    "min_steps": _STEPS,
    "max_epochs": _STEPS,
    "min_epochs": _STEPS,
    "max_time": _STEPS,
    "fast_dev_run": "preset=smoke (a seconds-long CPU run)",
    "limit_train_batches": _STEPS,
    "overfit_batches": _STEPS,
    "limit_val_batches": "train.eval_every / train.eval_at_end (the method's evaluation)",
    "val_check_interval": "train.eval_every",
    "check_val_every_n_epoch": "train.eval_every",
    "num_sanity_val_steps": "train.eval_every",
    "log_every_n_steps": "train.log_every",
    "accumulate_grad_batches": "train.global_batch_size and train.micro_batch_size (accumulation is derived)",
    "gradient_clip_val": "train.grad_clip",
    "gradient_clip_algorithm": "train.grad_clip (clipping is by norm)",
    "strategy": "the strategy group (strategy=ddp, deepspeed_zero2, ...)",
    "logger": "the logger group (logger=wandb or logger=none)",
    "enable_checkpointing": "train.checkpoint_every",
    "default_root_dir": "run.dir",
}


def trainer_hint(key: str) -> str | None:
    """What to say about `trainer.<key>` when it is not a vidgen key (None: not a Trainer argument)."""
    if key in OWNED:
        use = OWNED[key]
        return (
            f"did you mean {use}?"
            if " " not in use
            else f"vidgen builds the Trainer from its own keys; use {use}"
        )
    import inspect

    import lightning as L

    if key in inspect.signature(L.Trainer.__init__).parameters:
        return (
            f"Lightning's Trainer takes {key}, but vidgen sets it itself or does not support it; "
            f"Trainer arguments passed through are: {', '.join(PASS_THROUGH)}"
        )
    return None


def pass_through_kwargs(trainer_cfg: Any) -> dict[str, Any]:
    """The PASS_THROUGH arguments set in `trainer_cfg`, for `L.Trainer(**kwargs)`."""
    return {k: trainer_cfg.get(k) for k in PASS_THROUGH if trainer_cfg.get(k) is not None}
