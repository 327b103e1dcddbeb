"""Reference images -> detection -> aligned crops -> embeddings, with clean errors."""

import math

import pytest
import torch

from vidgen.data.shapes import COLOURS, face_crop
from vidgen.errors import ConfigError, DataError
from vidgen.faces import FacesConfig, FacialExtractor
from vidgen.faces.align import FACE_TEMPLATE_512, FaceDetection, align_face, similarity_transform, warp_affine
from vidgen.faces.detect import ShapesFaceDetector
from vidgen.faces.references import read_image, reference_faces


def _save(path, image):
    from PIL import Image

    arr = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).contiguous().numpy()
    Image.fromarray(arr).save(path)
    return path


def _scene(identities, size=32):
    """A 64 x 128 grey image with face crops of `identities` pasted side by side at (8 + 48 i, 16)."""
    img = torch.full((3, 64, 128), -0.3)
    for i, k in enumerate(identities):
        crop = face_crop(k, size)
        disc = crop.abs().sum(0) > 0
        region = img[:, 16 : 16 + size, 8 + 48 * i : 8 + 48 * i + size]
        region[:, disc] = crop[:, disc]
    return img


def test_shapes_detector_finds_each_face_and_alignment_recovers_the_crop():
    img = _scene([1, 4])
    found = ShapesFaceDetector().detect(img)
    assert len(found) == 2
    boxes = sorted(d.box.tolist() for d in found)
    assert boxes == [[8.0, 16.0, 40.0, 48.0], [56.0, 16.0, 88.0, 48.0]]
    crop = align_face(img, FaceDetection(torch.tensor([56.0, 16.0, 88.0, 48.0]), 1.0), 32)
    disc = face_crop(4).abs().sum(0) > 0
    assert torch.allclose(crop[:, disc], face_crop(4)[:, disc], atol=1e-5)


def test_a_plain_disc_of_a_skin_colour_is_not_a_face():
    img = torch.full((3, 32, 32), -0.3)
    img[:, 8:24, 8:24] = torch.tensor(COLOURS["orange"]).view(3, 1, 1) * 2 - 1
    assert ShapesFaceDetector().detect(img) == []


def test_similarity_transform_recovers_a_known_warp():
    src = torch.tensor(FACE_TEMPLATE_512)
    angle, scale, shift = 0.3, 0.7, torch.tensor([5.0, -3.0])
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]) * scale
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    assert torch.allclose(m[:, :2], rot, atol=1e-4) and torch.allclose(m[:, 2], shift, atol=1e-3)
    image = torch.rand(3, 9, 9) * 2 - 1
    assert torch.allclose(warp_affine(image, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), 9), image, atol=1e-6)


def test_reference_faces_from_png_files(tmp_path):
    ext = FacialExtractor.from_config(FacesConfig(size="tiny"))
    paths = [_save(tmp_path / "a.png", _scene([2])), _save(tmp_path / "b.png", _scene([6]))]
    crops, emb = reference_faces(paths, ext, ShapesFaceDetector(), 32, max_ids=3)
    assert crops.shape == (2, 3, 32, 32) and emb.global_.shape == (2, 1280)
    disc = face_crop(2).abs().sum(0) > 0
    assert (crops[0][:, disc] - face_crop(2)[:, disc]).abs().max() <= 1 / 127.5  # PNG quantisation
    assert torch.equal(emb.global_, ext(crops).global_)  # the embeddings are of those crops
    # without a detector the images are taken as aligned crops
    crop_path = _save(tmp_path / "crop.png", face_crop(3))
    crops, _ = reference_faces([crop_path], ext, None, 32, max_ids=1)
    assert (crops[0] - face_crop(3)).abs().max() <= 1 / 127.5


def test_reference_errors_name_the_file_and_the_fix(tmp_path):
    ext = FacialExtractor.from_config(FacesConfig(size="tiny"))
    det = ShapesFaceDetector()
    empty = _save(tmp_path / "empty.png", torch.full((3, 32, 32), -0.3))
    with pytest.raises(DataError, match=rf"no face detected in reference image {empty}"):
        reference_faces([empty], ext, det, 32, max_ids=2)
    with pytest.raises(DataError, match=r"missing.png does not exist"):
        reference_faces([tmp_path / "missing.png"], ext, det, 32, max_ids=2)
    with pytest.raises(ConfigError, match="3 reference images, more than the configured maximum of 2"):
        reference_faces([empty] * 3, ext, det, 32, max_ids=2)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="not a readable image"):
        read_image(tmp_path / "bad.png")
