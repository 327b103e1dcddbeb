"""What the shapes-world effect benchmarks (`benchmarks/*_layout*.py`, `*_routing.py`, ...) share:
train a run from overrides, export its weights as the next arm's backbone, record the result.

They compare arms trained from one exported tiny backbone with the same budget; each writes one
JSON under benchmarks/results/ (atomically) and prints it.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

# The layout benchmarks' --twin: `backbone.tiny_config` of the stand-in sd1.5 U-Net. The registry's
# tiny twin has one attention level (8 x 8 latents) after one ResNet; `sd_levels` keeps SD1.5's layout
# (four levels, attention on the top three, two layers per block: stable-diffusion-v1-5
# unet/config.json) at tiny width, so gated blocks also sit at 4 x 4 and 2 x 2 and see the deep,
# zero-padded context SD1.5's do.
SD15_TWINS = {
    "tiny": [],
    "sd_levels": [
        "+backbone.tiny_config={block_out_channels:[32,64,64,64],layers_per_block:2,"
        "down_block_types:[CrossAttnDownBlock2D,CrossAttnDownBlock2D,CrossAttnDownBlock2D,DownBlock2D],"
        "up_block_types:[UpBlock2D,CrossAttnUpBlock2D,CrossAttnUpBlock2D,CrossAttnUpBlock2D]}"
    ],
}


def stand_in_overrides(twin: str, background_ramp: float) -> list[str]:
    """The layout benchmarks' stand-in backbone (``--twin``) and world (``--background-ramp``): the
    overrides every run, evaluation and probe of one benchmark shares."""
    ramp = [f"data.background_ramp={background_ramp}"] if background_ramp else []
    return [*SD15_TWINS[twin], *ramp]


def smoke_overrides(
    run_dir: Path, steps: int, lr: float, num_clips: int, seed: int, checkpoint_every: int = 0
) -> list[str]:
    """A `preset=smoke` run of ``steps`` optimizer steps at a constant ``lr`` (20 warm-up steps),
    no evaluation during training; one checkpoint at the end, or one every ``checkpoint_every`` steps."""
    return [
        "preset=smoke",
        "logger=none",
        f"run.dir={run_dir}",
        f"train.max_steps={steps}",
        f"train.checkpoint_every={checkpoint_every or max(steps, 1)}",
        "train.eval_at_end=false",
        "schedule=constant_with_warmup",
        "schedule.warmup_steps=20",
        f"optim.lr={lr}",
        f"data.num_clips={num_clips}",
        f"seed={seed}",
    ]


def train_run(overrides: list[str]) -> Path:
    from vidgen.config import load_config
    from vidgen.train import train

    return train(load_config(overrides))


def trained(overrides: list[str], run_dir: Path, keep: bool) -> Path:
    """The run of ``overrides`` in ``run_dir``; with ``keep`` (a benchmark's ``--keep DIR``) a completed
    run already there is reused (the runs are deterministic in their seeds), but only if it trained the
    ``train.max_steps`` asked for: an arm of another length would be compared silently."""
    from vidgen.errors import ConfigError
    from vidgen.runs import read_summary

    summary = read_summary(run_dir)
    if keep and summary.get("status") == "completed":
        asked = [o.split("=", 1)[1] for o in overrides if o.startswith("train.max_steps=")]
        if asked and str(summary.get("max_steps")) != asked[-1]:
            raise ConfigError(
                f"{run_dir}: the kept run trained max_steps={summary.get('max_steps')}, this benchmark asks "
                f"for {asked[-1]}; move the folder out of --keep or ask for its steps"
            )
        return run_dir
    return train_run(overrides)


def exported(run: Path, out: Path, keep: bool) -> Path:
    """``export_weights(run, out)``, or ``out`` as it is when ``keep`` and it already holds an export."""
    return out if keep and out.is_dir() and any(out.iterdir()) else export_weights(run, out)


def heldout_data(eval_seed: int, n: int) -> list[str]:
    """Overrides for scoring on held-out layouts: the first ``n`` clips of the shapes world
    ``data.seed=eval_seed`` (same codec and word embedder, scenes never trained on); ``eval_seed < 0``:
    none, i.e. the training clips (which measures how well a caption recalls a memorised layout)."""
    return [] if eval_seed < 0 else [f"data.seed={eval_seed}", f"data.num_clips={n}"]


def export_weights(run: Path, out: Path) -> Path:
    """The run's last checkpoint as a backbone folder (`vidgen export`), for `backbone.weights=`."""
    from vidgen.export import main as export_main

    if export_main([f"ckpt={run / 'checkpoints' / 'last.ckpt'}", f"out={out}"]) != 0:
        raise SystemExit(f"export of {run} failed")
    return out


def load_for_eval(overrides: list[str], ckpt: Path | None):
    """(cfg, module in eval mode, datamodule with the method's transform) of ``overrides``, with the
    weights of ``ckpt`` when given (``weights_only``), as training would see the data."""
    import torch

    from vidgen.config import load_config
    from vidgen.methods import method_class
    from vidgen.train import build_datamodule

    cfg = load_config(overrides)
    cls = method_class(cfg.method.name)
    module = cls(cfg)
    if ckpt is not None:
        module.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    dm = build_datamodule(cfg, module.spec)
    dm.transform = cls.sample_transform(cfg, dm)
    module.set_null_text(*dm.null_text())
    return cfg, module.eval(), dm


def generate_clips(overrides: list[str], ckpt: Path | None, n: int, steps: int) -> tuple[list, list]:
    """(videos [3, F, H, W], samples) of the first ``n`` clips, each generated with its own instances
    by the method's ``generate_instances`` (seed ``cfg.seed + i``): the loop of the instance
    methods' ``evaluate``, keeping the videos for per-instance scores."""
    import torch

    from vidgen.data.sample import collate

    cfg, module, dm = load_for_eval(overrides, ckpt)
    samples = [dm.dataset[i] for i in range(min(n, len(dm.dataset)))]
    codec, videos = dm.codec(), []
    with torch.no_grad():
        for i, s in enumerate(samples):
            latents = module.generate_instances(collate([s]), steps, int(cfg.seed) + i)
            videos.append(codec.decode(latents.float())[0])
    return videos, samples


def paired_difference(a, b, draws: int = 2000, seed: int = 0) -> dict:
    """mean(a - b) of two models' per-instance scores on the same instances (e.g.
    ``eval.instance_metrics.shapes_layout_records``), with a bootstrap 95 % interval over instances."""
    import torch

    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape or a.dim() != 1:
        raise ValueError(
            f"paired_difference: scores of the same instances, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if len(a) == 0:
        return {"diff": 0.0, "ci95": [0.0, 0.0], "instances": 0}
    idx = torch.randint(len(a), (draws, len(a)), generator=torch.Generator().manual_seed(seed))
    diffs = (a - b)[idx].mean(1)
    return {
        "diff": float((a - b).mean()),
        "ci95": [float(diffs.quantile(0.025)), float(diffs.quantile(0.975))],
        "instances": len(a),
    }


def teacher_forced_mse(
    objective, batch, variants: dict, draws: int = 8, captions: dict | None = None
) -> dict:
    """Teacher-forced epsilon MSE of each ``variants[name] = (model, kwargs)`` on ``batch``'s clips:
    ``draws`` (noise, t) per clip, the same for every variant and caption, so differences between
    variants are the conditioning's alone (the grounding probes of the layout benchmarks).
    ``captions`` maps a key prefix to per-clip (text_embeds [B, L, D], text_mask [B, L]); default the
    batch's own captions under ``""``. Tensor kwargs are per clip and repeated with the draws."""
    import torch

    def per_draw(x):
        return x.repeat(draws, *[1] * (x.dim() - 1)) if torch.is_tensor(x) else x

    gen = torch.Generator().manual_seed(0)
    x0 = per_draw(batch.latents)
    noise = torch.randn(x0.shape, generator=gen)
    t = objective.sample_timesteps(x0.shape[0], gen)
    x_t = objective.add_noise(x0, noise, t)
    out = {}
    with torch.no_grad():
        for prefix, (text, mask) in (captions or {"": (batch.text_embeds, batch.text_mask)}).items():
            for name, (model, kwargs) in variants.items():
                kwargs = {k: per_draw(v) for k, v in kwargs.items()}
                pred = model(x_t, t, per_draw(text), text_mask=per_draw(mask), **kwargs)
                out[prefix + name] = float(((pred.float() - noise) ** 2).mean())
    return out


def machine() -> dict:
    import torch

    return {"machine": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}


def write_record(out: Path, record: dict) -> None:
    """``record`` as indented JSON at ``out``, written to a temp file and renamed; then printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out)
    print(json.dumps(record, indent=2))
