"""`vidgen` = train | sample | profile | backbones | precompute.

train/sample/profile take Hydra overrides (`exp=NAME key=value ...`); user errors print one
message naming the bad value and the fix, and exit non-zero without a traceback.
"""

from __future__ import annotations

import sys

USAGE = """usage: vidgen <command> [args]

commands:
  train exp=NAME [overrides...]            train (resumes in an existing run folder)
  sample exp=NAME ckpt=PATH prompt="..."   sample a clip and write an mp4 [out=PATH] [overrides...]
  profile exp=NAME [--json] [--time]       parameters, forward FLOPs and overhead vs. the backbone
  backbones [--json]                       the backbone registry
  precompute --vae PATH --text-encoder PATH --videos DIR --annotations FILE --out DIR
  export ckpt=PATH out=DIR [--overwrite]   consolidate a (ZeRO) checkpoint into safetensors / diffusers
  sweep validate|run|agent ...             paper-table sweeps (W&B files), runnable without a server
  sync RUN_DIR... [--dry-run]              upload run folders' offline W&B segments, in order (wandb sync)
  report SWEEP [--runs DIR] [--format ...] a sweep's table beside the paper's numbers
  eval RUN_DIR [suite=NAME] [overrides...] generate a suite's videos into the run, score them (eval/<suite>/)
  tables [--json | --md [--out PATH]]     coverage map: the papers' 53 tables / figures and how far each is reproduced
  jdm cmi|filter|combos ...                JDM data tools
  demo [--out DIR] [overrides...]          train JDM on an easy shapes set, judge its samples, write index.html
  -sc install=bash                         shell completion of commands, config groups and keys (Hydra's)

train also takes Hydra's flags: --cfg job|hydra|all, --info [TOPIC], -m/--multirun (comma lists).
"""

# Commands implemented in their own packages: name -> "module:function(argv) -> int".
COMMANDS = {
    "train": "vidgen.train:main",
    "sample": "vidgen.sampling:main",
    "profile": "vidgen.profile:main",
    "precompute": "vidgen.data.precompute:main",
    "export": "vidgen.export:main",
    "sweep": "vidgen.sweeps.cli:main",
    "sync": "vidgen.wandb_runs:main",
    "report": "vidgen.report.cli:main",
    "eval": "vidgen.eval.cli:main",
    "tables": "vidgen.coverage:main",
    "jdm": "vidgen.methods.jdm.cli:main",
    "demo": "vidgen.demo.cli:main",
}


def _backbones(argv: list[str]) -> int:
    import json

    from vidgen.backbones import backbone_table

    rows = backbone_table()
    if "--json" in argv:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    columns = ("name", "family", "params", "latent_channels", "objective", "text_encoder", "vae")
    table = Table(title="vidgen backbones")
    for col in columns:
        table.add_column(col, justify="right" if col == "params" else "left")
    table.add_column("variants")  # e.g. STIV's T2I / T2V parameter counts
    for r in rows:
        variants = ", ".join(f"{v}: {n:,}" for v, n in r["params_by_variant"].items())
        table.add_row(*(f"{r[c]:,}" if c == "params" else str(r[c]) for c in columns), variants)
    Console().print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    from vidgen.errors import VidgenError

    if command in ("-sc", "--shell-completion"):  # Hydra's: eval "$(vidgen -sc install=bash)"
        from vidgen.hydra_flags import shell_completion

        return shell_completion(rest)

    try:
        if command == "backbones":
            return _backbones(rest)
        if command in COMMANDS:
            import importlib

            if command == "train":  # before torch is imported (seconds): signals from the start on
                from vidgen import preemption

                preemption.install()

            module, func = COMMANDS[command].split(":")
            return getattr(importlib.import_module(module), func)(rest)
    except VidgenError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"error: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
