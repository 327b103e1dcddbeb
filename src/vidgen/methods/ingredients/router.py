"""The ID router (Ingredients Sec. 3.2, Eq. 3): phi(H, F~) = [f(H) * g(W_aggr * F~^n)]_{n=1..N}."""

from __future__ import annotations

from torch import Tensor, nn


def _two_layer(d_in: int, d_out: int) -> nn.Sequential:
    # Eq. 3: "f(.) and g(.) are two-layer MLP networks"; the activation is not stated (GELU chosen)
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))


class IDRouter(nn.Module):
    """Routing logits [B, L, N] of video tokens H [B, L, dim] against N face-token sets [B, N, Q, id_dim].

    ``mlp=True`` (paper): f, g two-layer MLPs; ``mlp=False``: single bias-free Linear layers as the
    released ``MultiIPRouter`` (facts C.4). Both put a LayerNorm before f and g (released code; the
    paper is silent, and un-normalised DiT activations would make the logits huge). ``sqrt_d=False``
    (Eq. 3 as printed and the released code): plain dot product; ``True`` divides by sqrt(inner)
    (attention-style scaling, a knob). W_aggr: Linear(Q -> 1, no bias) over the Q face tokens.
    """

    def __init__(
        self, dim: int, id_dim: int, id_length: int, inner: int, mlp: bool = True, sqrt_d: bool = False
    ):
        super().__init__()
        self.norm_h, self.norm_f = nn.LayerNorm(dim), nn.LayerNorm(id_dim)
        self.w_aggr = nn.Linear(id_length, 1, bias=False)
        self.f = _two_layer(dim, inner) if mlp else nn.Linear(dim, inner, bias=False)
        self.g = _two_layer(id_dim, inner) if mlp else nn.Linear(id_dim, inner, bias=False)
        self.scale = inner**-0.5 if sqrt_d else 1.0

    def forward(self, hidden: Tensor, faces: Tensor) -> Tensor:
        aggr = self.w_aggr(self.norm_f(faces).transpose(-1, -2)).squeeze(-1)  # [B, N, id_dim]
        q = self.f(self.norm_h(hidden))  # [B, L, inner]
        k = self.g(aggr)  # [B, N, inner]
        return (q @ k.transpose(-1, -2)) * self.scale  # [B, L, N]
