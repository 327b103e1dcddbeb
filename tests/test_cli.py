"""The `vidgen` command line: user errors are one clear message and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av
import pytest

from vidgen.cli import main

PUBLISHED = {
    "cogvideox-2b": 1_693_783_872,
    "cogvideox-5b": 5_570_283_072,
    "wan2.1-1.3b": 1_418_996_800,
    "modelscope-t2v": 1_411_233_860,
}


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, "-m", "vidgen.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_unknown_experiment_exits_2_without_traceback():
    proc = _run("train", "exp=no_such_exp")
    assert proc.returncode == 2
    assert "no_such_exp" in proc.stderr and "ft_cogvideox" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    "args, needles",
    [
        (["train", "exp=ft_cogvideox", "backbone=no-such"], ["no-such", "cogvideox-5b"]),
        (["train", "exp=ft_cogvideox", "data=shapes", "run.dir=RUN"], ["backbone.weights=", "backbone.init=random"]),
        (["train", "exp=ft_cogvideox", "preset=smoke", "backbone.weights=/no/such/folder", "run.dir=RUN"],
         ["/no/such/folder"]),
        (["train", "exp=ft_cogvideox", "preset=smoke", "data=shards", "data.root=/no/such/data", "run.dir=RUN"],
         ["/no/such/data", "vidgen precompute"]),
        (["sample", "exp=ft_cogvideox", "preset=smoke", "ckpt=/no/such.ckpt", "prompt=x"], ["/no/such.ckpt"]),
        (["profile", "exp=ft_cogvideox", "preset=smoke", "--time"], ["GPU"]),
        (["frobnicate"], ["unknown command"]),
    ],
)
def test_user_errors_name_the_value_and_the_fix(args, needles, capsys, tmp_path):
    args = [a.replace("RUN", str(tmp_path / "run")) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err


def test_backbones_json_lists_the_registry(capsys):
    assert main(["backbones", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert {"cogvideox-2b", "cogvideox-5b", "cogvideox-5b-i2v", "wan2.1-1.3b", "wan2.1-14b", "modelscope-t2v"} <= set(by_name)
    for name, params in PUBLISHED.items():
        assert by_name[name]["params"] == params
    for row in rows:
        assert {"name", "family", "params", "latent_channels", "objective"} <= set(row)
        assert isinstance(row["params"], int)
    assert by_name["modelscope-t2v"]["latent_channels"] == 4 and by_name["modelscope-t2v"]["objective"] == "eps"
    assert by_name["wan2.1-1.3b"]["objective"] == "flow" and by_name["cogvideox-2b"]["objective"] == "v"


def test_profile_json_plain_backbone_has_no_overhead(capsys):
    assert main(["profile", "exp=ft_cogvideox", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["backbone"]["name"] == "cogvideox-2b"
    assert result["backbone"]["params"] == PUBLISHED["cogvideox-2b"] == result["method"]["params"]
    assert result["backbone"]["fwd_flops"] == result["method"]["fwd_flops"]
    # 49x480x720 -> 13x60x90 latents, 2x2 patches: 17,550 video tokens + 226 text tokens; a
    # forward is at least 2 FLOPs per parameter per token.
    assert result["backbone"]["fwd_flops"] > 2 * 1.69e9 * 17_776
    assert result["overhead"] == {"params_pct": 0.0, "fwd_flops_pct": 0.0}


def test_demo_path_train_then_sample(tmp_path):
    """What `make demo` runs: smoke JDM training, then a joint video | mask clip from its checkpoint."""
    run = tmp_path / "demo"
    proc = _run("train", "exp=jdm_cogvideox", "preset=smoke", f"run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = run / "checkpoints" / "last.ckpt"
    out = tmp_path / "sample.mp4"
    proc = _run("sample", "exp=jdm_cogvideox", "preset=smoke", f"ckpt={ckpt}", "prompt=a red circle moving right",
                f"out={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    # the tiny CogVideoX resolution, video and generated mask side by side
    assert len(frames) == 9 and frames[0].shape == (64, 128, 3)
    right = frames[0][:, 64:].astype(int)
    assert ((right < 40) | (right > 215)).mean() > 0.95  # the mask half is binarised


@pytest.mark.parametrize("command", ["train", "sample", "profile"])
def test_help_lists_the_config_groups_and_their_choices(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: vidgen {command} exp=NAME")
    assert "jdm_cogvideox" in out and "deepspeed_zero2" in out and "wan2.1-1.3b" in out
