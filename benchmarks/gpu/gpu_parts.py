"""The parts of `benchmarks/gpu/run_all.sh`; each runs in its own process and returns a dict.

Every part takes a `Ctx`: `device` ("cuda" | "cpu") and `tiny` (tiny backbones, 2 steps: the
CPU dry run, or a quick GPU smoke). At full size on CUDA they measure what the issue asks for;
tiny on CPU they run the same code path so that a session with a GPU can trust the script.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Forward-time overhead of each method against its plain backbone, at the experiment's real
# resolution, batch 1, bf16 (`vidgen profile exp=EXP --json --time`, or the method's own script
# when it has one). A new method appends one line:
#   (method, experiment, the paper's forward-time overhead in % or None, script or None)
METHOD_OVERHEAD: list[tuple[str, str, float | None, str | None]] = [
    ("jdm", "jdm_cogvideox", 2.14, None),  # JDM Table 6 (one A100)
    ("jdm", "jdm_modelscope", 0.88, None),  # JDM Table 6
    ("instancev", "instancev_wan", 9.14, "benchmarks/instancev_overhead.py"),  # InstanceV Table 1
    ("stiv", "stiv_t2v_xl", None, None),
    # InstanceV Table 1's baseline rows (Time Cost %): on the methods' own SD1.5 and on Wan2.1-1.3B
    ("gligen", "gligen_sd15", 96.83, None),
    ("gligen", "gligen_wan", 96.83, None),
    ("instancediffusion", "instancediffusion_sd15", 115.69, None),
    ("instancediffusion", "instancediffusion_wan", 115.69, None),
]

# The training-step benchmark: CogVideoX-2B at 49 x 480 x 720, batch 1, bf16-mixed, gradient
# checkpointing, AdamW, random init from the real config (no weights on the GPU machine).
TRAIN = {"exp": "ft_cogvideox", "backbone": "cogvideox-2b", "frames": 49, "height": 480, "width": 720}


@dataclass(frozen=True)
class Ctx:
    device: str  # cuda | cpu
    tiny: bool
    workdir: Path


@dataclass(frozen=True)
class Part:
    name: str
    run: Callable[[Ctx], dict]
    timeout_s: int  # for this part's process at full size on one H200
    cuda_only: bool = False  # skipped with --device cpu (says why in the results)


def _sync(ctx: Ctx) -> None:
    if ctx.device == "cuda":
        import torch

        torch.cuda.synchronize()


# --------------------------------------------------------------------------- matmul peak
def matmul_peak(ctx: Ctx) -> dict:
    """Dense matmul throughput measured here (MFU's denominator): bf16 8192^3 on CUDA."""
    import torch

    n, iters, dtype = (256, 5, torch.float32) if ctx.device == "cpu" else (8192, 50, torch.bfloat16)
    if ctx.tiny and ctx.device == "cuda":
        n, iters = 4096, 10
    a = torch.randn(n, n, device=ctx.device, dtype=dtype)
    b = torch.randn(n, n, device=ctx.device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(ctx)
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    _sync(ctx)
    seconds = time.perf_counter() - start
    return {"tflops": 2 * n**3 * iters / seconds / 1e12, "n": n, "dtype": str(dtype).removeprefix("torch.")}


# --------------------------------------------------------------------------- training step
def _train_overrides(ctx: Ctx, strategy: str, steps: int, run_dir: Path) -> list[str]:
    common = [
        f"exp={TRAIN['exp']}", f"strategy={strategy}", "trainer.devices=1", "train.global_batch_size=1",
        "train.micro_batch_size=1", f"train.max_steps={steps}", "train.checkpoint_every=1000000",
        "train.eval_at_end=false", "logger=none", "data.num_clips=4", f"run.dir={run_dir}",
    ]  # fmt: skip
    if ctx.tiny:
        device = ["trainer.accelerator=gpu"] if ctx.device == "cuda" else []
        return [*common, "preset=smoke", *device]
    return [
        *common, f"backbone={TRAIN['backbone']}", "backbone.size=real", "backbone.init=random",
        "backbone.weights=null", "backbone.gradient_checkpointing=true", "trainer.accelerator=gpu",
        "trainer.precision=bf16-mixed", f"data.frames={TRAIN['frames']}", f"data.height={TRAIN['height']}",
        f"data.width={TRAIN['width']}",
    ]  # fmt: skip


def train_step(strategy: str) -> Callable[[Ctx], dict]:
    def run(ctx: Ctx) -> dict:
        """Optimizer steps through the same Trainer as `vidgen train`: step time, peak memory, tokens/s."""
        import lightning as L
        import torch

        from vidgen.backbones import get_backbone
        from vidgen.config import load_config
        from vidgen.methods import method_class
        from vidgen.profile import profile
        from vidgen.train import build_datamodule, build_trainer, data_resolution

        warmup, steps = (1, 2) if ctx.tiny else (2, 4)
        run_dir = ctx.workdir / f"train_{strategy}"
        cfg = load_config(_train_overrides(ctx, strategy, warmup + steps, run_dir))
        spec = get_backbone(cfg.backbone.name)
        L.seed_everything(0)
        module_cls = method_class(cfg.method.name)
        datamodule = build_datamodule(cfg, spec)
        datamodule.transform = module_cls.sample_transform(cfg, datamodule)
        module = module_cls(cfg)
        module.set_null_text(*datamodule.null_text())
        times: list[float] = []

        class Timer(L.Callback):
            def on_train_batch_start(self, *a):
                _sync(ctx)
                self.t = time.perf_counter()

            def on_train_batch_end(self, *a):
                _sync(ctx)
                times.append(time.perf_counter() - self.t)

        run_dir.mkdir(parents=True, exist_ok=True)  # `vidgen train` makes it through RunFolder
        trainer = build_trainer(cfg, run_dir, cfg.exp_name)
        trainer.callbacks.append(Timer())
        if ctx.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.fit(module, datamodule=datamodule)
        if len(times) < warmup + steps:
            raise RuntimeError(f"expected {warmup + steps} timed steps, got {len(times)}")
        step_s = sum(times[warmup:]) / len(times[warmup:])
        frames, height, width = data_resolution(cfg, spec)
        _, f, h, w = spec.latent_shape(frames, height, width)
        pt, ph, pw = spec.patch_size
        tokens = (f // pt) * (h // ph) * (w // pw)
        flops = 3 * profile(cfg)["method"]["fwd_flops"]  # forward + backward, recompute not counted
        if ctx.device == "cuda":
            peak, measure = torch.cuda.max_memory_allocated() / 2**30, "torch.cuda.max_memory_allocated"
        else:
            peak, measure = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "process max RSS"
        return {
            "strategy": strategy,
            "backbone": f"{cfg.backbone.name} ({cfg.backbone.size})",
            "resolution": [frames, height, width],
            "precision": str(cfg.trainer.precision),
            "gradient_checkpointing": bool(cfg.backbone.gradient_checkpointing),
            "timed_steps": steps,
            "peak_memory_gib": peak,
            "memory_measure": measure,
            "step_time_s": step_s,
            "tokens_per_step": tokens,
            "tokens_per_s": tokens / step_s,
            "train_flops_per_step": flops,
            "achieved_tflops": flops / step_s / 1e12,
        }

    return run


# --------------------------------------------------------------------------- method overheads
def method_overhead(exp: str) -> Callable[[Ctx], dict]:
    def run(ctx: Ctx) -> dict:
        """`vidgen profile exp=EXP --json --time` (the CLI's function); tiny: no timing on CPU."""
        from vidgen.config import load_config
        from vidgen.profile import profile

        overrides = [f"exp={exp}"] + (["backbone.size=tiny"] if ctx.tiny else [])
        return profile(load_config(overrides), time=ctx.device == "cuda")

    return run


def overhead_script(script: str) -> Callable[[Ctx], dict]:
    def run(ctx: Ctx) -> dict:
        """The method's own overhead script with `--time` on CUDA (it counts at real size on meta, so
        the CPU dry run runs it without `--time`); it writes the profile's keys plus its breakdown."""
        out = ctx.workdir / (Path(script).stem + ".json")
        cmd = [sys.executable, str(ROOT / script), "--out", str(out)] + (
            ["--time"] if ctx.device == "cuda" else []
        )
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{script} exited {proc.returncode}: {proc.stderr[-1500:]}")
        return json.loads(out.read_text())

    return run


def profile_cli(ctx: Ctx) -> dict:
    """`vidgen profile exp=jdm_cogvideox --time` exactly as a user types it (its table, as printed)."""
    cmd = [sys.executable, "-m", "vidgen.cli", "profile", "exp=jdm_cogvideox"]
    cmd += ["--time"] if ctx.device == "cuda" else []
    cmd += ["backbone.size=tiny"] if ctx.tiny else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"vidgen profile exited {proc.returncode}: {proc.stderr[-1500:]}")
    return {"command": "vidgen " + " ".join(cmd[3:]), "output": proc.stdout}


PARTS: list[Part] = [
    Part("matmul_peak", matmul_peak, 60),
    Part("train_step:ddp", train_step("ddp"), 150),
    Part("train_step:deepspeed_zero2", train_step("deepspeed_zero2"), 150, cuda_only=True),  # DeepSpeed: CUDA
    *(
        Part(f"method_overhead:{exp}", overhead_script(script) if script else method_overhead(exp), 120)
        for _, exp, _, script in METHOD_OVERHEAD
    ),
    Part("vidgen_profile_cli", profile_cli, 90),
]
