"""GLIGEN's gated self-attention and grounding tokens (Li et al. 2023, Sec. 3.2, Eq. 8), for any backbone.

Shared by GLIGEN (methods/gligen) and InstanceDiffusion (methods/instancediffusion). Both classes
subclass diffusers' own (``GatedSelfAttentionDense``, ``GLIGENTextBoundingboxProjection``): the
parameters, their names and the SD1.x forward are the library's, so a diffusers GLIGEN checkpoint
loads into them; what is added here is the video layout and the checks.

- ``GatedSelfAttention``  ``x += tanh(a_attn) * SelfAttn(LN([x, Linear(objs)]))[:N]``,
  ``x += tanh(a_dense) * FF(LN(x))``; scalar gates at 0, so the block is the identity at init.
  A video block ([B, F*S, d], frame-major as Wan flattens) attends per frame: frame f's S visual
  tokens with frame f's grounding tokens.
- ``GroundingTokenNet``   phrase embedding + Fourier box embedding (8 frequencies) -> MLP
  (D + 64) -> 512 -> 512 -> c, learnable null phrase / box features for empty slots.
- ``grounding_slots``     instances [B, N, F, 4] -> the padded per-latent-frame slots (at most 30).
- ``pool_phrases``        a phrase's token embeddings -> one vector (CLIP's pooled EOS token, or mean).

Scheduled sampling's beta (Sec. 3.3) is 1 or 0 in the paper's default [0.3, 0, 0.7] schedule; beta = 0 is
the block skipped, which is how callers apply it (no grounding passed), as diffusers' ``enabled`` does.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import GatedSelfAttentionDense
from diffusers.models.embeddings import GLIGENTextBoundingboxProjection
from torch import Tensor

from vidgen.instances.grounding import grounding_frames

MAX_BOXES = 30  # GLIGEN keeps at most 30 boxes per image (the 30 largest, tsv_dataset.py)
FOURIER_FREQS = 8  # Fourier frequencies of the box embedding (64 = 8 x sin/cos x 4 coordinates)
POOLS = ("eos", "mean")


def gated_block_parameters(d: int, c: int) -> int:
    """Parameters of one gated self-attention block on width d with grounding tokens of width c:
    ``c d + d`` (Linear) + ``4 d^2 + d`` (q, k, v, out) + ``12 d^2 + 9 d`` (GEGLU FF, mult 4) + ``4 d``
    (two LayerNorms) + 2 (gates) = ``16 d^2 + c d + 15 d + 2``."""
    return 16 * d * d + c * d + 15 * d + 2


class GatedSelfAttention(GatedSelfAttentionDense):
    """diffusers' ``GatedSelfAttentionDense`` with a per-frame video layout and its parameter count checked.

    ``forward(x, objs, frames=1)``: x [B, F*S, d] visual tokens (frame-major), objs [B*F, N, c] (one
    set of grounding tokens per frame, frames fastest) or [B, N, c] (shared by all frames). With
    ``frames=1`` this is the diffusers forward (SD1.x, ModelScope's per-frame spatial blocks).
    """

    def __init__(self, query_dim: int, context_dim: int, n_heads: int, d_head: int):
        if n_heads * d_head != query_dim:
            raise ValueError(
                f"GatedSelfAttention: heads x head_dim = {n_heads} x {d_head} must equal the block width "
                f"{query_dim} (GLIGEN uses the host block's heads)"
            )
        super().__init__(query_dim, context_dim, n_heads, d_head)
        n = sum(p.numel() for p in self.parameters())
        expected = gated_block_parameters(query_dim, context_dim)
        if n != expected:  # the 16 d^2 + c d + 15 d + 2 of the paper's block (diffusers changed?)
            raise AssertionError(
                f"gated block has {n} parameters, expected 16d^2 + cd + 15d + 2 = {expected}"
            )

    def forward(self, x: Tensor, objs: Tensor, frames: int = 1) -> Tensor:
        if frames == 1:
            return super().forward(x, objs)
        b, fs, d = x.shape
        if fs % frames:
            raise ValueError(f"GatedSelfAttention: {fs} tokens do not split into {frames} frames")
        if objs.shape[0] == b:
            objs = objs.repeat_interleave(frames, dim=0)
        out = super().forward(x.reshape(b * frames, fs // frames, d), objs)
        return out.reshape(b, fs, d)


class GroundingTokenNet(GLIGENTextBoundingboxProjection):
    """GLIGEN's PositionNet (text-only): ``MLP([phrase, Fourier(box)])`` with learnable null features.

    ``forward(boxes, masks, phrases)``: boxes [..., N, 4] normalised xyxy, masks [..., N] (1 = a real
    box, 0 = an empty slot: phrase and box become the learned null features), phrases [..., N, D]
    -> grounding tokens [..., N, out_dim]. Any leading dims (batch, frames) are flattened.
    """

    def __init__(self, phrase_dim: int = 768, out_dim: int = 768, fourier_freqs: int = FOURIER_FREQS):
        super().__init__(
            positive_len=phrase_dim, out_dim=out_dim, feature_type="text-only", fourier_freqs=fourier_freqs
        )

    def forward(self, boxes: Tensor, masks: Tensor, positive_embeddings: Tensor) -> Tensor:  # type: ignore[override]
        lead, n = boxes.shape[:-2], boxes.shape[-2]
        out = super().forward(
            boxes=boxes.reshape(-1, n, 4),
            masks=masks.reshape(-1, n).to(positive_embeddings.dtype),
            positive_embeddings=positive_embeddings.reshape(-1, n, positive_embeddings.shape[-1]),
        )
        return out.reshape(*lead, n, out.shape[-1])


def pool_phrases(embeds: Tensor, mask: Tensor, how: str = "eos") -> Tensor:
    """[..., L, D] token embeddings of each phrase (encoded alone) + [..., L] mask -> [..., D].

    ``eos``: the last valid token. For CLIP this is its ``pooler_output`` (the EOS token after the final
    LayerNorm), which GLIGEN feeds (gligen_inference.py get_clip_feature). ``mean``: the mean over the
    valid tokens (for encoders without a pooled token, e.g. umT5). A phrase without tokens pools to 0.
    """
    if how not in POOLS:
        raise ValueError(f"pool={how!r}; use one of {POOLS}")
    mask = mask.bool()
    if how == "mean":
        w = mask.to(embeds.dtype)[..., None]
        return (embeds * w).sum(-2) / w.sum(-2).clamp(min=1)
    last = (mask.long() * torch.arange(1, mask.shape[-1] + 1, device=mask.device)).argmax(-1)  # [...]
    out = embeds.gather(-2, last[..., None, None].expand(*last.shape, 1, embeds.shape[-1])).squeeze(-2)
    return out * mask.any(-1, keepdim=True).to(out.dtype)


def grounding_slots(
    boxes: Tensor,
    visible: Tensor,
    valid: Tensor,
    phrases: Tensor,
    latent_frames: int,
    t_ds: int,
    max_boxes: int = MAX_BOXES,
) -> dict[str, Tensor]:
    """Instances -> GLIGEN's padded grounding inputs per latent frame.

    boxes [B, N, F, 4] normalised xyxy per pixel frame; visible [B, N, F]; valid [B, N] (padding
    instances False); phrases [B, N, D] pooled phrase embeddings. Latent frame k reads pixel frame
    k * t_ds (``grounding_frames``, as InstanceV's masks). Returns ``boxes`` [B, F', max_boxes, 4],
    ``masks`` [B, F', max_boxes] (1 where an instance is present in that frame) and ``phrases``
    [B, F', max_boxes, D]; empty slots are zero (the token net puts its null features there).
    """
    b, n = boxes.shape[:2]
    if n > max_boxes:
        raise ValueError(f"{n} instances, more than GLIGEN's {max_boxes} grounding slots")
    frames = grounding_frames(boxes.shape[2], t_ds).to(boxes.device)
    if len(frames) != latent_frames:
        raise ValueError(
            f"instances have {boxes.shape[2]} pixel frames -> {len(frames)} grounding frames at T_ds={t_ds}, "
            f"but the latents have {latent_frames} frames"
        )
    present = (visible[:, :, frames].bool() & valid[:, :, None].bool()).transpose(1, 2)  # [B, F', N]
    out_boxes = boxes.new_zeros(b, latent_frames, max_boxes, 4)
    out_boxes[:, :, :n] = boxes[:, :, frames].transpose(1, 2) * present[..., None]
    masks = boxes.new_zeros(b, latent_frames, max_boxes)
    masks[:, :, :n] = present.to(masks.dtype)
    out_phrases = phrases.new_zeros(b, latent_frames, max_boxes, phrases.shape[-1])
    out_phrases[:, :, :n] = phrases[:, None] * present[..., None].to(phrases.dtype)
    return {"boxes": out_boxes, "masks": masks, "phrases": out_phrases}
