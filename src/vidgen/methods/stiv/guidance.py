"""CFG renormalisation (STIV Sec. D; Table 2 "+ Renorm"), guidance ``cfg_renorm``; JIT-CFG (Sec. 2.3.2), ``jit_cfg``."""

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


DROPS = ("joint", "text", "image")


class JITCFG:
    """Joint image-text CFG (STIV Sec. 2.3.2): ``F_null + s (F_{T,I} - F_null)``, s = 7.5 (Sec. E).

    The condition dicts carry ``image_cond`` [B] (1: the image condition is present, 0: dropped;
    frame replacement and the image cross-attention read it). ``drop`` names what the null branch
    drops: ``"joint"`` (as printed: text and image, ``F(x, ∅, ∅)``), ``"text"`` (plain text CFG, the
    image kept in both branches) or ``"image"`` (image-only guidance, the text kept). Two passes in
    one doubled batch, as the paper's "two-pass approach". ``renorm``: CFG renormalisation (Sec. D).
    ``scale == 1`` returns the conditional prediction itself (one pass).
    """

    def __init__(
        self, scale: float = 7.5, drop: str = "joint", renorm: bool = True, granularity: str = "sample"
    ) -> None:
        if drop not in DROPS:
            raise ValueError(f"jit_cfg drop={drop!r}; use one of {', '.join(DROPS)}")
        if granularity not in GRANULARITIES:
            raise ValueError(f"jit_cfg granularity={granularity!r}; use one of {', '.join(GRANULARITIES)}")
        self.scale, self.drop, self.renorm, self.granularity = float(scale), drop, bool(renorm), granularity

    def null_branch(self, cond: dict, uncond: dict) -> dict:
        """The null branch's inputs: ``uncond`` with what ``drop`` keeps taken from ``cond``."""
        if "image_cond" not in cond or "image_cond" not in uncond:
            raise ValueError(
                "jit_cfg needs 'image_cond' [B] in cond and uncond (1: image present, 0: dropped)"
            )
        if self.drop == "joint":
            return dict(uncond)
        if self.drop == "text":
            return {**uncond, "image_cond": cond["image_cond"]}
        return {**cond, "image_cond": uncond["image_cond"]}

    def __call__(self, denoise, x, t, cond, uncond):
        if self.scale == 1.0:
            return denoise(x, t, **cond)
        if uncond is None:
            raise ValueError("jit_cfg needs unconditional inputs (uncond)")
        batch = x.shape[0]
        t = _expand_batch(torch.as_tensor(t, device=x.device), batch, "t")
        null = self.null_branch(cond, uncond)
        out = denoise(torch.cat([x, x]), torch.cat([t, t]), **concat_kwargs(null, cond, batch))
        out_null, out_cond = out.chunk(2)
        guided = out_null + self.scale * (out_cond - out_null)
        return renormalize(guided, out_cond, self.granularity) if self.renorm else guided

    def __repr__(self) -> str:
        return f"JITCFG(scale={self.scale}, drop={self.drop!r}, renorm={self.renorm})"


register_guidance("jit_cfg", JITCFG)
