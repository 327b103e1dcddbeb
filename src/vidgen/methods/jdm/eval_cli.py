"""`vidgen jdm eval RUN_DIR`: JDM Table 3 on a trained run, with an external segmenter's masks.

Evaluates ``RUN_DIR/checkpoints/last.ckpt`` with the run's own config (``train.max_steps=0``,
``sample.ckpt``) in ``RUN_DIR/table3-eval/``, and records the metrics where the sweep report
reads them: ``RUN_DIR/external/jdm-table3.json`` (keys ``eval/mask_iou`` ...; docs/sweeps.md,
"External metrics"). The real-data flow: train (or run this once with ``--videos DIR``) to write
the generated videos, segment them externally into ``DIR2/<video_id>.npz`` or ``DIR2/<video_id>/*.png``
(layout: vidgen.eval.mask_metrics), then ``vidgen jdm eval RUN_DIR --reference-masks DIR2``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from omegaconf import OmegaConf

from vidgen.errors import ConfigError

EXTERNAL_FILE = "jdm-table3.json"


def evaluate_run(
    run_dir: str | Path,
    reference_masks: str | None = None,
    prompts: str | None = None,
    steps: int | None = None,
    samples: int | None = None,
    videos: str | None = None,
) -> dict[str, float]:
    from vidgen.runs import read_summary
    from vidgen.train import train

    run_dir = Path(run_dir)
    cfg_path, ckpt = run_dir / "config.yaml", run_dir / "checkpoints" / "last.ckpt"
    if not cfg_path.is_file() or not ckpt.exists():
        raise ConfigError(
            f"{run_dir}: not a finished vidgen run folder (needs config.yaml and checkpoints/last.ckpt)"
        )
    cfg = OmegaConf.load(cfg_path)
    if cfg.method.name != "jdm":
        raise ConfigError(f"{cfg_path}: method={cfg.method.name}; `vidgen jdm eval` evaluates JDM runs")
    method = {
        "eval_reference_masks": reference_masks,
        "eval_videos": videos,
        **({"eval_prompts": prompts} if prompts else {}),
        **({"eval_steps": int(steps)} if steps else {}),
        **({"eval_samples": int(samples)} if samples else {}),
    }
    out_dir = run_dir / "table3-eval"
    work = run_dir / f".table3-eval.tmp-{os.getpid()}"  # written whole, then moved into place
    override = {"train": {"max_steps": 0}, "sample": {"ckpt": str(ckpt)}, "method": method,
                "run": {"dir": str(work)}, "logger": {"wandb": {"enabled": False}}}  # fmt: skip
    try:
        train(OmegaConf.merge(cfg, override))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # a failed evaluation leaves the run folder as it was
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(work, out_dir)
    metrics = {k.removeprefix("eval/"): v for k, v in read_summary(out_dir).items() if k.startswith("eval/")}
    metrics.pop("step", None)
    record = {"evaluator": "eval", "protocol": "JDM Table 3", "reference_masks": reference_masks,
              "prompts": prompts, "metrics": metrics}  # fmt: skip
    external = run_dir / "external"
    external.mkdir(exist_ok=True)
    tmp = external / f".{EXTERNAL_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, external / EXTERNAL_FILE)
    return metrics
