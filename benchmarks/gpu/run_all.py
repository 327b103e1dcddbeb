"""Everything that needs a GPU, in one command that finishes in under 8 minutes on one H200.

    bash benchmarks/gpu/run_all.sh [--out benchmarks/results] [--only NAME,...] [--budget-s 460]
    bash benchmarks/gpu/run_all.sh --dry-run        # = --device cpu --tiny (no GPU needed)

Parts (benchmarks/gpu/gpu_parts.py, each in its own process, in this order):
- matmul_peak: the GPU's dense bf16 matmul throughput (8192^3), measured in this run;
- train_step:ddp, train_step:deepspeed_zero2: CogVideoX-2B at 49x480x720, batch 1, bf16-mixed,
  gradient checkpointing, AdamW, random init from the real config, through `vidgen train`'s
  Trainer on one GPU: peak memory, step time, tokens/s, MFU against matmul_peak;
- method_overhead:<exp>: forward-time overhead of each method against its backbone
  (`gpu_parts.METHOD_OVERHEAD`, one line per method; InstanceV through benchmarks/instancev_overhead.py);
- vidgen_profile_cli: `vidgen profile exp=jdm_cogvideox --time` as a user runs it.

Writes `<out>/gpu_<gpu name>.json` and `.md` (one table per kind, the GPU's name in the title).
Without CUDA it refuses (exit 2) unless `--device cpu`: then every part runs at tiny size (no
timing of forwards, no DeepSpeed) to check the script itself, and the files go to a temporary
folder unless `--out` is given. A part that fails or runs past its time is recorded with its
error and the others still run; the exit code is 1 when any part failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_parts import METHOD_OVERHEAD, PARTS, ROOT, TRAIN, Ctx  # noqa: E402

RESULT = "RESULT "  # the child's last stdout line: RESULT {json}
BUDGET_S = 460  # the whole run on one H200 stays under 8 minutes


def _child(name: str, ctx: Ctx) -> int:
    part = next(p for p in PARTS if p.name == name)
    result = part.run(ctx)
    print(RESULT + json.dumps(result, default=str), flush=True)
    return 0


def _run_part(part, args, workdir: Path, deadline: float) -> dict:
    left = deadline - time.monotonic()
    if part.cuda_only and args.device != "cuda":
        return {"status": "skipped", "reason": "needs CUDA (DeepSpeed)"}
    timeout = min(part.timeout_s if not args.tiny else max(part.timeout_s, 300), left)
    if timeout < 10:
        return {"status": "skipped", "reason": f"time budget ({args.budget_s} s) spent"}
    cmd = [sys.executable, __file__, "--part", part.name, "--device", args.device, "--workdir", str(workdir)]
    cmd += ["--tiny"] if args.tiny else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "wall_s": time.monotonic() - start, "error": f"ran past {timeout:.0f} s"}
    wall = time.monotonic() - start
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith(RESULT)), None)
    if proc.returncode != 0 or line is None:
        return {"status": "failed", "wall_s": wall, "error": (proc.stderr or proc.stdout)[-3000:]}
    return {"status": "ok", "wall_s": wall, "result": json.loads(line[len(RESULT) :])}


def _device_info(device: str) -> dict:
    import torch

    info = {"torch": torch.__version__, "device": device}
    if device == "cuda":
        info.update(
            gpu=torch.cuda.get_device_name(0),
            cuda=torch.version.cuda,
            gpu_memory_gib=torch.cuda.get_device_properties(0).total_memory / 2**30,
        )
    else:
        info.update(gpu="none (CPU dry run)", cpus=os.cpu_count())
    return info


def _git_commit() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=ROOT
    )
    return proc.stdout.strip() or "unknown"


def derive(record: dict) -> None:
    """MFU of each training step against the matmul peak measured in the same run."""
    peak = record["parts"].get("matmul_peak", {}).get("result", {}).get("tflops")
    for name, part in record["parts"].items():
        if name.startswith("train_step:") and part.get("status") == "ok" and peak:
            part["result"]["mfu"] = part["result"]["achieved_tflops"] / peak


def _f(x, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def to_markdown(record: dict) -> str:
    """One Markdown page: the GPU, then a table per kind of measurement, then every part's status."""
    info, parts = record["machine"], record["parts"]
    peak = parts.get("matmul_peak", {}).get("result", {})
    out = [
        f"# GPU benchmarks: {info['gpu']}",
        "",
        f"{record['date']} · commit {record['commit']} · torch {info['torch']}"
        + (f" · CUDA {info['cuda']}" if info.get("cuda") else "")
        + (" · **tiny (dry run): not a measurement**" if record["tiny"] else ""),
        "",
        f"Command: `{record['command']}`. Measured matmul peak: {_f(peak.get('tflops'), '.4g')} TFLOP/s "
        f"({peak.get('dtype', '?')}, {peak.get('n', '?')}^3).",
        "",
        f"## Training step: {TRAIN['backbone']} {TRAIN['frames']}x{TRAIN['height']}x{TRAIN['width']}, batch 1, "
        "bf16-mixed, gradient checkpointing, AdamW (random init)",
        "",
        "| strategy | backbone | peak memory (GiB) | step (s) | tokens/s | TFLOP/s | MFU |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for name, part in parts.items():
        if name.startswith("train_step:"):
            r = part.get("result", {})
            out.append(
                f"| {name.split(':', 1)[1]} | {r.get('backbone', part.get('status'))} | "
                f"{_f(r.get('peak_memory_gib'), '.1f')} | {_f(r.get('step_time_s'), '.3f')} | "
                f"{_f(r.get('tokens_per_s'), ',.0f')} | {_f(r.get('achieved_tflops'), '.1f')} | "
                f"{_f(r.get('mfu'), '.1%')} |"
            )
    out += [
        "",
        "MFU: 3 x the forward FLOPs (vidgen.profile; recompute by checkpointing not counted) per step "
        "time, over the matmul peak above.",
        "",
        "## Forward-time overhead of each method against its backbone (bf16, batch 1)",
        "",
        "| method | exp | resolution | params % | FLOPs % | backbone ms | method ms | time % | paper time % |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for method, exp, paper, _ in METHOD_OVERHEAD:
        part = parts.get(f"method_overhead:{exp}", {})
        r = part.get("result", {})
        o, res = r.get("overhead", {}), r.get("resolution", {})
        where = (
            "x".join(str(res.get(k, "?")) for k in ("frames", "height", "width"))
            if res
            else part.get("status", "not run")
        )
        out.append(
            f"| {method} | {exp} | {where} | {_f(o.get('params_pct'), '+.2f')} | "
            f"{_f(o.get('fwd_flops_pct'), '+.2f')} | {_f(r.get('backbone', {}).get('fwd_ms'), '.1f')} | "
            f"{_f(r.get('method', {}).get('fwd_ms'), '.1f')} | {_f(o.get('fwd_time_pct'), '+.2f')} | "
            f"{_f(paper, '+.2f')} |"
        )
    cli = parts.get("vidgen_profile_cli", {}).get("result")
    if cli:
        out += ["", f"## `{cli['command']}`", "", "```", cli["output"].rstrip(), "```"]
    out += ["", "## Parts", "", "| part | status | wall (s) | note |", "|---|---|--:|---|"]
    for name, part in parts.items():
        note = (part.get("reason") or part.get("error") or "").strip().splitlines()
        out.append(
            f"| {name} | {part['status']} | {_f(part.get('wall_s'), '.1f')} | "
            f"{(note[-1] if note else '').replace('|', '/')[:160]} |"
        )
    return "\n".join(out) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny backbones, 2 steps (implied by --device cpu)")
    p.add_argument(
        "--dry-run", action="store_true", help="= --device cpu --tiny: check every part without a GPU"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="default: benchmarks/results (a temp folder on CPU)"
    )
    p.add_argument("--only", default="", help="comma-separated part names (see --list)")
    p.add_argument("--list", action="store_true", help="print the parts and exit")
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help=f"stop starting parts after this many seconds (default {BUDGET_S} on CUDA, 1800 on CPU)",
    )
    p.add_argument("--part", help=argparse.SUPPRESS)  # child: run one part
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.dry_run:
        args.device = "cpu"
    if args.device == "cpu":
        args.tiny = True
    if args.budget_s is None:
        args.budget_s = BUDGET_S if args.device == "cuda" else 1800.0
    if args.list:
        for part in PARTS:
            print(f"{part.name}{'  (CUDA only)' if part.cuda_only else ''}")
        return 0
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "error: benchmarks/gpu/run_all.sh measures GPU memory, step times and forward times and needs a "
            "CUDA GPU; none is visible here (torch.cuda.is_available() is False). To check every part on "
            "CPU at tiny size: bash benchmarks/gpu/run_all.sh --dry-run",
            file=sys.stderr,
        )
        return 2
    if args.part:
        return _child(args.part, Ctx(args.device, args.tiny, args.workdir))
    names = [n for n in args.only.split(",") if n]
    if unknown := sorted(set(names) - {part.name for part in PARTS}):
        print(
            f"error: --only {','.join(unknown)}: unknown part(s); valid: "
            f"{', '.join(part.name for part in PARTS)}",
            file=sys.stderr,
        )
        return 2
    out = args.out or (
        Path(tempfile.mkdtemp(prefix="vidgen-gpu-dryrun-"))
        if args.device == "cpu"
        else ROOT / "benchmarks" / "results"
    )
    info = _device_info(args.device)
    record = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "command": "bash benchmarks/gpu/run_all.sh " + " ".join(argv if argv is not None else sys.argv[1:]),
        "tiny": args.tiny,
        "machine": info,
        "parts": {},
    }
    start = time.monotonic()
    deadline = start + args.budget_s
    with tempfile.TemporaryDirectory(prefix="vidgen-gpu-bench-") as workdir:
        for part in PARTS:
            if names and part.name not in names:
                continue
            print(f"[{time.monotonic() - start:6.1f} s] {part.name} ...", flush=True)
            record["parts"][part.name] = _run_part(part, args, Path(workdir), deadline)
            status = record["parts"][part.name]
            print(
                f"[{time.monotonic() - start:6.1f} s] {part.name}: {status['status']}"
                + (
                    f" ({status.get('error', status.get('reason', ''))[-300:]})"
                    if status["status"] != "ok"
                    else ""
                ),
                flush=True,
            )
    record["total_wall_s"] = time.monotonic() - start
    derive(record)
    slug = (
        re.sub(r"[^a-z0-9]+", "_", info["gpu"].lower()).strip("_") if args.device == "cuda" else "cpu_dry_run"
    )
    out.mkdir(parents=True, exist_ok=True)
    _write(out / f"gpu_{slug}.json", json.dumps(record, indent=2, default=str) + "\n")
    _write(out / f"gpu_{slug}.md", to_markdown(record))
    print(f"wrote {out / f'gpu_{slug}.json'} and .md ({record['total_wall_s']:.0f} s)")
    return 1 if any(p["status"] in ("failed", "timeout") for p in record["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
