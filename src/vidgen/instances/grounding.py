"""Pixel-space instance boxes / masks -> which visual tokens of each latent frame an instance covers.

InstanceV Sec. 3.2: the grounding of latent frame k is the pixel frame k * T_ds (T_ds the VAE's
temporal factor), i.e. pixel frames 0, T_ds, 2 T_ds, ...; a per-frame image VAE (T_ds = 1)
keeps every frame. Tokens are the backbone's post-patchify grid (H' / p_h, W' / p_w).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

GROUNDINGS = ("box", "mask")


def grounding_frames(pixel_frames: int, t_ds: int) -> Tensor:
    """Indices of the pixel frames that ground latent frames 0, 1, ...: 0, T_ds, 2 T_ds, ... (Sec. 3.2)."""
    if t_ds < 1 or pixel_frames < 1:
        raise ValueError(f"need pixel_frames >= 1 and t_ds >= 1, got {pixel_frames}, {t_ds}")
    return torch.arange(0, pixel_frames, t_ds)


def box_token_masks(boxes: Tensor, grid: tuple[int, int]) -> Tensor:
    """Boxes [..., 4] (normalised xyxy) -> token masks [..., gh * gw] (row-major, as Wan flattens).

    A token belongs to a box when its cell centre lies inside the box; a box that contains no
    cell centre (smaller than a token) keeps the one token holding the box centre, so a small
    instance never loses its grounding. Empty boxes (x1 <= x0 or y1 <= y0) cover nothing.
    """
    gh, gw = grid
    cy = (torch.arange(gh, device=boxes.device, dtype=boxes.dtype) + 0.5) / gh  # [gh]
    cx = (torch.arange(gw, device=boxes.device, dtype=boxes.dtype) + 0.5) / gw  # [gw]
    x0, y0, x1, y1 = (boxes[..., i, None] for i in range(4))  # [..., 1]
    in_x = (cx >= x0) & (cx < x1)  # [..., gw]
    in_y = (cy >= y0) & (cy < y1)  # [..., gh]
    inside = in_y[..., :, None] & in_x[..., None, :]  # [..., gh, gw]
    nonempty = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])  # [...]
    # fallback cell of the box centre
    row = (((y0 + y1) / 2).squeeze(-1) * gh).floor().clamp(0, gh - 1).long()
    col = (((x0 + x1) / 2).squeeze(-1) * gw).floor().clamp(0, gw - 1).long()
    centre = F.one_hot(row * gw + col, gh * gw).bool()  # [..., S]
    flat = inside.flatten(-2)
    flat = torch.where(flat.any(-1, keepdim=True), flat, centre)
    return flat & nonempty[..., None]


def mask_token_masks(masks: Tensor, grid: tuple[int, int], threshold: float = 0.5) -> Tensor:
    """Pixel masks [..., H, W] bool -> token masks [..., gh * gw]: cell covered more than ``threshold``."""
    lead = masks.shape[:-2]
    cover = F.adaptive_avg_pool2d(masks.reshape(-1, 1, *masks.shape[-2:]).float(), grid)  # [*, 1, gh, gw]
    return (cover > threshold).reshape(*lead, grid[0] * grid[1])


def instance_token_masks(
    boxes: Tensor,
    visible: Tensor,
    valid: Tensor,
    latent_frames: int,
    t_ds: int,
    grid: tuple[int, int],
    masks: Tensor | None = None,
    grounding: str = "box",
) -> Tensor:
    """Per latent frame, the visual tokens each instance covers: bool [B, F', N, S], S = gh * gw.

    boxes [B, N, F, 4] normalised xyxy per pixel frame; visible [B, N, F] bool; valid [B, N] bool
    (padding instances of a collated batch are False); masks [B, N, F, H, W] for ``grounding="mask"``.
    Latent frame k reads pixel frame k * t_ds (``grounding_frames``).
    """
    if grounding not in GROUNDINGS:
        raise ValueError(f"grounding={grounding!r}; use one of {GROUNDINGS}")
    frames = grounding_frames(boxes.shape[2], t_ds).to(boxes.device)
    if len(frames) != latent_frames:
        raise ValueError(
            f"instances have {boxes.shape[2]} pixel frames -> {len(frames)} grounding frames at T_ds={t_ds}, "
            f"but the latents have {latent_frames} frames"
        )
    if grounding == "mask":
        if masks is None:
            raise ValueError("grounding='mask' needs instance masks")
        tokens = mask_token_masks(masks[:, :, frames], grid)  # [B, N, F', S]
    else:
        tokens = box_token_masks(boxes[:, :, frames].float(), grid)  # [B, N, F', S]
    keep = visible[:, :, frames].bool() & valid[:, :, None].bool()  # [B, N, F']
    return (tokens & keep[..., None]).transpose(1, 2).contiguous()  # [B, F', N, S]
