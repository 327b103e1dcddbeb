"""GLIGEN's scheduled sampling (official-code-facts A.5), registered as the guidance ``gligen``.

beta = 1 (grounded) for the first ``int(tau * num_steps)`` sampler steps, then beta = 0: the
grounding inputs are dropped from both branches, so the gated blocks are skipped (diffusers'
``gligen_scheduled_sampling_beta`` disables the fusers the same way). The official default
schedule is ``alpha_type = [0.3, 0.0, 0.7]``: no linear-decay segment, so beta is only ever 1 or 0.
The combination is CFG's (``uncond + scale (cond - uncond)``, scale 7.5 in GLIGEN's demos); the
unconditional branch keeps the boxes with every slot masked (null tokens), as diffusers does.
"""

from __future__ import annotations

from vidgen.diffusion.guidance import CFG, register_guidance
from vidgen.methods.gligen.denoiser import GROUNDING_KEYS


class ScheduledGrounding(CFG):
    """CFG whose first ``int(tau * num_steps)`` calls are grounded; one instance per sampling run
    (it counts its calls). ``num_steps=None``: grounded throughout (beta = 1)."""

    def __init__(self, scale: float = 7.5, tau: float = 0.3, num_steps: int | None = None) -> None:
        super().__init__(scale)
        self.tau, self.num_steps, self.calls = float(tau), num_steps, 0

    @property
    def grounded_steps(self) -> int | None:
        return None if self.num_steps is None else int(self.tau * self.num_steps)

    def __call__(self, denoise, x, t, cond, uncond):
        grounded = self.grounded_steps is None or self.calls < self.grounded_steps
        self.calls += 1
        if not grounded:
            cond = {k: v for k, v in cond.items() if k not in GROUNDING_KEYS}
            uncond = None if uncond is None else {k: v for k, v in uncond.items() if k not in GROUNDING_KEYS}
        return super().__call__(denoise, x, t, cond, uncond)

    def __repr__(self) -> str:
        return f"ScheduledGrounding(scale={self.scale}, tau={self.tau}, num_steps={self.num_steps})"


register_guidance("gligen", ScheduledGrounding)
