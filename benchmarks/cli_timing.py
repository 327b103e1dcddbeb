"""Wall-clock of everyday CLI paths, end to end as a user runs them (process start included).

    .venv/bin/python benchmarks/cli_timing.py [--repeats 3] [--cases train,sample,backbones,demo]

Targets: `vidgen train exp=ft_cogvideox preset=smoke` under 60 s on 2 cores and `vidgen backbones`
under 15 s (issue 2); `vidgen demo` (= `make demo` after install) under 3 minutes on 2 cores,
with the detector's numbers of every demo run recorded beside its time (issue 18). Each case
records the 1-minute load average before it started (the machine may be shared).
Writes benchmarks/results/cli_timing.json (merged: cases not run keep their recorded numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "cli_timing.json"
CASES = ("train", "sample", "backbones", "demo")
DEMO_ROWS = ("trained", "untrained", "codec ceiling")


def timed(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child): on a shared machine the CPU time is what the
    command costs; single-threaded, it is about the wall time on an idle machine."""
    env = {"OMP_NUM_THREADS": "1", **os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vidgen.cli", *args], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    args = parser.parse_args()
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    if bad := [c for c in chosen if c not in CASES]:
        raise SystemExit(f"--cases {','.join(bad)}: choose from {', '.join(CASES)}")
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "train": ("train ft_cogvideox preset=smoke (8 steps, W&B offline)", lambda i: [
                "train", "exp=ft_cogvideox", "preset=smoke", f"run.dir={tmp}/run{i}"]),
            "sample": ("sample ft_cogvideox preset=smoke (4 steps)", lambda i: [
                "sample", "exp=ft_cogvideox", "preset=smoke", f"ckpt={tmp}/run0/checkpoints/last.ckpt",
                "prompt=a red circle", f"out={tmp}/s{i}.mp4"]),
            "backbones": ("backbones", lambda i: ["backbones"]),
            "demo": ("demo (vidgen demo = make demo after install; fresh folder)", lambda i: [
                "demo", "--out", f"{tmp}/demo{i}"]),
        }
        if "sample" in chosen and "train" not in chosen:
            timed(cases["train"][1](0))  # the checkpoint to sample from
        for key in chosen:
            name, make_args = cases[key]
            times, cpus, loads, scores = [], [], [], []
            for i in range(args.repeats):
                loads.append(round(os.getloadavg()[0], 2))
                wall, cpu = timed(make_args(i))
                times.append(wall)
                cpus.append(cpu)
                if key == "demo":
                    s = json.loads(Path(f"{tmp}/demo{i}/scores.json").read_text())
                    scores.append({row: {k: round(v, 4) for k, v in s[row].items()} for row in DEMO_ROWS})
            results[name] = {
                "median_s": round(statistics.median(times), 2),
                "runs_s": [round(t, 2) for t in times],
                "cpu_s": [round(t, 2) for t in cpus],
                "load_avg_1min_before": loads,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
            if scores:
                results[name]["scores"] = scores
            print(f"{name}: median {statistics.median(times):.2f} s (CPU {cpus}) over {args.repeats} runs, load {loads}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
