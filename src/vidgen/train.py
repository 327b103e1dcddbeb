"""`vidgen train exp=NAME [overrides]` == `python -m vidgen.train exp=NAME [overrides]`.

Builds the method, the data and a Lightning Trainer from the composed config, and trains in the
run folder, resuming from its last checkpoint when there is one.
"""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from vidgen import preemption
from vidgen.backbones import BackboneSpec, get_backbone
from vidgen.config import load_config, overrides_help, wants_help
from vidgen.data.root_check import require_data_root
from vidgen.data.sample import check_fields
from vidgen.errors import ConfigError, VidgenError
from vidgen.eval.callback import EvalCallback
from vidgen.methods import method_class
from vidgen.optim import accumulation_steps
from vidgen.run_folder import RunFolder, open_run
from vidgen.runs import AtomicCheckpointIO, RunRecorder, StepProgressBar, is_global_zero
from vidgen.schema.trainer import pass_through_kwargs
from vidgen.strategies import build_strategy, cluster_callbacks, cluster_plugins, resolve_precision


def data_resolution(cfg: DictConfig, spec: BackboneSpec) -> tuple[int, int, int]:
    """(frames, height, width) in pixels: the data config, else the backbone's for its size."""
    tiny = cfg.backbone.size == "tiny"
    default = (
        (spec.tiny_frames, spec.tiny_height, spec.tiny_width)
        if tiny
        else (spec.default_frames, spec.default_height, spec.default_width)
    )
    given = (cfg.data.get("frames"), cfg.data.get("height"), cfg.data.get("width"))
    return tuple(int(g) if g is not None else d for g, d in zip(given, default))


def build_datamodule(cfg: DictConfig, spec: BackboneSpec, micro_batch_size: int | None = None):
    d = cfg.data
    micro = int(micro_batch_size or resolve_micro_batch(cfg).train.micro_batch_size)
    size = cfg.backbone.size
    if d.name == "shapes":
        from vidgen.data.shapes_datamodule import ShapesDataModule

        frames, height, width = data_resolution(cfg, spec)
        return ShapesDataModule(
            num_clips=int(d.num_clips),
            frames=frames,
            height=height,
            width=width,
            latent_channels=spec.latent_channels,
            vae_scale=tuple(spec.vae_scale),
            text_dim=spec.text_dim_for(size),
            text_len=spec.text_len_for(size),
            max_instances=int(d.max_instances),
            face_prob=float(d.face_prob),
            min_faces=int(d.min_faces),
            small_overlap=bool(d.get("small_overlap", False)),
            background_ramp=float(d.get("background_ramp", 0.0)),
            image_condition=True,
            seed=int(d.seed),
            micro_batch_size=micro,
            num_workers=int(d.num_workers),
        )
    if d.name == "shards":
        from vidgen.data.datamodule import ShardDataModule, loader_workers

        return ShardDataModule(
            root=require_data_root(d),
            text_encoder_path=d.text_encoder,
            vae_path=d.vae,
            backbone=spec.name,
            micro_batch_size=micro,
            seed=int(d.seed),
            num_workers=loader_workers(d.num_workers),
            max_instances=int(d.max_instances),
            backbone_size=size,
            num_clips=d.get("num_clips"),
            check=bool(d.check),
        )
    raise ConfigError(f"data={d.name}: no such data source. Valid values: shapes, shards")


def _accelerator(cfg: DictConfig) -> tuple[str, Any, int]:
    t = cfg.trainer
    accelerator = t.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError("trainer.accelerator=gpu but no CUDA device is visible; use trainer.accelerator=cpu")
    devices = t.devices
    if devices == "auto":
        devices = torch.cuda.device_count() if accelerator == "gpu" else 1
    return accelerator, devices, int(t.num_nodes)


def world_size(cfg: DictConfig) -> int:
    _, devices, num_nodes = _accelerator(cfg)
    return (devices if isinstance(devices, int) else len(devices)) * num_nodes


