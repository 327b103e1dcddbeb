"""`vidgen export`: a trained checkpoint -> diffusers folder / safetensors that reproduce the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vidgen.backbones import build_backbone
from vidgen.config import load_config
from vidgen.export import export, load_state_dict, main
from vidgen.methods.base import DiffusionModule
from vidgen.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("export") / "run"
    overrides = ["exp=ft_cogvideox", "preset=smoke", "logger=none", "train.max_steps=2", f"run.dir={run}"]
    train(load_config(overrides))
    cfg = load_config(overrides)
    module = DiffusionModule(cfg)
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state, strict=False)
    return run, module.model.eval()


def _outputs(model):
    torch.manual_seed(0)
    inputs = DiffusionModule.example_inputs(model.spec, "tiny", 9, 64, 64, model=model, batch=2)
    with torch.no_grad():
        return model(**inputs)


def test_diffusers_export_reproduces_the_trained_model(trained, tmp_path):
    run, model = trained
    assert main([f"ckpt={run / 'checkpoints' / 'last.ckpt'}", f"out={tmp_path / 'out'}"]) == 0
    assert (tmp_path / "out" / "transformer" / "config.json").is_file()
    assert list((tmp_path / "out" / "transformer").glob("*.safetensors"))
    loaded = build_backbone("cogvideox-2b", weights=tmp_path / "out")
    assert torch.equal(_outputs(loaded), _outputs(model))
    # the trained weights, not the initial ones
    fresh = build_backbone("cogvideox-2b", size="tiny")
    assert not torch.equal(_outputs(fresh), _outputs(model))


def test_safetensors_export_holds_the_denoiser(trained, tmp_path):
    run, model = trained
    path = export(run / "checkpoints" / "last.ckpt", tmp_path / "st", fmt="safetensors")
    tensors = load_file(str(path))
    expected = model.state_dict()
    assert set(tensors) == set(expected)
    assert all(torch.equal(tensors[k], expected[k]) for k in expected)
    assert (tmp_path / "st" / "config.yaml").is_file()


def test_zero_checkpoint_folder_goes_through_lightnings_converter(trained, tmp_path, monkeypatch):
    """A ZeRO checkpoint is a folder; it is consolidated by Lightning's converter (real ZeRO
    checkpoints need CUDA to write: the converter itself is exercised on a GPU)."""
    import lightning.pytorch.utilities.deepspeed as ds_utils

    run, model = trained
    zero = tmp_path / "last.ckpt"
    zero.mkdir()
    calls = []

    def fake_convert(checkpoint_dir, output_file, tag=None):
        calls.append(Path(checkpoint_dir))
        plain = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        torch.save({"state_dict": plain["state_dict"], "ds_config": {"zero_optimization": {"stage": 2}}}, output_file)

    monkeypatch.setattr(ds_utils, "convert_zero_checkpoint_to_fp32_state_dict", fake_convert)
    state = load_state_dict(zero)
    assert calls == [zero]
    assert any(k.startswith("model.") for k in state)
    export(zero, tmp_path / "out", config=run / "config.yaml")
    assert torch.equal(_outputs(build_backbone("cogvideox-2b", weights=tmp_path / "out")), _outputs(model))


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    assert main(["ckpt=/does/not/exist", f"out={tmp_path}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([f"out={tmp_path}"]) == 2
    assert "ckpt= is required" in capsys.readouterr().err
    assert main(["ckpt=x", "out=y", "format=onnx"]) == 2
    assert "format=onnx" in capsys.readouterr().err
