"""Identity metrics shared by the identity-preserving methods (Ingredients Sec. 4.1, Tables 1-3).

- FaceSim as the paper computes it (`detected_face_sim`): faces detected in each generated frame,
  aligned, embedded (ArcFace) and greedily matched to the reference crops by cosine; the minimum
  cosine over all matches (`greedy_cosine_match`);
- `face_sim`: the cosine of each generated face cropped at the clip's ground-truth boxes and its
  reference crop, averaged over the frames the face is visible — for reconstructions only (a
  generation that puts a right face elsewhere scores badly);
- `crop_face_regions`: the face boxes cut out of a video and resized (FaceSim's inputs; also
  the inputs of a face-region FID);
- on the shapes world, `shapes_identity_accuracy`: per face, the fraction of its ground-truth
  region's pixels that the exact identity classifier (`data/shapes_identity.py`) assigns to the
  right identity — for clips whose faces are where the ground truth has them (reconstructions);
- `shapes_matched_identity`: the faces found in a generation itself, greedily matched to the
  references (`data/shapes_face_detect.py`, Sec. 4.1's matching) — for generations that are
  not told where the faces are (Ingredients).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.data.shapes import ShapesClip
from vidgen.data.shapes_face_detect import matched_identity
from vidgen.data.shapes_identity import identity_fraction
from vidgen.errors import ConfigError


def crop_face_regions(video: Tensor, boxes: Tensor, size: int) -> Tensor:
    """video [3, F, H, W], boxes [K, F, 4] normalised xyxy -> crops [K, F, 3, size, size] (bilinear).

    Each box is cut on the pixel grid (floor / ceil of its corners, at least one pixel) and resized
    to size x size; an empty box (not visible) gives a zero crop.
    """
    _, f, h, w = video.shape
    out = video.new_zeros(boxes.shape[0], f, 3, size, size, dtype=torch.float32)
    scale = boxes.new_tensor([w, h, w, h])
    for k in range(boxes.shape[0]):
        for t in range(f):
            x0, y0, x1, y1 = (boxes[k, t] * scale).tolist()
            if x1 <= x0 or y1 <= y0:
                continue
            x0, y0 = int(x0), int(y0)
            x1, y1 = max(int(-(-x1 // 1)), x0 + 1), max(int(-(-y1 // 1)), y0 + 1)
            patch = video[:, t, y0:y1, x0:x1].float()[None]
            out[k, t] = F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False)[0]
    return out


@torch.no_grad()
def face_similarity(recognition: nn.Module, generated: Tensor, references: Tensor) -> Tensor:
    """Cosine of recognition embeddings, row by row: generated [K, 3, S, S], references [K, 3, S, S] -> [K]."""
    return F.cosine_similarity(recognition(generated).float(), recognition(references).float(), dim=-1)


@torch.no_grad()
def face_sim(
    recognition: nn.Module, video: Tensor, boxes: Tensor, visible: Tensor, references: Tensor, size: int = 112
) -> Tensor:
    """FaceSim per face [K]: mean over visible frames of cos(rec(crop of face k in frame f), rec(ref k)).

    video [3, F, H, W] in [-1, 1]; boxes [K, F, 4]; visible [K, F] bool; references [K, 3, S, S].
    A face visible in no frame scores NaN.
    """
    k, f = visible.shape
    crops = crop_face_regions(video, boxes, size)  # [K, F, 3, size, size]
    refs = recognition(references).float()  # [K, D]
    gen = recognition(crops.flatten(0, 1)).float().view(k, f, -1)  # [K, F, D]
    cos = F.cosine_similarity(gen, refs[:, None], dim=-1)  # [K, F]
    v = visible.float()
    return (cos * v).sum(-1) / v.sum(-1).where(v.sum(-1) > 0, torch.tensor(float("nan")))


def shapes_identity_accuracy(video: Tensor, clip: ShapesClip) -> Tensor:
    """Per face k of `clip` [K]: fraction of face k's region pixels classified as identity face_ids[k].

    video [3, F, H, W] is a generated (or rendered) clip at the world clip's resolution; the
    region of face k is its ground-truth visible mask. NaN for a face never visible.
    """
    if video.shape[1:] != clip.video.shape[1:]:
        raise ConfigError(
            f"shapes identity accuracy: video {tuple(video.shape)} does not match the world clip "
            f"{tuple(clip.video.shape)}; decode the sample at the data's frames/height/width"
        )
    out = [
        identity_fraction(video, clip.specs[i], int(clip.face_ids[k]), clip.face_masks[k])
        for k, i in enumerate(clip.face_instances)
    ]
    return torch.stack(out) if out else torch.zeros(0)


def shapes_matched_identity(
    video: Tensor, clip: ShapesClip, min_pixels: int = 16, need_features: bool = False
) -> tuple[Tensor, Tensor]:
    """(right, total) skin pixels per face region detected in `video` [3, F, H, W] (all frames), each
    region greedily matched to one of `clip`'s reference IDs per frame; no ground-truth positions used.
    need_features: only regions touching eye / mouth pixels are faces (`shapes_face_detect.region_votes`)."""
    if video.shape[0] != 3 or video.shape[-2:] != clip.video.shape[-2:]:
        raise ConfigError(
            f"shapes matched identity: video {tuple(video.shape)} does not match the world clip "
            f"{tuple(clip.video.shape)}; decode the sample at the data's height/width"
        )
    return matched_identity(video, clip.background, clip.face_ids, min_pixels, need_features)


def greedy_cosine_match(sim: Tensor) -> Tensor:
    """Greedy matching of detected faces to references (Ingredients Sec. 4.1): sim [D, K] cosines ->
    the matched pairs' cosines [min(D, K)], highest first; each face and each reference used at most once."""
    sim = sim.float().clone()
    out = []
    for _ in range(min(sim.shape)):
        best = int(sim.argmax())
        d, k = divmod(best, sim.shape[1])
        out.append(sim[d, k].clone())
        sim[d, :] = -float("inf")
        sim[:, k] = -float("inf")
    return torch.stack(out) if out else sim.new_zeros(0)