def resolve_micro_batch(cfg: DictConfig) -> DictConfig:
    """`train.micro_batch_size: null` = the global batch split over the ranks, no accumulation."""
    if cfg.train.micro_batch_size is not None:
        return cfg
    world, batch = world_size(cfg), int(cfg.train.global_batch_size)
    if batch % world:
        raise ConfigError(
            f"train.global_batch_size={batch} does not split over {world} ranks; "
            f"set train.micro_batch_size or a global batch divisible by {world}"
        )
    return OmegaConf.merge(cfg, {"train": {"micro_batch_size": batch // world}})


def build_trainer(cfg: DictConfig, run_dir: Path, exp: str) -> L.Trainer:
    cfg = resolve_micro_batch(cfg)
    accelerator, devices, num_nodes = _accelerator(cfg)
    world = world_size(cfg)
    accumulate = accumulation_steps(int(cfg.train.global_batch_size), int(cfg.train.micro_batch_size), world)
    precision = resolve_precision(cfg, on_cpu=accelerator == "cpu")

    from lightning.pytorch.callbacks import ModelCheckpoint

    callbacks: list[L.Callback] = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="{step}",
            every_n_train_steps=int(cfg.train.checkpoint_every),
            save_top_k=-1,
            save_last=True,
            enable_version_counter=False,  # one file per step: a resumed run replaces step=N.ckpt, no -v1
            save_on_train_epoch_end=True,  # a stop (max_steps, SIGUSR1, SIGTERM) saves last.ckpt there
        ),
        # Evaluation runs before the recorder so the final summary.json holds its metrics.
        EvalCallback(run_dir, every=int(cfg.train.eval_every), at_end=bool(cfg.train.eval_at_end)),
        RunRecorder(run_dir, exp, extra_summary={"backbone": cfg.backbone.name, "method": cfg.method.name}),
        StepProgressBar(),
        *cluster_callbacks(cfg, run_dir),
    ]
    loggers: list[Any] = []
    if cfg.logger.wandb.enabled:
        from vidgen.wandb_runs import build_logger

        loggers.append(build_logger(cfg, run_dir))
    if cfg.train.ema.enabled:
        from lightning.pytorch.callbacks import EMAWeightAveraging

        callbacks.append(
            EMAWeightAveraging(decay=float(cfg.train.ema.decay), update_every_n_steps=int(cfg.train.ema.update_every))
        )
    return L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=build_strategy(cfg, world),
        precision=precision,
        max_steps=int(cfg.train.max_steps),
        accumulate_grad_batches=accumulate,
        gradient_clip_val=float(cfg.train.grad_clip) or None,
        log_every_n_steps=int(cfg.train.log_every),
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO(), *cluster_plugins(cfg)],
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,  # the datamodule's resumable sampler shards by rank itself
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        deterministic=bool(cfg.trainer.deterministic),
        **pass_through_kwargs(cfg.trainer),  # the documented `+trainer.KEY=VALUE` Trainer arguments
    )


def train(cfg: DictConfig, overrides: list[str] | None = None) -> Path:
    """Train one run; returns the run folder. `overrides` (the command line's) go to overrides.yaml."""
    cfg = resolve_micro_batch(cfg)
    if cfg.data.name == "shards":
        require_data_root(cfg.data)  # before the run folder exists: a failed start leaves no trace
    # checks run.dir, locks it for the run, cleans leftovers, picks the checkpoint, refuses a changed config
    with open_run(cfg, rank_zero=is_global_zero()) as run:
        return _train_in(cfg, run, overrides)


