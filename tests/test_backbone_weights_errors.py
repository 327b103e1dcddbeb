"""Pretrained weights that do not fit the backbone are refused before loading, with the fix:
weights of another size than backbone.size, and a subfolder of another model (a pipeline's vae/)."""

from __future__ import annotations

import json

import pytest

from fixtures_models import tiny_vae_model
from vidgen.backbones import build_backbone, get_backbone
from vidgen.errors import ConfigError

SPEC = "cogvideox-2b"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A pipeline folder with a tiny transformer/ and a tiny vae/."""
    root = tmp_path_factory.mktemp("pipe")
    build_backbone(SPEC, size="tiny", init="random").model.save_pretrained(root / "transformer")
    tiny_vae_model("AutoencoderKLCogVideoX").save_pretrained(root / "vae")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "CogVideoXPipeline"}))
    return root


def test_weights_of_another_size_are_refused_naming_the_size_they_have(pipeline):
    spec = get_backbone(SPEC)
    real = spec.config_for("real")
    with pytest.raises(ConfigError) as err:
        build_backbone(SPEC, size="real", weights=pipeline)
    msg = str(err.value)
    assert f"is not {SPEC} at backbone.size=real" in msg
    assert f"num_layers=2 (backbone.size=real: {real['num_layers']})" in msg
    assert "Fix: set backbone.size=tiny (the size these weights have)" in msg
    assert (
        build_backbone(SPEC, size="tiny", weights=pipeline).model.config.num_layers == 2
    )  # the right size loads


@pytest.mark.parametrize("sub", ["vae", "vae/"])
def test_a_subfolder_of_another_model_is_refused(pipeline, sub):
    weights = f"{pipeline}/{sub}"
    with pytest.raises(ConfigError) as err:
        build_backbone(SPEC, size="tiny", weights=weights)
    msg = str(err.value)
    assert f"backbone.weights={weights!r} holds a AutoencoderKLCogVideoX" in msg
    assert "not the CogVideoXTransformer3DModel of backbone cogvideox-2b" in msg
    assert "its transformer/ subfolder" in msg
