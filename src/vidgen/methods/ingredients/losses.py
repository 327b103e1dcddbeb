"""Routing supervision (Ingredients Sec. 3.3 "Router Fine-Tuning", Eq. 5).

Labels: M per video token, -1 = background, n = the n-th ID of the clip. Each ID's region (a
segmentation mask, or its face box for Table 2's "Box" row) and the background become one
channel each, ``F.interpolate(mode="trilinear")`` brings the channels to the token grid (Sec. 3.3),
and each token takes the channel with the largest share (ties: background). Interpolating the
label values themselves would invent IDs at borders (between -1 and 1 lies 0), hence channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidgen.methods.ingredients.injection import masked_logits

ROUTING_LOSSES = ("ce", "mse", "none")  # Table 3: w/ L_route, w/ L_mse, w/o L_route


def box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """Face boxes [B, N, F, 4] (normalised xyxy) -> filled masks [B, N, F, H, W] bool (Table 2 "Box")."""
    ys = (torch.arange(height, device=boxes.device) + 0.5) / height  # pixel centres
    xs = (torch.arange(width, device=boxes.device) + 0.5) / width
    x0, y0, x1, y1 = (boxes[..., i, None, None] for i in range(4))  # [B, N, F, 1, 1]
    inside_y = (ys[:, None] >= y0) & (ys[:, None] < y1)  # [B, N, F, H, 1]
    inside_x = (xs[None, :] >= x0) & (xs[None, :] < x1)  # [B, N, F, 1, W]
    return inside_y & inside_x


def index_map_channels(index_map: Tensor, num_ids: Tensor) -> Tensor:
    """A label map [B, F, H, W] (-1 background, n = ID) -> channels [B, 1 + N, F, H, W] float.

    num_ids [B]: the IDs each clip has; a label outside [-1, num_ids) is an error naming it.
    """
    bad = (index_map < -1) | (index_map >= num_ids.view(-1, 1, 1, 1))
    if bad.any():
        b = int(bad.flatten(1).any(1).nonzero()[0])
        raise ValueError(
            f"ID mask of batch element {b} holds ID index {int(index_map[b][bad[b]][0])}, but that clip has "
            f"{int(num_ids[b])} reference IDs (valid: -1 = background, 0..{int(num_ids[b]) - 1}); "
            "fix the ID masks or pass the missing reference faces"
        )
    n = int(num_ids.max())
    return F.one_hot(index_map + 1, n + 1).permute(0, 4, 1, 2, 3).float()


def mask_channels(id_masks: Tensor, valid: Tensor) -> Tensor:
    """Per-ID masks [B, N, F, H, W] bool (padded IDs: valid [B, N] False) -> [B, 1 + N, F, H, W] float."""
    masks = id_masks & valid[:, :, None, None, None]
    background = ~masks.any(1, keepdim=True)
    return torch.cat([background, masks], dim=1).float()


def downsample_labels(channels: Tensor, size: tuple[int, int, int]) -> Tensor:
    """Channels [B, 1 + N, F, H, W] -> labels [B, F', H', W'] long (-1 background) on the token grid."""
    shares = F.interpolate(channels, size=size, mode="trilinear", align_corners=False)
    return shares.argmax(1) - 1  # channel 0 = background -> -1


def routing_loss(logits: list[Tensor], labels: Tensor, valid: Tensor, kind: str) -> Tensor:
    """L_route of Eq. 5 without L_diff: averaged over the routed blocks, then over the batch.

    logits: one [B, L, N] per routed block; labels [B, L] (-1 ignored exactly: those tokens add
    nothing, and a clip with no labelled token adds 0, as the released code's NaN -> 0);
    valid [B, N]. ``ce``: cross-entropy of softmax(phi) against M, averaged over the labelled tokens
    (Eq. 5's sum_n M_n log phi_n is one term per token; the released ``F.cross_entropy`` mean).
    ``mse`` (Table 3 "w/ L_mse", paper gives no formula): mean squared error between softmax(phi)
    and one-hot(M) over the same tokens and the clip's IDs.
    """
    if kind not in ROUTING_LOSSES:
        raise ValueError(f"routing loss {kind!r} is not valid; use one of {', '.join(ROUTING_LOSSES)}")
    if kind == "none" or not logits:
        return labels.new_zeros((), dtype=torch.float32)
    labelled = labels >= 0  # [B, L]
    count = labelled.sum(1).clamp(min=1)  # [B]
    target = labels.clamp(min=0)
    per_block = []
    for phi in logits:
        phi = masked_logits(phi.float(), valid)  # [B, L, N]
        if kind == "ce":
            per_token = F.cross_entropy(phi.transpose(1, 2), target, reduction="none")  # [B, L]
        else:
            err = (phi.softmax(-1) - F.one_hot(target, phi.shape[-1]).float()) ** 2  # [B, L, N]
            per_token = (err * valid[:, None, :]).sum(-1) / valid.sum(-1, keepdim=True)
        per_token = torch.where(labelled, per_token, torch.zeros_like(per_token))
        per_block.append(per_token.sum(1) / count)  # [B]
    return torch.stack(per_block).mean(0).mean()


@torch.no_grad()
def routing_accuracy(logits: list[Tensor], labels: Tensor, valid: Tensor) -> Tensor:
    """Share of labelled tokens whose argmax ID is the label, over all routed blocks (Fig. 6's trend)."""
    labelled = labels >= 0
    hits = [(masked_logits(phi, valid).argmax(-1) == labels) & labelled for phi in logits]
    return torch.stack(hits).float().sum() / (labelled.sum() * len(logits)).clamp(min=1)
