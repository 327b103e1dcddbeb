"""vidgen.faces: the facial extractor's shapes and invariants, local-folder loading, the canvas."""

import pytest
import torch
import torch.nn.functional as F

from vidgen.data.shapes import face_crop
from vidgen.errors import ConfigError
from vidgen.faces import FaceEmbeddings, FacesConfig, FacialExtractor, compose_canvas
from vidgen.faces.eva_clip import TINY_EVA_CLIP, EvaClipVision
from vidgen.faces.recognition import OnnxArcFace, TinyRecognition


def _crops():
    return torch.stack([face_crop(0), face_crop(5), face_crop(2)])  # [3, 3, 32, 32]


def test_extractor_shapes_and_normalised_clip_part():
    ext = FacialExtractor.from_config(FacesConfig(size="tiny"))
    out = ext(_crops())
    assert isinstance(out, FaceEmbeddings) and len(out) == 3
    assert out.global_.shape == (3, 512 + 768) and ext.global_dim == 1280
    assert torch.allclose(out.global_[:, 512:].norm(dim=-1), torch.ones(3), atol=1e-5)
    assert [t.shape for t in out.local] == [(3, 17, 64)] * 5 and ext.local_shape == (17, 64)
    # each ID is encoded independently: a crop's features do not depend on the others in the batch
    one = ext(_crops()[1:2])
    assert torch.allclose(one.global_, out.global_[1:2], atol=1e-5)
    assert not torch.allclose(out.global_[0], out.global_[1])


def test_tiny_twin_is_seeded_frozen_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = FacialExtractor.from_config(FacesConfig(size="tiny", seed=7))
    assert torch.equal(torch.rand(1), before)  # building the twin drew nothing from the global RNG
    b = FacialExtractor.from_config(FacesConfig(size="tiny", seed=7))
    assert torch.equal(a(_crops()).global_, b(_crops()).global_)
    assert not any(p.requires_grad for p in a.parameters())
    a.train()
    assert not a.training


def test_hidden_states_are_the_chosen_block_outputs():
    torch.manual_seed(0)
    clip = EvaClipVision(TINY_EVA_CLIP)
    _, all_blocks = clip(_crops(), (0, 1, 2, 3, 4))
    _, picked = clip(_crops(), (1, 3))
    assert torch.equal(picked[0], all_blocks[1]) and torch.equal(picked[1], all_blocks[3])


def test_real_config_needs_folders_and_names_the_missing_one(tmp_path):
    with pytest.raises(ConfigError, match="faces.recognition"):
        FacesConfig(size="real", clip=str(tmp_path))
    with pytest.raises(ConfigError, match=r"glintr100.onnx"):
        FacialExtractor.from_config(FacesConfig(size="real", recognition=str(tmp_path), clip=str(tmp_path)))
    with pytest.raises(ConfigError, match=rf"EVA02-CLIP folder {tmp_path}: config.json is missing"):
        EvaClipVision.from_pretrained(tmp_path)


def test_eva_clip_round_trips_through_a_local_folder(tmp_path):
    torch.manual_seed(0)
    clip = EvaClipVision(TINY_EVA_CLIP)
    torch.nn.init.normal_(clip.blocks[0].attn.q_bias)  # a non-default value must survive the round trip
    clip.save_pretrained(tmp_path)
    loaded = EvaClipVision.from_pretrained(tmp_path)
    x = _crops()
    assert torch.equal(loaded(x, (2,))[0], clip(x, (2,))[0])


def test_eva_clip_loads_an_eva_clip_state_dict(tmp_path):
    """EVA-CLIP's own layout: `visual.` prefix, stored RoPE tables, text tower keys alongside."""
    from safetensors.torch import save_file

    torch.manual_seed(1)
    clip = EvaClipVision(TINY_EVA_CLIP)
    clip.save_pretrained(tmp_path)
    state = {f"visual.{k}": v for k, v in clip.state_dict().items()}
    state["visual.rope.freqs_cos"], state["visual.blocks.0.attn.rope.freqs_cos"] = (
        torch.zeros(16, 16),
        torch.zeros(16, 16),
    )
    state["text.token_embedding.weight"], state["logit_scale"] = torch.zeros(2, 2), torch.zeros(())
    save_file(state, str(tmp_path / "model.safetensors"))
    x = _crops()
    assert torch.equal(EvaClipVision.from_pretrained(tmp_path)(x)[0], clip(x)[0])


def test_eva_clip_refuses_weights_with_other_names(tmp_path):
    from safetensors.torch import save_file

    EvaClipVision(TINY_EVA_CLIP).save_pretrained(tmp_path)
    save_file({"visual.wrong.weight": torch.zeros(1)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConfigError, match="do not match"):
        EvaClipVision.from_pretrained(tmp_path)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_onnx_arcface_matches_the_exported_network(tmp_path):
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    net = TinyRecognition().eval()
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 32, 32),),
        str(tmp_path / "glintr100.onnx"),
        dynamo=False,
        input_names=["input.1"],
        dynamic_axes={"input.1": {0: "batch"}},
    )
    real = OnnxArcFace(tmp_path, input_size=32)
    x = _crops()
    with torch.no_grad():
        assert torch.allclose(real(x), net(x), atol=1e-5)


def test_canvas_matches_the_released_layout_for_two_faces():
    crops = torch.stack([torch.full((3, 4, 4), -1.0), torch.full((3, 4, 4), 0.5)])
    canvas = compose_canvas(crops)
    assert canvas.shape == (3, 480, 720)
    assert torch.allclose(canvas[:, 60:420, 0:360], torch.full((3, 360, 360), -1.0), atol=1e-6)
    assert torch.allclose(canvas[:, 60:420, 360:720], torch.full((3, 360, 360), 0.5), atol=1e-6)
    assert torch.equal(canvas[:, :60], torch.ones(3, 60, 720))  # white padding
    assert torch.equal(canvas[:, 420:], torch.ones(3, 60, 720))


def test_canvas_fits_any_number_of_faces():
    crops = torch.stack([face_crop(k) for k in range(3)])
    canvas = compose_canvas(crops)
    assert torch.equal(
        canvas[:, 120:360, 240:480], F.interpolate(crops[1:2], size=(240, 240), mode="bilinear")[0]
    )
    assert torch.equal(canvas[:, :120], torch.ones(3, 120, 720))
    with pytest.raises(ConfigError, match="at least one face"):
        compose_canvas(crops[:0])
