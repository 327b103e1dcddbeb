"""Fréchet distances between feature Gaussians: FID (Inception-v3 pool features) and FVD (I3D logits).

FID (Heusel et al. 2017) and FVD (Unterthiner et al. 2018) are the same formula,
``d² = |μ_r - μ_g|² + Tr(Σ_r + Σ_g - 2 (Σ_r Σ_g)^½)``, on different features:

- FID: torchmetrics ``FrechetInceptionDistance`` on the features of a local TorchScript Inception
  (the StyleGAN2-ADA export ``inception-2015-12-05.pt``, called ``net(uint8 [B,3,H,W], return_features=True)``
  -> [B, 2048]). ``crop_regions`` maps a batch of frames to the regions to score (face FID: ``box_regions``).
- FVD: the StyleGAN-V TorchScript I3D ``i3d_torchscript.pt``, called ``net(x, rescale=False, resize=True,
  return_features=True)`` on x [B, 3, T, H, W] in [-1, 1] -> [B, 400]; the distance is ``frechet_distance``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from vidgen.eval.weights import load_torchscript

INCEPTION_FILE = "the TorchScript Inception-v3 'inception-2015-12-05.pt' (StyleGAN2-ADA metrics export)"
I3D_FILE = "the TorchScript I3D 'i3d_torchscript.pt' (StyleGAN-V FVD export, 400 Kinetics logits)"


def gaussian(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean [D] and unbiased covariance [D, D] of features [N, D], in float64."""
    f = features.double()
    return f.mean(0), torch.cov(f.T)


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """``|μ1-μ2|² + Tr Σ1 + Tr Σ2 - 2 Tr (Σ1 Σ2)^½``; the last trace is the sum of the square roots of
    the eigenvalues of Σ1 Σ2 (real and >= 0 for PSD Σ; as torchmetrics computes it)."""
    diff = (mu1 - mu2).double()
    eig = torch.linalg.eigvals(sigma1.double() @ sigma2.double())
    tr_sqrt = eig.sqrt().real.sum()
    return float(diff.dot(diff) + sigma1.double().trace() + sigma2.double().trace() - 2 * tr_sqrt)


def features_distance(real: Tensor, fake: Tensor) -> float:
    """Fréchet distance of two feature sets [N, D], [M, D] (N, M >= 2)."""
    return frechet_distance(*gaussian(real), *gaussian(fake))


class _ImageFeatures(nn.Module):
    """torchmetrics' ``feature=`` module: uint8 frames [B, 3, H, W] -> the TorchScript net's features."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net  # no num_features attribute: torchmetrics reads the width off a dummy 299x299 image

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images, return_features=True)


def load_fid(path: str | None, key: str = "eval.fid.inception"):
    """torchmetrics FID over a local TorchScript Inception."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    net = load_torchscript("FID", key, path, INCEPTION_FILE)
    return FrechetInceptionDistance(feature=_ImageFeatures(net), reset_real_features=False)


def to_uint8_frames(video: Tensor) -> Tensor:
    """[3, F, H, W] in [-1, 1] -> [F, 3, H, W] uint8 (the frames FID scores)."""
    return ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).transpose(0, 1)


def update_fid(
    metric, video: Tensor, real: bool, crop_regions: Callable[[Tensor], Tensor] | None = None
) -> None:
    """Add a video's frames to the real or generated side; ``crop_regions(frames uint8 [F,3,H,W]) -> [K,3,h,w]``."""
    frames = to_uint8_frames(video)
    if crop_regions is not None:
        frames = crop_regions(frames)
    if len(frames):
        metric.update(frames, real=real)


def box_regions(boxes: Tensor, size: int = 299) -> Callable[[Tensor], Tensor]:
    """A ``crop_regions`` for region FID (Ingredients' face FID): ``boxes`` [F, K, 4] normalised xyxy per
    frame (a NaN row: no region in that frame) -> every region of every frame resized to size x size."""
    import torch.nn.functional as F

    def crop(frames: Tensor) -> Tensor:  # uint8 [F, 3, H, W] -> uint8 [N, 3, size, size]
        h, w = frames.shape[-2:]
        out = []
        for frame, frame_boxes in zip(frames, boxes):
            for x0, y0, x1, y1 in frame_boxes[~frame_boxes.isnan().any(-1)].tolist():
                c0, r0 = int(x0 * w), int(y0 * h)
                c1, r1 = max(c0 + 1, round(x1 * w)), max(r0 + 1, round(y1 * h))
                region = frame[None, :, r0:r1, c0:c1].float()
                out.append(F.interpolate(region, size=(size, size), mode="bilinear", align_corners=False))
        if not out:
            return frames.new_zeros(0, 3, size, size)
        return torch.cat(out).round().clamp(0, 255).to(torch.uint8)

    return crop


class FVD:
    """Accumulates I3D features of real and generated videos; ``compute()`` is the Fréchet distance."""

    def __init__(self, path: str | None, key: str = "eval.fvd.i3d"):
        self.net = load_torchscript("FVD", key, path, I3D_FILE)
        self.real: list[Tensor] = []
        self.fake: list[Tensor] = []

    @torch.no_grad()
    def update(self, videos: Tensor, real: bool) -> None:
        """videos [B, 3, T, H, W] in [-1, 1]."""
        feats = self.net(videos.float(), rescale=False, resize=True, return_features=True)  # [B, D]
        (self.real if real else self.fake).append(feats.double().cpu())

    def compute(self) -> float:
        return features_distance(torch.cat(self.real), torch.cat(self.fake))
