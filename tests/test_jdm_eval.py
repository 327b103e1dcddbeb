"""`vidgen jdm eval` and Table 3 on real data: generated videos out, an external segmenter's masks in."""

from __future__ import annotations

import json

import numpy as np

from vidgen.config import load_config
from vidgen.methods.jdm.cli import main
from vidgen.train import train


def test_jdm_eval_scores_generated_masks_against_an_external_segmentation(smoke, tmp_path, capsys):
    videos = tmp_path / "videos"
    run = train(load_config(smoke("logger=none", "train.max_steps=1", "method.eval_samples=2",
                                  f"method.eval_videos={videos}", exp="jdm_cogvideox")))  # fmt: skip
    written = sorted(p.name for p in videos.iterdir())
    assert len(written) == 4 and {p.rsplit(".", 1)[1] for p in written} == {"mp4", "npz"}
    # an "external segmenter" that agrees with the generated masks exactly, and one that finds nothing
    agree, empty = tmp_path / "agree", tmp_path / "empty"
    agree.mkdir(), empty.mkdir()
    for p in videos.glob("*.npz"):
        masks = np.load(p)["masks"]
        np.savez(agree / p.name, masks=masks)
        np.savez(empty / p.name, masks=np.zeros_like(masks))
    assert main(["eval", str(run), "--reference-masks", str(agree)]) == 0
    record = json.loads((run / "external" / "jdm-table3.json").read_text())
    assert record["evaluator"] == "eval" and record["metrics"]["mask_iou"] == 1.0
    assert main(["eval", str(run), "--reference-masks", str(empty)]) == 0
    record = json.loads((run / "external" / "jdm-table3.json").read_text())
    generated_any = any(np.load(p)["masks"].any() for p in videos.glob("*.npz"))
    assert record["metrics"]["mask_iou"] == (0.0 if generated_any else 1.0)
    # references named for other videos: one clean error naming the field and the fix
    (other := tmp_path / "other").mkdir()
    np.savez(other / "nope.npz", masks=np.zeros((9, 8, 8), bool))
    capsys.readouterr()
    assert main(["eval", str(run), "--reference-masks", str(other)]) == 2
    err = capsys.readouterr().err
    assert "method.eval_reference_masks" in err and "video id" in err and "Traceback" not in err
    # the failed evaluation left the run folder as it was: the previous evaluation, no temp folder
    assert (run / "table3-eval" / "summary.json").is_file() and not list(run.glob(".table3-eval.tmp-*"))
    assert main(["eval", str(tmp_path / "missing")]) == 2
