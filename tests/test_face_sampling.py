"""`vidgen sample ids=[a.png,...]`: reference faces for identity-preserving methods."""

import pytest
import torch
from omegaconf import OmegaConf

from vidgen.config import load_config
from vidgen.data.shapes import face_crop
from vidgen.errors import ConfigError, DataError
from vidgen.faces import FacesConfig, FacialExtractor
from vidgen.faces.sampling import ReferenceFaces, reference_inputs
from vidgen.sampling import _generate_faces, expand_shorthands


def _png(path, image):
    from PIL import Image

    arr = ((image + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(arr).save(path)
    return str(path)


def _cfg(ids, max_ids=2, data="shapes"):
    return OmegaConf.create(
        {
            "method": {
                "name": "ingredients",
                "max_ids": max_ids,
                "faces": {"size": "real", "recognition": None, "clip": None},
            },
            "backbone": {"size": "tiny"},
            "data": {"name": data},
            "sample": {"ids": ids, "steps": 2, "guidance": "cfg", "guidance_scale": 6.0, "seed": 0},
        }
    )


def test_ids_shorthand_composes_and_is_typed():
    argv = expand_shorthands(["preset=smoke", "ids=[a.png,b.png]"])
    assert argv[-1] == "sample.ids=[a.png,b.png]"
    assert list(load_config(argv).sample.ids) == ["a.png", "b.png"]
    assert load_config(["preset=smoke"]).sample.ids is None


def test_reference_inputs_are_the_aligned_crops_and_their_embeddings(tmp_path):
    paths = [_png(tmp_path / "a.png", face_crop(3)), _png(tmp_path / "b.png", face_crop(6))]
    refs = reference_inputs(_cfg(paths))  # backbone.size=tiny -> the tiny twin, whatever method.faces.size
    assert refs.crops.shape == (2, 3, 32, 32) and refs.embeddings.global_.shape == (2, 1280)
    assert (refs.crops[1] - face_crop(6)).abs().max() <= 1 / 127.5
    direct = FacialExtractor.from_config(FacesConfig(size="tiny"))(refs.crops)
    assert torch.equal(refs.embeddings.global_, direct.global_)


def test_reference_input_errors(tmp_path):
    good = _png(tmp_path / "a.png", face_crop(1))
    blank = _png(tmp_path / "blank.png", torch.zeros(3, 32, 32))
    with pytest.raises(ConfigError, match="3 reference images, more than the configured maximum of 2"):
        reference_inputs(_cfg([good] * 3))
    with pytest.raises(DataError, match="nope.png does not exist"):
        reference_inputs(_cfg([good, str(tmp_path / "nope.png")]))
    with pytest.raises(DataError, match="no face detected in reference image .*blank.png"):
        reference_inputs(_cfg([blank]))


class _Plain:
    pass


class _FaceMethod:
    def latent_shape(self, f, h, w):
        return (4, f, h, w)

    def generate_faces(self, refs, *text, **kw):
        self.got = (refs, kw)
        return torch.zeros(1)


def test_sample_hands_the_references_to_the_method(tmp_path):
    cfg = _cfg([_png(tmp_path / "a.png", face_crop(2))])
    cfg.method.name = "finetune"
    with pytest.raises(ConfigError, match="method=finetune takes no reference faces"):
        _generate_faces(cfg, _Plain(), None, None, None, None, (1, 8, 8))
    method = _FaceMethod()
    _generate_faces(cfg, method, None, None, None, None, (1, 8, 8))
    refs, kw = method.got
    assert isinstance(refs, ReferenceFaces) and refs.crops.shape[0] == 1
    assert kw["latent_shape"] == (4, 1, 8, 8) and kw["steps"] == 2
