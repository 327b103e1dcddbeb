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


class _PlantedScrfd(torch.nn.Module):
    """SCRFD's 9 outputs (scores, boxes, landmarks at strides 8/16/32; 640 input) with planted faces."""

    def __init__(self, planted):
        super().__init__()
        for s in (8, 16, 32):
            n = (640 // s) ** 2 * 2
            score, dist, kps = torch.zeros(1, n, 1), torch.zeros(1, n, 4), torch.zeros(1, n, 10)
            for stride, index, p, d, k in planted:
                if stride == s:
                    score[0, index, 0], dist[0, index], kps[0, index] = p, torch.tensor(d), torch.tensor(k)
            self.register_buffer(f"s{s}", score)
            self.register_buffer(f"d{s}", dist)
            self.register_buffer(f"k{s}", kps)

    def forward(self, x):
        zero = x.sum() * 0
        return tuple(getattr(self, f"{kind}{s}") + zero for kind in "sdk" for s in (8, 16, 32))


def test_scrfd_decoding_letterbox_and_nms(tmp_path):
    pytest.importorskip("onnx")
    from vidgen.faces.detect import ScrfdDetector

    lmk = [0.0, 0.0, 1.0, 0.0, 0.5, 1.0, 0.0, 2.0, 1.0, 2.0]
    cell = (10 * 40 + 20) * 2  # stride 16, row 10, column 20 -> centre (320, 160)
    planted = [
        (16, cell + 1, 0.9, [2.0, 3.0, 4.0, 5.0], lmk),
        (16, cell, 0.8, [2.0, 3.0, 4.0, 5.0], lmk),  # the same face again: removed by NMS
        (32, (2 * 20 + 3) * 2, 0.6, [1.0, 1.0, 1.0, 1.0], lmk),  # centre (96, 64)
        (8, 5, 0.3, [1.0, 1.0, 1.0, 1.0], lmk),  # below the 0.5 threshold
    ]
    torch.onnx.export(_PlantedScrfd(planted), (torch.zeros(1, 3, 640, 640),), str(tmp_path / "scrfd_10g_bnkps.onnx"),
                      dynamo=False, input_names=["input.1"])  # fmt: skip
    found = ScrfdDetector(tmp_path).detect(torch.zeros(3, 320, 480))  # letterboxed to 640 x 426
    scale = 426 / 320
    assert [round(d.score, 4) for d in found] == [0.9, 0.6]
    assert torch.allclose(found[0].box, torch.tensor([288.0, 112.0, 384.0, 240.0]) / scale, atol=1e-4)
    assert torch.allclose(found[0].landmarks[2], torch.tensor([320 + 8.0, 160 + 16.0]) / scale, atol=1e-4)
    assert torch.allclose(found[1].box, torch.tensor([64.0, 32.0, 128.0, 96.0]) / scale, atol=1e-4)
    with pytest.raises(ConfigError, match="scrfd_10g_bnkps.onnx"):
        ScrfdDetector(tmp_path / "empty")
