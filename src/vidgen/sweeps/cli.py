"""`vidgen sweep validate SWEEP...` and `vidgen sweep run SWEEP --local [...] [-- OVERRIDES...]`."""

from __future__ import annotations

import argparse
import sys

from vidgen.errors import ConfigError, VidgenError

USAGE = """usage:
  vidgen sweep validate SWEEP [SWEEP ...]
  vidgen sweep run SWEEP --local [--count N] [--seed S] [--dry-run] [--verbose] [-- OVERRIDES ...]
  vidgen sweep agent SWEEP_ID [--count N]

  validate   W&B schema, the link to the paper's table, every variant/experiment exists, every run composes
  run        expand the sweep (grid; random with --seed; bayes needs W&B) and train each row not yet
             completed here, as `wandb agent` would; OVERRIDES are appended to every run,
             e.g. -- preset=smoke run.root=outputs/sweeps
  agent      `wandb agent SWEEP_ID` with this Python first on PATH: the agent runs each sweep command
             with the literal `python`, which is then the one that has vidgen (no activation needed)
On a cluster with a W&B server: `wandb sweep SWEEP` then `wandb agent ID` (docs/sweeps.md).
"""


def _validate(paths: list[str]) -> int:
    from vidgen.sweeps.schema import load_sweep
    from vidgen.sweeps.validate import sweep_warnings, validate

    if not paths:
        raise ConfigError("vidgen sweep validate needs at least one sweep file")
    bad = 0
    for path in paths:
        try:
            sweep = load_sweep(path)
            errors = validate(sweep)
            for warning in sweep_warnings(sweep):
                print(f"warning: {warning}", file=sys.stderr)
        except VidgenError as err:
            errors = [str(err)]
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        if errors:
            bad += 1
        else:
            print(f"ok: {path}")
    return 1 if bad else 0


def _run(argv: list[str]) -> int:
    from vidgen.sweeps.agent import run_local
    from vidgen.sweeps.schema import load_sweep
    from vidgen.sweeps.validate import validate

    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(prog="vidgen sweep run", add_help=True)
    parser.add_argument("sweep")
    parser.add_argument("--local", action="store_true", help="run here, without a W&B server (required)")
    parser.add_argument("--count", type=int, default=None, help="run at most N rows (random: draw N)")
    parser.add_argument("--seed", type=int, default=0, help="seed of method: random draws")
    parser.add_argument("--dry-run", action="store_true", help="print each run's folder and command only")
    parser.add_argument("--verbose", action="store_true", help="stream each run's output")
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # overrides given without the `--` separator are accepted too
        if bad := [u for u in unknown if u.startswith("-")]:
            raise ConfigError(f"unknown option(s) {' '.join(bad)}\n{USAGE}")
        extra = [*unknown, *extra]
    if not args.local:
        raise ConfigError(
            "vidgen sweep run only runs locally: add --local. With a W&B server, create the sweep with "
            f"`wandb sweep {args.sweep}` and start agents with `wandb agent ENTITY/PROJECT/ID` "
            "(or slurm/sweep_agent.sh ID)."
        )
    sweep = load_sweep(args.sweep)
    if errors := validate(sweep, compose=False):
        raise ConfigError("the sweep file is invalid:\n  " + "\n  ".join(errors))
    return run_local(sweep, extra, count=args.count, seed=args.seed, dry_run=args.dry_run, verbose=args.verbose)


def _agent(argv: list[str]) -> int:
    from vidgen.sweeps.agent import wandb_agent

    parser = argparse.ArgumentParser(prog="vidgen sweep agent")
    parser.add_argument("sweep_id", help="ENTITY/PROJECT/ID, as printed by `wandb sweep SWEEP`")
    parser.add_argument("--count", type=int, default=None, help="stop after N runs")
    args = parser.parse_args(argv)
    return wandb_agent(args.sweep_id, args.count)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        if command == "validate":
            return _validate(rest)
        if command == "run":
            return _run(rest)
        if command == "agent":
            return _agent(rest)
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"error: unknown sweep command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
