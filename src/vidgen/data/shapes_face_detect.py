"""Find the faces of a generated shapes-world clip and match them to the reference IDs, without positions.

A generation conditioned on reference faces only (Ingredients: canvas + ID features + caption) puts
its faces anywhere, so the ground-truth face masks of the clip say nothing about it. As the paper's
metric (Sec. 4.1: "all detected faces in the generated frames are compared against reference faces
through a greedy matching"), faces are found in the generation itself:
1. each pixel takes the nearest palette colour: the clip's background, the 8 identity skin colours
   (each identity has its own, `shapes.IDENTITIES`), or the dark eye / mouth colour;
2. per frame, the 8-connected components of the pixels of one skin colour with at least
   `min_pixels` pixels are the detected face regions, each carrying that skin's identity (with
   `need_features`, only those touching a dark eye / mouth pixel: `vidgen eval`'s FaceSim);
3. per frame, greedy matching: the (region, reference ID) pair with the most votes first, each
   region and each reference at most once. A region's *right* pixels are its votes for its matched
   reference; unmatched regions have none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidgen.data.shapes import BACKGROUNDS, COLOURS, IDENTITIES, NUM_IDENTITIES

DARK = 0.02  # eyes and mouth (shapes.identity_texture)


def palette(background: str) -> Tensor:
    """[2 + NUM_IDENTITIES, 3] in [-1, 1]: background, skin of identity 0..7, dark features."""
    rgb = [BACKGROUNDS[background], *(COLOURS[i.skin] for i in IDENTITIES), (DARK, DARK, DARK)]
    return torch.tensor(rgb, dtype=torch.float32) * 2 - 1


def component_labels(mask: Tensor) -> Tensor:
    """8-connected components of mask [F, H, W] bool, per frame: [F, H, W] long, 0 outside, else an id > 0.

    Each pixel starts with its own id; 3 x 3 max-pooling inside the mask spreads the largest id
    over its component until nothing changes."""
    f, h, w = mask.shape
    ids = torch.arange(1, f * h * w + 1, dtype=torch.float64).view(f, 1, h, w) * mask[:, None]
    while True:
        grown = F.max_pool2d(ids, 3, stride=1, padding=1) * mask[:, None]
        if torch.equal(grown, ids):
            return ids[:, 0].long()
        ids = grown


def region_votes(
    video: Tensor, background: str, min_pixels: int, need_features: bool = False
) -> list[Tensor]:
    """Per frame of video [3, F, H, W]: the detected face regions' skin votes [R, NUM_IDENTITIES] (long).

    A region is an 8-connected component of the pixels of one skin colour, so each votes for one
    identity: two overlapping faces of different IDs stay two regions, and a face painted half in
    one ID's skin and half in another's is two regions that compete for the references.
    need_features: keep only regions touching a dark (eye / mouth) pixel, as `faces.detect.ShapesFaceDetector`
    does — a plain shape whose colour is a skin colour (an orange square) or a hair band whose colour is
    nearest one is then not a face; off by default (the regions as first defined)."""
    colours = palette(background)  # [P, 3]
    dist = (video.float()[None] - colours.view(-1, 3, 1, 1, 1)).pow(2).sum(1)  # [P, F, H, W]
    nearest = dist.argmin(0)  # [F, H, W]: 0 background, 1..8 skin of identity 0..7, 9 dark
    f = video.shape[1]
    near_dark = (
        F.max_pool2d((nearest == NUM_IDENTITIES + 1).float()[:, None], 3, stride=1, padding=1)[:, 0] > 0
    )
    skin = nearest[None] == torch.arange(1, NUM_IDENTITIES + 1).view(-1, 1, 1, 1)  # [I, F, H, W]
    labels = component_labels(skin.flatten(0, 1)).view(NUM_IDENTITIES, f, *nearest.shape[1:])
    out = []
    for t in range(f):
        lab = labels[:, t]  # [I, H, W]
        ident = torch.arange(NUM_IDENTITIES).view(-1, 1, 1).expand_as(lab)[lab > 0]
        regions, inverse = lab[lab > 0].unique(return_inverse=True)
        votes = torch.zeros(len(regions), NUM_IDENTITIES, dtype=torch.long)
        votes.index_put_((inverse, ident), torch.ones_like(ident), accumulate=True)
        keep = votes.sum(1) >= min_pixels
        if need_features:
            dark = near_dark[t].expand_as(lab)[lab > 0].long()
            keep &= torch.zeros(len(regions), dtype=torch.long).index_add_(0, inverse, dark) > 0
        out.append(votes[keep])
    return out


def greedy_match(votes: Tensor, references: Tensor) -> Tensor:
    """votes [R, NUM_IDENTITIES], reference IDs [K] -> right pixels per region [R] (0: unmatched)."""
    score = votes[:, references].clone()  # [R, K]
    right = torch.zeros(votes.shape[0], dtype=torch.long)
    for _ in range(min(score.shape)):
        best = int(score.argmax())
        r, k = divmod(best, score.shape[1])
        if score[r, k] <= 0:
            break
        right[r] = score[r, k]
        score[r, :] = -1
        score[:, k] = -1
    return right


def matched_identity(
    video: Tensor, background: str, references: Tensor, min_pixels: int = 16, need_features: bool = False
) -> tuple[Tensor, Tensor]:
    """(right, total) skin pixels per detected face region, all frames of video [3, F, H, W] pooled.

    right/total summed over regions is the share of generated face pixels carrying the identity of
    the reference their region was matched to; a rendered ground-truth clip scores 1 unless a face
    is cut into pieces (by a nearer face, or its own eyes / mouth) that compete for one reference, or
    falls under `min_pixels` (the world's faces have radius >= 0.1 of the frame: >= 128 pixels at
    64 x 64)."""
    rights, totals = [], []
    for votes in region_votes(video, background, min_pixels, need_features):
        rights.append(greedy_match(votes, references))
        totals.append(votes.sum(1))
    return torch.cat(rights), torch.cat(totals)
