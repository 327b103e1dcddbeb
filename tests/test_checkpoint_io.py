"""One checkpoint loader for resume, `vidgen sample` and `vidgen export`, with clean errors; outputs
(`export out=`, `sample out=`) that never overwrite or delete a user's files without a flag (issue 8)."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from omegaconf import OmegaConf

from vidgen.checkpoints import CheckpointError, load_checkpoint
from vidgen.config import load_config
from vidgen.export import export
from vidgen.export import main as export_main
from vidgen.sampling import main as sample_main
from vidgen.train import train

SMOKE = ["exp=ft_cogvideox", "preset=smoke", "logger=none", "train.eval_at_end=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("ckpt") / "run"
    train(load_config([*SMOKE, "train.max_steps=1", f"run.dir={run}"]))
    return run, run / "checkpoints" / "last.ckpt"


class Payload:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_files_that_are_not_checkpoints_are_refused_without_loading(tmp_path, trained):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": Payload(marker)}, tmp_path / "hostile.ckpt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "hostile.ckpt")
    assert "is not a vidgen checkpoint" in str(err.value) and "it was not loaded" in str(err.value)
    assert "weights_only" not in str(err.value) and not marker.exists()
    (tmp_path / "text.ckpt").write_text("hello")
    with pytest.raises(CheckpointError, match="text.ckpt is not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.ckpt")
    data = trained[1].read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "cut.ckpt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "plain.ckpt")
    with pytest.raises(CheckpointError, match="no 'state_dict'"):
        load_checkpoint(tmp_path / "plain.ckpt")
    (tmp_path / "folder.ckpt").mkdir()
    with pytest.raises(CheckpointError, match="not a readable DeepSpeed checkpoint"):
        load_checkpoint(tmp_path / "folder.ckpt")


def test_hostile_checkpoint_is_a_one_line_error_in_sample_and_export(tmp_path, trained, capsys):
    torch.save({"state_dict": {}, "x": Payload(tmp_path / "pwned")}, tmp_path / "hostile.ckpt")
    assert (
        export_main(
            [
                f"ckpt={tmp_path / 'hostile.ckpt'}",
                f"out={tmp_path / 'out'}",
                f"config={trained[0] / 'config.yaml'}",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "not a vidgen checkpoint" in err and "weights_only" not in err and "Traceback" not in err
    assert (
        sample_main([*SMOKE, f"ckpt={tmp_path / 'hostile.ckpt'}", "prompt=x", f"out={tmp_path / 's.mp4'}"])
        == 2
    )
    assert "not a vidgen checkpoint" in capsys.readouterr().err and not (tmp_path / "pwned").exists()


def test_checkpoint_of_another_backbone_is_refused_by_sample_export_and_resume(tmp_path, trained):
    run, ckpt = trained
    wan = load_config([*SMOKE, "backbone=wan2.1-1.3b", f"run.dir={tmp_path / 'wan'}"])
    OmegaConf.save(wan, tmp_path / "wan.yaml")
    with pytest.raises(
        CheckpointError, match=r"exp=ft_cogvideox with backbone=cogvideox-2b \(this config: wan2.1-1.3b\)"
    ):
        export(ckpt, tmp_path / "out", config=tmp_path / "wan.yaml")
    assert not (tmp_path / "out").exists()
    from vidgen.sampling import expand_shorthands, sample

    args = [*SMOKE, "backbone=wan2.1-1.3b", f"ckpt={ckpt}", "prompt=x", f"out={tmp_path / 's.mp4'}"]
    wan_sample = load_config(expand_shorthands(args))
    with pytest.raises(CheckpointError, match="backbone=cogvideox-2b"):
        sample(wan_sample)
    (tmp_path / "wan" / "checkpoints").mkdir(parents=True)
    shutil.copy(ckpt, tmp_path / "wan" / "checkpoints" / "last.ckpt")  # no config.yaml: the checkpoint says
    with pytest.raises(CheckpointError, match="backbone=cogvideox-2b"):
        train(wan)
    # a checkpoint without vidgen's record (older, or foreign): the state dict mismatch is a clean error
    bare = torch.load(ckpt, weights_only=True)
    del bare["vidgen"]
    torch.save(bare, tmp_path / "bare.ckpt")
    with pytest.raises(CheckpointError, match="does not fit the model of this config"):
        export(tmp_path / "bare.ckpt", tmp_path / "out", config=tmp_path / "wan.yaml")


# ----------------------------------------------------------------------------- export out=
def test_export_refuses_a_non_empty_out_and_never_deletes_user_files(tmp_path, trained, capsys):
    run, ckpt = trained
    out = tmp_path / "out"
    (out / "transformer").mkdir(parents=True)
    (out / "transformer" / "notes.txt").write_text("mine")
    (out / "README.md").write_text("mine too")
    assert export_main([f"ckpt={ckpt}", f"out={out}"]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (
        export_main([f"ckpt={ckpt}", f"out={out}", "--overwrite"]) == 2
    )  # notes.txt is not an export's file
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "transformer" / "notes.txt").read_text() == "mine" and not list(
        (out / "transformer").glob("*.json")
    )
    (out / "transformer" / "notes.txt").unlink()
    assert export_main([f"ckpt={ckpt}", f"out={out}", "export.overwrite=true"]) == 0
    assert (out / "README.md").read_text() == "mine too" and (out / "transformer" / "config.json").is_file()
    first = {p.name: p.stat().st_mtime_ns for p in (out / "transformer").iterdir()}
    assert export_main([f"ckpt={ckpt}", f"out={out}", "--overwrite"]) == 0  # an export replaces its own files
    assert set(first) == {p.name for p in (out / "transformer").iterdir()}
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_export_leaves_out_as_it_was(tmp_path, trained, monkeypatch):
    import vidgen.export as export_mod

    run, ckpt = trained
    out = tmp_path / "out"
    export(ckpt, out, fmt="safetensors")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = export_mod._write

    def crash(model, cfg, folder, fmt):
        real(model, cfg, folder, fmt)  # the new files are written ... then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_mod, "_write", crash)
    with pytest.raises(OSError):
        export(ckpt, out, fmt="diffusers", overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and not list(tmp_path.glob(".*"))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(Exception, match="is a file, not a folder"):
        export(ckpt, tmp_path / "afile")


# ----------------------------------------------------------------------------- sample out=
def test_sample_refuses_an_existing_file_or_a_folder_as_out(tmp_path, trained, capsys):
    run, ckpt = trained
    args = [*SMOKE, f"ckpt={ckpt}", "prompt=a red circle", "steps=2"]
    mine = tmp_path / "mine.mp4"
    mine.write_bytes(b"my video")
    assert sample_main([*args, f"out={mine}"]) == 2
    assert "exists; pass overwrite=true" in capsys.readouterr().err and mine.read_bytes() == b"my video"
    assert sample_main([*args, f"out={tmp_path}"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert sample_main([*args, f"out={mine}", "overwrite=true"]) == 0
    assert mine.stat().st_size > 100 and mine.read_bytes() != b"my video"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