def _train_in(cfg: DictConfig, run: RunFolder, overrides: list[str] | None = None) -> Path:
    spec = get_backbone(cfg.backbone.name)
    run_dir = run.dir
    preemption.begin_run(run_dir)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    module_cls = method_class(cfg.method.name)
    datamodule = build_datamodule(cfg, spec)
    check_fields(module_cls.required_fields, datamodule.available_fields, source=f"data={cfg.data.name}")
    datamodule.transform = module_cls.sample_transform(cfg, datamodule)  # before the dataset is built
    module = module_cls(cfg)
    module.set_null_text(*datamodule.null_text())
    if int(cfg.train.max_steps) == 0:  # evaluate the weights as built (e.g. the released base model)
        from vidgen.evaluate_only import evaluate_only

        _write_config(run, cfg, overrides)
        return evaluate_only(cfg, module, datamodule, run_dir)
    trainer = build_trainer(cfg, run_dir, cfg.exp_name)
    _write_config(run, cfg, overrides)  # the first write into the folder: everything above is validated
    ckpt = run.checkpoint
    if ckpt is not None and trainer.is_global_zero:
        print(f"resuming from {ckpt}")
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    _finish_wandb()  # not on errors: a killed job's W&B service may be gone; wandb's atexit closes it
    return run_dir


def _write_config(run: RunFolder, cfg: DictConfig, overrides: list[str] | None) -> None:
    run.write_config(cfg)
    if overrides is not None and is_global_zero():
        from vidgen.hydra_flags import write_overrides

        write_overrides(run.dir, overrides)


def _finish_wandb() -> None:
    """Close this process's W&B run after training (Lightning leaves it open; a second training in
    the same process would otherwise log into it). vidgen.preemption.finish stops wandb's service."""
    interrupted = preemption.STATE.outcome == "interrupted"
    preemption.finish_wandb(exit_code=preemption.EXIT_INTERRUPTED if interrupted else 0, teardown=False)


def quiet_libraries() -> None:
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
    # Expected here: resuming reuses the checkpoint folder; validation is the method's evaluate().
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*val_dataloader.* but have no .validation_step.*")
    warnings.filterwarnings("ignore", message=".*overridden .transfer_batch_to_device. in .LightningModule.*")
    warnings.filterwarnings("ignore", message=".*The .srun. command is available on your system but is not used.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    # "`weights_only` was not set" on every save by every rank: checkpoints are loaded weights_only.
    logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """`vidgen train [Hydra flags] overrides...`; `-m` runs each combination in turn, stopping at the
    first that does not complete (as Hydra's basic launcher stops at the first failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        print(overrides_help("train", 'exp=NAME [overrides...]'))
        return 0
    from vidgen import hydra_flags

    try:
        args = hydra_flags.parse(argv)
        if hydra_flags.wants_flag(args):
            return hydra_flags.run_flag(args)
        jobs = hydra_flags.expand_multirun(args.overrides) if args.multirun else [args.overrides]
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    for i, job in enumerate(jobs, 1):
        if len(jobs) > 1:
            print(f"[multirun {i}/{len(jobs)}] {' '.join(job)}", flush=True)
        code = _main_one(job)
        if code != 0 or preemption.STATE.outcome is not None:  # failed, interrupted or requeued
            return code
    return 0


def _main_one(argv: list[str]) -> int:
    preemption.install()  # before anything slow: until then SIGUSR1/SIGTERM would kill the process
    quiet_libraries()
    try:
        cfg = load_config(argv)
        run_dir = train(cfg, overrides=argv)
    except VidgenError as err:
        preemption.finish_wandb(exit_code=err.exit_code)
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except preemption.Interrupted:
        run_dir = None  # SIGTERM during start-up; finish() says what to rerun
    except BaseException as err:
        if preemption.STATE.received == signal.SIGTERM:  # e.g. wandb's service died of the job's SIGTERM
            print(f"after SIGTERM: {type(err).__name__}: {err}", file=sys.stderr)
            return preemption.finish(argv, is_global_zero=is_global_zero())
        preemption.finish_wandb(exit_code=1)  # keep what was logged before the failure
        raise
    code = preemption.finish(argv, is_global_zero=is_global_zero())
    if code == 0 and preemption.STATE.outcome is None:
        print(f"run folder: {run_dir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
