"""`vidgen report SWEEP [--runs DIR | --wandb ENTITY/PROJECT|DIR] [--format md,tex,html,json] [--out DIR]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidgen.errors import ConfigError, VidgenError

FORMATS = ("md", "tex", "html", "json")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="vidgen report",
        description="A sweep's paper table: this project's value beside the paper's, per cell.",
    )
    parser.add_argument("sweep", help="sweep file, e.g. sweeps/jdm/table5_regional_signal.yaml")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--runs", help="run.root the sweep ran with (default: outputs)")
    src.add_argument("--wandb", help="ENTITY/PROJECT (W&B API) or a folder holding offline W&B runs")
    parser.add_argument("--format", default="md,tex,html,json", help="comma-separated: md, tex, html, json")
    parser.add_argument("--out", default=None, help="output folder (default: reports/<paper>)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        from vidgen.report.collect import collect
        from vidgen.report.render import write
        from vidgen.report.table import build
        from vidgen.sweeps.agent import git_commit
        from vidgen.sweeps.schema import load_sweep

        formats = [f.strip() for f in args.format.split(",") if f.strip()]
        if bad := [f for f in formats if f not in FORMATS]:
            raise ConfigError(f"--format {','.join(bad)}: choose from {', '.join(FORMATS)}")
        sweep = load_sweep(args.sweep)
        if sweep.spec is None:
            raise ConfigError(
                f"{args.sweep}: sweep {sweep.name!r} has no table link in vidgen/sweeps/tables.py"
            )
        runs = collect(sweep, runs=args.runs, wandb_src=args.wandb)
        report = build(sweep, runs)
        source = f"W&B {args.wandb}" if args.wandb else f"run folders under {args.runs or 'outputs'}"
        out = args.out or str(Path("reports") / sweep.spec.paper)
        written = write(report, out, formats, {"commit": git_commit(Path(__file__).parent), "source": source})
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    n_done = sum(1 for row in report.rows for r in row.runs if r.status == "completed")
    print(
        f"{sweep.name}: {len(runs)} run(s) found, {n_done} completed, "
        f"{sum(1 for row in report.rows if not row.runs)} row(s) without runs"
    )
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
