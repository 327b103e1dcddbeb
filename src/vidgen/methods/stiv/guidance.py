"""CFG renormalisation (STIV Sec. D; Table 2 "+ Renorm"), registered as guidance ``cfg_renorm``."""

from __future__ import annotations

import torch

from vidgen.diffusion.guidance import CFG, _expand_batch, concat_kwargs, register_guidance

GRANULARITIES = ("sample", "token")


class CFGRenorm(CFG):
    """``F~ = ||F_cond|| * F^ / ||F^||`` with ``F^ = F_uncond + s (F_cond - F_uncond)`` (Sec. D).

    The paper does not say over which elements the norm is taken. ``granularity="sample"``
    (default): one L2 norm per sample over all channels, frames and pixels ("the norm of the
    prediction with CFG was linearly scaled to match the conditional prediction norm", Sec. G);
    ``"token"``: one norm per latent pixel over channels. The norm is sign-independent, so it
    applies equally to the paper's ``v`` and the scheduler's ``-v``.
    """

    def __init__(self, scale: float = 7.5, granularity: str = "sample", eps: float = 1e-12) -> None:
        super().__init__(scale)
        if granularity not in GRANULARITIES:
            raise ValueError(f"cfg_renorm granularity={granularity!r}; use one of {', '.join(GRANULARITIES)}")
        self.granularity, self.eps = granularity, float(eps)

    def __call__(self, denoise, x, t, cond, uncond):
        if uncond is None:
            raise ValueError("cfg_renorm needs unconditional inputs (uncond)")
        batch = x.shape[0]
        t = _expand_batch(torch.as_tensor(t, device=x.device), batch, "t")
        out = denoise(torch.cat([x, x]), torch.cat([t, t]), **concat_kwargs(uncond, cond, batch))
        out_uncond, out_cond = out.chunk(2)
        guided = out_uncond + self.scale * (out_cond - out_uncond)
        return renormalize(guided, out_cond, self.granularity, self.eps)

    def __repr__(self) -> str:
        return f"CFGRenorm(scale={self.scale}, granularity={self.granularity!r})"


def renormalize(guided: torch.Tensor, cond: torch.Tensor, granularity: str = "sample", eps: float = 1e-12):
    """Rescale ``guided`` [B, C, ...] to the norm of ``cond``, keeping its direction."""
    dims = tuple(range(1, guided.ndim)) if granularity == "sample" else (1,)
    g, c = guided.float(), cond.float()
    norm = torch.linalg.vector_norm
    scale = norm(c, dim=dims, keepdim=True) / norm(g, dim=dims, keepdim=True).clamp_min(eps)
    return (g * scale).to(guided.dtype)


register_guidance("cfg_renorm", CFGRenorm)
