"""`train.max_steps=0`: evaluate the weights as built (the released base model of JDM Table 1's
"without JDM" rows) or a checkpoint (sample.ckpt), and record the run."""

from __future__ import annotations

import json

from vidgen.config import load_config
from vidgen.evaluate_only import evaluate_only  # noqa: F401  (the module train.py dispatches to)
from vidgen.runs import read_summary
from vidgen.train import train


def test_max_steps_zero_evaluates_without_training_and_writes_the_run_folder(smoke, tmp_path):
    run = train(load_config(smoke("logger=none", "train.max_steps=0", "method.eval_samples=2", exp="jdm_cogvideox",
                                  run_dir=tmp_path / "base")))  # fmt: skip
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["mode"] == "evaluate-only"
    assert summary["global_step"] == 0 and summary["method"] == "jdm"
    assert 0.0 <= summary["eval/mask_iou"] <= 1.0 and "eval/source_mask_iou" in summary
    assert (run / "config.yaml").is_file() and (run / "eval.csv").read_text().startswith("step,")
    assert not (run / "checkpoints").exists()  # nothing trained, nothing saved
    # a plain backbone (the "without JDM" row): no method metric, still a completed run
    plain = train(load_config(smoke("logger=none", "train.max_steps=0", run_dir=tmp_path / "plain")))
    assert read_summary(plain)["status"] == "completed" and not (plain / "eval.csv").exists()


def test_max_steps_zero_on_a_checkpoint_reproduces_the_end_of_training_evaluation(smoke, tmp_path):
    args = ("logger=none", "method.eval_samples=2", "train.checkpoint_every=2")
    trained = train(
        load_config(smoke(*args, "train.max_steps=2", exp="jdm_cogvideox", run_dir=tmp_path / "t"))
    )
    ckpt = trained / "checkpoints" / "last.ckpt"
    again = train(load_config(smoke(*args, "train.max_steps=0", f"sample.ckpt={ckpt}", exp="jdm_cogvideox",
                                    run_dir=tmp_path / "e")))  # fmt: skip
    want, got = read_summary(trained), read_summary(again)
    assert got["weights"] == str(ckpt)
    for key in ("eval/mask_iou", "eval/mask_f1", "eval/source_mask_iou"):
        assert got[key] == want[key], key
    json.loads((again / "summary.json").read_text())  # written whole
