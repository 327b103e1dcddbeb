"""Wall-clock of everyday CLI paths, end to end as a user runs them (process start included).

    .venv/bin/python benchmarks/cli_timing.py [--repeats 3]

Targets (issue 2): `vidgen train exp=ft_cogvideox preset=smoke` under 60 s on 2 cores and
`vidgen backbones` under 15 s. Writes benchmarks/results/cli_timing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "cli_timing.json"


def timed(args: list[str]) -> float:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vidgen.cli", *args], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    results = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                           "python": platform.python_version()}}
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "train ft_cogvideox preset=smoke (8 steps, W&B offline)": lambda i: [
                "train", "exp=ft_cogvideox", "preset=smoke", f"run.dir={tmp}/run{i}"],
            "sample ft_cogvideox preset=smoke (4 steps)": lambda i: [
                "sample", "exp=ft_cogvideox", "preset=smoke", f"ckpt={tmp}/run0/checkpoints/last.ckpt",
                "prompt=a red circle", f"out={tmp}/s{i}.mp4"],
            "backbones": lambda i: ["backbones"],
        }
        for name, make_args in cases.items():
            times = [timed(make_args(i)) for i in range(repeats)]
            results[name] = {"median_s": round(statistics.median(times), 2), "runs_s": [round(t, 2) for t in times]}
            print(f"{name}: median {statistics.median(times):.2f} s over {repeats} runs")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