@torch.no_grad()
def detected_face_sim(
    recognition: nn.Module, detector, video: Tensor, references: Tensor, reduce: str = "min"
) -> float:
    """FaceSim of one generated clip as Ingredients Sec. 4.1 prints it, no ground-truth positions used.

    Per frame of video [3, F, H, W] in [-1, 1]: `detector.detect` finds the faces, each is aligned as
    `vidgen precompute` aligns reference crops (`faces.align.align_face` at the references' size),
    embedded by `recognition` and greedily matched to the references [K, 3, S, S] by cosine
    (`greedy_cosine_match`). The clip's score is the minimum (`reduce="min"`, as printed: "the minimum
    similarity score across all matches") or the mean (`reduce="mean"`, a knob) of all its frames'
    matches. A clip in which no face is detected scores 0 (the paper is silent: a generation that draws
    no face has not preserved any identity). No reference faces: NaN (nothing to compare; left out).
    """
    from vidgen.faces.align import align_face

    if references.shape[0] == 0:
        return float("nan")
    size = references.shape[-1]
    crops, frame_of = [], []
    for t in range(video.shape[1]):
        frame = video[:, t].float()
        for det in detector.detect(frame):
            crops.append(align_face(frame, det, size))
            frame_of.append(t)
    if not crops:
        return 0.0
    refs = recognition(references.float()).float()  # [K, D]
    gen = recognition(torch.stack(crops)).float()  # [N, D]
    cos = F.cosine_similarity(gen[:, None], refs[None], dim=-1)  # [N, K]
    frame_of = torch.tensor(frame_of)
    matches = torch.cat([greedy_cosine_match(cos[frame_of == t]) for t in frame_of.unique()])
    return float(matches.min() if reduce == "min" else matches.mean())
