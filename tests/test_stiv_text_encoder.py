"""STIV's text-encoder knob: `AutoModel` loads any transformers text model from a local folder."""

from __future__ import annotations

import torch

from fixtures_models import make_tiny_text_encoder
from vidgen.data.encoders import load_text_encoder


def test_automodel_kind_loads_a_clip_folder_like_its_own_class(tmp_path):
    path = make_tiny_text_encoder(tmp_path, "CLIPTextModel", dim=24)
    auto = load_text_encoder(path, "AutoModel", max_length=12)
    clip = load_text_encoder(path, "CLIPTextModel", max_length=12)
    assert type(auto.model).__name__ == "CLIPTextModel"
    (a, mask_a), (c, mask_c) = auto.encode(["a red square", "a dog"]), clip.encode(["a red square", "a dog"])
    assert torch.equal(mask_a, mask_c) and a.shape == (2, 12, 24)
    # causal CLIP: the prompt's own tokens do not see the padding, with or without the mask
    torch.testing.assert_close(a[mask_a], c[mask_c], atol=1e-5, rtol=1e-5)
