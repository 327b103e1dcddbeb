"""SAUG, InstanceV Sec. 4.3, Eq. 7: ``(1 + w) eps(z, I, M) - w eps(z, M)``, registered as ``saug``.

The combination is CFG's (``uncond + s (cond - uncond)`` with s = 1 + w); what makes it SAUG is
the unconditional branch the caller builds: instance prompts replaced by distinct ``<extra_id_k>``
sentinels while the attention masks M are kept (``InstanceVModule.branches``). ``scale`` is the
CFG scale s, as for ``cfg`` (the paper's "CFG scale 5", Sec. 9.2, is s = 5, i.e. w = 4).
"""

from __future__ import annotations

from vidgen.diffusion.guidance import CFG, register_guidance


class SAUG(CFG):
    """Eq. 7 with w = scale - 1, both branches in one batched forward (see ``CFG``)."""

    @property
    def w(self) -> float:
        return self.scale - 1.0

    def __repr__(self) -> str:
        return f"SAUG(scale={self.scale}, w={self.w})"


register_guidance("saug", SAUG)
