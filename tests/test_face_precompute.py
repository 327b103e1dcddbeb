"""`vidgen precompute` with faces: crops, ID indices, ID masks and embeddings in the shards."""

from __future__ import annotations

import json

import pytest
import torch

from fixtures_models import make_tiny_text_encoder, make_tiny_vae
from vidgen.data import rle
from vidgen.data.precompute import main
from vidgen.data.shapes import ShapesWorld, face_crop
from vidgen.data.shards import ShardDataset
from vidgen.data.video_io import read_video, resize_crop, sample_clip, to_model_pixels, write_video
from vidgen.faces import FacesConfig, FacialExtractor
from vidgen.faces.align import FaceDetection, align_face

FRAMES, H, W = 9, 32, 32
FLAGS = [
    "--frames", str(FRAMES), "--height", str(H), "--width", str(W), "--text-len", "8",
    "--text-encoder-kind", "CLIPTextModel", "--vae-kind", "AutoencoderKL", "--no-progress",
    "--faces", "tiny", "--face-crop-size", "32",
]  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    root = tmp / "pipeline"
    make_tiny_vae(tmp, "AutoencoderKL", root=root)  # fast to build
    make_tiny_text_encoder(tmp, "CLIPTextModel", root=root)
    return root


def _dataset(tmp_path, faces_of=None):
    world = ShapesWorld(frames=FRAMES, height=H, width=W, max_instances=3, seed=3, face_prob=1.0, min_faces=2)
    clip = next(
        c
        for c in map(world.render_clip, range(20))
        if len(c.face_instances) >= 2 and c.face_boxes[:, 0].any(-1).all()
    )
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a.mp4", clip.video, fps=8)
    faces = (
        faces_of(clip)
        if faces_of
        else [
            {
                "id_index": int(clip.face_ids[k]),
                "boxes": [b.tolist() if b.any() else None for b in clip.face_boxes[k]],
            }
            for k in range(len(clip.face_instances))
        ]
    )
    faces[0]["mask_rle"] = [rle.encode(m) if m.any() else None for m in clip.face_masks[0]]  # Seg; others Box
    ann = tmp_path / "ann.jsonl"
    ann.write_text(json.dumps({"video": "a.mp4", "caption": clip.caption, "faces": faces}) + "\n")
    return videos, ann, clip


def _run(models, videos, ann, out, *extra):
    return main(["--vae", str(models), "--text-encoder", str(models), "--videos", str(videos),
                 "--annotations", str(ann), "--out", str(out), *FLAGS, *extra])  # fmt: skip


def test_precomputed_faces_equal_direct_computation(tmp_path, models):
    videos, ann, clip = _dataset(tmp_path)
    out = tmp_path / "shards"
    assert _run(models, videos, ann, out) == 0
    s = ShardDataset(out)[0]
    k = len(clip.face_instances)
    assert s.faces.id_index.tolist() == clip.face_ids.tolist()
    assert torch.equal(s.faces.id_masks[0], clip.face_masks[0])  # Seg: the annotated mask
    assert s.faces.id_masks[1].sum() >= clip.face_masks[1].sum()  # Box: the filled box covers the face
    assert s.faces.embeds.shape == (k, 1280) and s.faces.local_embeds.shape == (k, 5, 17, 64)
    # direct: decode the same clip, align each face in its largest-box frame, run the extractor
    frames, _ = read_video(videos / "a.mp4")
    pixels, _, _ = resize_crop(sample_clip(frames, FRAMES, 1), H, W)
    video = to_model_pixels(pixels)
    crops = []
    for j in range(k):
        boxes = s.faces.boxes[j]
        f = int((boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(-1).argmax())
        crops.append(align_face(video[:, f], FaceDetection(boxes[f] * W, 1.0), 32))
    direct = FacialExtractor.from_config(FacesConfig(size="tiny"))(torch.stack(crops))
    assert torch.equal(s.faces.crops, torch.stack(crops))
    assert torch.equal(s.faces.embeds, direct.global_)
    assert torch.equal(s.faces.local_embeds, torch.stack(direct.local, dim=1))


def _with_crops(tmp_path, images):
    def faces_of(clip):
        out = []
        for k, image in enumerate(images):
            from PIL import Image

            arr = ((image + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(arr).save(tmp_path / f"crop{k}.png")
            out.append({"id_index": k, "boxes": [None] * FRAMES, "crop": f"../crop{k}.png"})
        return out

    return faces_of


def test_crop_images_are_detected_and_aligned(tmp_path, models):
    scene = torch.full((3, 40, 40), -0.3)
    disc = face_crop(5).abs().sum(0) > 0
    scene[:, 4:36, 4:36][:, disc] = face_crop(5)[:, disc]
    videos, ann, _ = _dataset(tmp_path, _with_crops(tmp_path, [scene, face_crop(1)]))
    out = tmp_path / "shards"
    # crop 1 is a bare face crop on grey 0; the shapes detector finds faces in both
    assert _run(models, videos, ann, out, "--face-detector", "shapes") == 0
    crops = ShardDataset(out)[0].faces.crops
    assert (crops[0][:, disc] - face_crop(5)[:, disc]).abs().max() <= 1 / 127.5


def test_face_input_errors_are_clean(tmp_path, models, capsys):
    videos, ann, clip = _dataset(tmp_path)
    out = tmp_path / "shards"
    # an ID index outside the identity table
    assert _run(models, videos, ann, out, "--num-identities", str(int(clip.face_ids.min()))) == 2
    err = capsys.readouterr().err
    assert "annotations line 1" in err and "faces[" in err and "unknown face ID index" in err
    assert "Traceback" not in err and not (out / "index.json").exists()
    # faces without face models
    args = [a for a in FLAGS if a not in ("--faces", "tiny")]
    rc = main(["--vae", str(models), "--text-encoder", str(models), "--videos", str(videos),
               "--annotations", str(ann), "--out", str(out), *args])  # fmt: skip
    assert rc == 2 and "--faces real --face-recognition DIR" in capsys.readouterr().err
    # a reference crop image with no detectable face
    blank = torch.full((3, 32, 32), -0.3)
    videos2, ann2, _ = (
        _dataset(tmp_path / "b", _with_crops(tmp_path / "b", [blank]))
        if (tmp_path / "b").mkdir() is None
        else None
    )
    assert _run(models, videos2, ann2, tmp_path / "out2", "--face-detector", "shapes") == 2
    err = capsys.readouterr().err
    assert "no face detected in reference image" in err and "crop0.png" in err
    # real models from a folder that does not hold them
    assert (
        _run(
            models,
            videos,
            ann,
            out,
            "--faces",
            "real",
            "--face-recognition",
            str(tmp_path),
            "--face-clip",
            str(tmp_path),
        )
        == 2
    )
    assert "glintr100.onnx" in capsys.readouterr().err
