"""ScaleU (InstanceDiffusion "ScaleU block" slide) on a diffusers U-Net's decoder, and FreeU (Table 6a).

Every decoder resnet of ``unet.up_blocks`` (12 on SD1.5 and ModelScope, the released code's 12
output blocks) reads ``cat([F_b, F_s])``: the main feature and the skip connection. A forward
pre-hook on the resnet rescales that input:

    F_b' = F_b * (tanh(s_b) + 1)                            s_b [C_b], channel-wise
    F_s' = IFFT(FFT(F_s) * alpha),  alpha = tanh(s_s) + 1 inside the low-frequency window, 1 outside

s_s is channel-wise [C_s] as the slide says ("two learnable, channel-wise scaling vectors");
``skip="scalar"`` is the released code's single scalar per block. The window is the released code's
square ``[H/2 - r, H/2 + r) x [W/2 - r, W/2 + r)`` of the shifted spectrum (r = ``threshold`` = 1;
the slide's radius r_thresh has no value). F_s' is computed as ``F_s + IFFT(FFT(F_s) (alpha - 1))``,
equal by linearity, so at s = 0 it is F_s bit for bit (an FFT round trip is not).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

SKIPS = ("channel", "scalar")
FREEU_SD15 = {
    "b1": 1.2,
    "b2": 1.4,
    "s1": 0.9,
    "s2": 0.2,
}  # FreeU's SD1.x values (the released code's comparison)


def low_frequency_scale(x: Tensor, alpha: Tensor, threshold: int) -> Tensor:
    """IFFT(FFT(x) * alpha_window) over (H, W) of x [..., C, H, W]; alpha [C] or [1], 1 outside the window."""
    h, w = x.shape[-2:]
    spec = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    window = torch.zeros(h, w, device=x.device)
    window[h // 2 - threshold : h // 2 + threshold, w // 2 - threshold : w // 2 + threshold] = 1.0
    gain = (alpha.float() - 1.0)[:, None, None] * window  # [C or 1, H, W]; 0 outside the window
    delta = torch.fft.ifftn(torch.fft.ifftshift(spec * gain, dim=(-2, -1)), dim=(-2, -1)).real
    return (x.float() + delta).to(x.dtype)


class ScaleU(nn.Module):
    """One decoder block's s_b [C_b] and s_s ([C_s] or [1]), zero at init (both factors = 1)."""

    def __init__(self, main_channels: int, skip_channels: int, skip: str = "channel", threshold: int = 1):
        super().__init__()
        if skip not in SKIPS:
            raise ValueError(f"skip={skip!r}; use one of {SKIPS}")
        self.main_channels, self.threshold = main_channels, threshold
        self.s_b = nn.Parameter(torch.zeros(main_channels))
        self.s_s = nn.Parameter(torch.zeros(skip_channels if skip == "channel" else 1))

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C_b + C_s, H, W] = cat([F_b, F_s]) -> cat([F_b', F_s'])."""
        f_b, f_s = x[:, : self.main_channels], x[:, self.main_channels :]
        f_b = f_b * (torch.tanh(self.s_b) + 1).to(f_b.dtype)[:, None, None]
        f_s = low_frequency_scale(f_s, torch.tanh(self.s_s) + 1, self.threshold)
        return torch.cat([f_b, f_s], dim=1)


def decoder_resnets(unet: nn.Module) -> list[tuple[nn.Module, int]]:
    """(resnet, C_b) for every resnet of ``unet.up_blocks`` in order; C_b = channels of the main feature.

    Resnet 0 of an up block reads the previous block's output (the mid block's for the first, whose
    width is ``block_out_channels[-1]``); resnet i > 0 reads resnet i - 1's output.
    """
    out, prev = [], unet.config.block_out_channels[-1]
    for block in unet.up_blocks:
        for resnet in block.resnets:
            out.append((resnet, prev))
            prev = resnet.out_channels
    return out


class ScaleUSet(nn.Module):
    """ScaleU on every decoder resnet of a diffusers U-Net, attached with forward pre-hooks."""

    def __init__(self, unet: nn.Module, skip: str = "channel", threshold: int = 1):
        super().__init__()
        pairs = decoder_resnets(unet)
        self.blocks = nn.ModuleList(ScaleU(c_b, r.in_channels - c_b, skip, threshold) for r, c_b in pairs)
        self._handles = [r.register_forward_pre_hook(self._hook(i)) for i, (r, _) in enumerate(pairs)]

    def _hook(self, i: int):
        def pre(module: nn.Module, args: tuple) -> tuple:
            return (self.blocks[i](args[0]), *args[1:])

        return pre

    def remove(self) -> None:
        """Detach the hooks (the U-Net is the plain backbone again)."""
        for h in self._handles:
            h.remove()
        self._handles = []


def enable_freeu(unet: nn.Module, values: dict[str, float]) -> None:
    """Table 6a's alternative: diffusers' own FreeU (``enable_freeu(s1, s2, b1, b2)``), not learned."""
    unet.enable_freeu(**{k: float(values[k]) for k in ("s1", "s2", "b1", "b2")})
