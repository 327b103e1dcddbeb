"""UniFusion location tokenizers (InstanceDiffusion "Instance Tokenizer" slide; released ``UniFusion``).

``g_i = MLP([tau(c_i), s * gamma(p_i)] + (1 - s) * e_i)``: tau(c_i) the instance caption's text
feature, gamma the Fourier embedding of the format's points, s = 1 when the format is given, e_i
that format's learnable null token (zeros at init). One MLP per format, (text + pos) -> 3072 ->
3072 -> token_dim. Token order: box, point, scribble, polygon (N tokens each), then the 64 tokens
of the binary-mask branch ("seg", Table 6b).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.methods.instancediffusion.mask_bits import unpack_bits

FORMATS = ("box", "point", "scribble", "polygon")  # point-parameterised formats, in token order
SEG = "seg"
ALL_FORMATS = (*FORMATS, SEG)
SHARED = -1  # owner of a grounding token that belongs to no single instance (the seg tokens)


def fourier_embed(x: Tensor, freqs: int, temperature: float = 100.0) -> Tensor:
    """GLIGEN's FourierEmbedder: x [..., n] -> [..., freqs * 2 * n] laid out (freq, sin/cos, coord).

    Frequencies ``temperature ** (k / freqs)``, k = 0..freqs-1 (the same layout as diffusers'
    ``get_fourier_embeds_from_boundingbox``, which is the n = 4 case).
    """
    bands = temperature ** (torch.arange(freqs, device=x.device, dtype=x.dtype) / freqs)  # [F]
    emb = bands[:, None] * x[..., None, :]  # [..., F, n]
    return torch.stack([emb.sin(), emb.cos()], dim=-2).flatten(-3)  # [..., F * 2 * n]


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, d_out)
    )


@dataclass
class Locations:
    """Per-instance locations of a batch, all normalised xy in [0, 1].

    text [B, N, D_text] instance-caption features; valid [B, N]; boxes [B, N, 4]; points [B, N, 2];
    scribbles [B, N, P_s, 2]; polygons [B, N, P_m, 2]; masks [B, N, H, W] bool, packed
    [B, N, r, ceil(r / 8)] uint8 (``mask_bits``) or None;
    given: format -> [B, N] bool, the paper's s (False: that format's null token e_i); "seg" -> [B].
    """

    text: Tensor
    valid: Tensor
    boxes: Tensor
    points: Tensor
    scribbles: Tensor
    polygons: Tensor
    masks: Tensor | None
    given: dict[str, Tensor]

    def coords(self, fmt: str) -> Tensor:
        """The format's coordinates flattened -> [B, N, n]."""
        x = {"box": self.boxes, "point": self.points, "scribble": self.scribbles, "polygon": self.polygons}[
            fmt
        ]
        return x.flatten(2)


class SegTokenizer(nn.Module):
    """Binary instance masks -> ``tokens`` extra tokens (Table 6b "extra tokens from binary masks").

    masks [B, N, H, W] (one channel per instance slot) -> Conv2d(N, 3, 3) -> ConvNeXt (transformers
    ``ConvNextModel``; ConvNeXt-T in the released code) -> average-pooled to a sqrt(tokens)^2 grid ->
    + learned position embedding (std .02) -> MLP C -> hidden -> hidden -> token_dim. The released
    code reshapes ConvNeXt-T's 768 x 16 x 16 map into 64 vectors of 3072; pooling to 8 x 8 keeps one
    token per region instead (differs; the paper is silent).
    """

    def __init__(
        self, convnext: nn.Module, slots: int, tokens: int, hidden: int, token_dim: int, resolution: int
    ):
        super().__init__()
        side = int(round(tokens**0.5))
        if side * side != tokens:
            raise ValueError(f"seg tokens={tokens} must be a square number (a side x side grid)")
        self.side, self.resolution = side, resolution
        self.stem = nn.Conv2d(slots, 3, 3, 1, 1)
        self.convnext = convnext
        # the classification head is removed (released code): its pooled-output LayerNorm would never train
        self.convnext.layernorm = nn.Identity()
        width = convnext.config.hidden_sizes[-1]
        self.pos = nn.Parameter(torch.randn(tokens, width) * 0.02)
        self.mlp = _mlp(width, hidden, token_dim)
        self.null = nn.Parameter(torch.zeros(tokens, token_dim))

    def forward(self, masks: Tensor, given: Tensor) -> Tensor:
        """masks [B, N, H, W] bool (resized here, nearest) or [B, N, r, ceil(r / 8)] uint8, already at
        r = ``resolution`` and packed (``mask_bits``, the transform's); given [B] bool (False: the
        null seg tokens) -> [B, tokens, token_dim]."""
        r = self.resolution
        if masks.dtype == torch.uint8:
            x = unpack_bits(masks, r).to(self.stem.weight.dtype)  # 0 / 1: exact in any dtype, no fp32 copy
            if x.shape[-2] != r:
                raise ValueError(f"packed masks have {x.shape[-2]} rows; the seg tokenizer reads {r} x {r}")
        else:
            x = F.interpolate(masks.float(), size=(r, r), mode="nearest")
        feat = self.convnext(self.stem(x.to(self.stem.weight.dtype))).last_hidden_state  # [B, C, h, w]
        feat = F.adaptive_avg_pool2d(feat, self.side).flatten(2).transpose(1, 2)  # [B, tokens, C]
        tokens = self.mlp(feat + self.pos)  # [B, tokens, D]
        return torch.where(given[:, None, None], tokens, self.null.to(tokens.dtype)[None])


class UniFusion(nn.Module):
    """All location formats of N instance slots -> grounding tokens [B, T, token_dim] and their owners.

    ``fusion="format_aware"`` (paper default): one MLP per format, 4N tokens (+ seg tokens).
    ``fusion="joint"`` (Table 5 "w/o FA fusion"): one MLP over the text and every format's
    (null-substituted) Fourier features concatenated, N tokens (+ seg tokens); the paper does not
    describe joint fusion, this is the released code's ``use_seperate_tokenizer=False`` path.
    """

    def __init__(
        self,
        slots: int,
        text_dim: int,
        token_dim: int,
        hidden: int,
        freqs: int,
        scribble_points: int,
        polygon_points: int,
        fusion: str = "format_aware",
        seg: SegTokenizer | None = None,
    ):
        super().__init__()
        self.slots, self.freqs, self.fusion, self.text_dim = slots, freqs, fusion, text_dim
        n_coords = {"box": 4, "point": 2, "scribble": 2 * scribble_points, "polygon": 2 * polygon_points}
        self.pos_dims = {f: freqs * 2 * n for f, n in n_coords.items()}
        if fusion == "format_aware":
            self.mlps = nn.ModuleDict(
                {f: _mlp(text_dim + self.pos_dims[f], hidden, token_dim) for f in FORMATS}
            )
            self.nulls = nn.ParameterDict(
                {f: nn.Parameter(torch.zeros(text_dim + self.pos_dims[f])) for f in FORMATS}
            )
        elif fusion == "joint":
            self.mlps = nn.ModuleDict(
                {"joint": _mlp(text_dim + sum(self.pos_dims.values()), hidden, token_dim)}
            )
            self.nulls = nn.ParameterDict({f: nn.Parameter(torch.zeros(self.pos_dims[f])) for f in FORMATS})
        else:
            raise ValueError(f"fusion={fusion!r}; use format_aware or joint")
        self.seg = seg

    def owners(self) -> Tensor:
        """Instance slot of each grounding token [T] (``SHARED`` for seg tokens), in token order."""
        per = len(FORMATS) if self.fusion == "format_aware" else 1
        own = torch.arange(self.slots).repeat(per)
        if self.seg is not None:
            own = torch.cat([own, torch.full((self.seg.null.shape[0],), SHARED)])
        return own

    def forward(self, loc: Locations) -> Tensor:
        """-> tokens [B, T, token_dim], T = 4N (+ seg) format-aware, N (+ seg) joint."""
        text = loc.text * loc.valid[..., None].to(loc.text.dtype)  # padding slots carry no caption
        if self.fusion == "format_aware":
            out = []
            for f in FORMATS:
                s = (loc.given[f] & loc.valid)[..., None].to(text.dtype)  # [B, N, 1]
                x = torch.cat([text, s * fourier_embed(loc.coords(f).to(text.dtype), self.freqs)], dim=-1)
                out.append(self.mlps[f](x + (1 - s) * self.nulls[f]))  # [B, N, D]
        else:
            parts = [text]
            for f in FORMATS:
                s = (loc.given[f] & loc.valid)[..., None].to(text.dtype)
                parts.append(
                    s * fourier_embed(loc.coords(f).to(text.dtype), self.freqs) + (1 - s) * self.nulls[f]
                )
            out = [self.mlps["joint"](torch.cat(parts, dim=-1))]
        if self.seg is not None:
            if loc.masks is None:
                raise ValueError("the seg tokenizer needs instance masks (Locations.masks)")
            masks = loc.masks * loc.valid[..., None, None]  # bool or packed bytes: padding slots -> 0
            out.append(self.seg(masks, loc.given[SEG]))
        return torch.cat(out, dim=1)


def format_switches(
    valid: Tensor,
    formats: tuple[str, ...] | list[str],
    format_drop: float = 0.0,
    grounding_drop: float = 0.0,
    gen: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The paper's s per format: valid [B, N] -> {format: [B, N] bool, "seg": [B] bool}.

    A format outside ``formats`` is never given (Table 4 rows at inference). In training each given
    format of a sample is dropped with ``format_drop`` and a sample's whole grounding with
    ``grounding_drop`` (every format null); the released code draws both once per batch, here
    per sample (the paper gives no rate; per sample varies within a batch).
    """
    b, device = valid.shape[0], valid.device

    def draw(p: float) -> Tensor:  # [B] bool, True = dropped
        if p <= 0:
            return torch.zeros(b, dtype=torch.bool, device=device)
        return (torch.rand(b, generator=gen, device=gen.device if gen is not None else "cpu") < p).to(device)

    null_all = draw(grounding_drop)
    out = {}
    for f in ALL_FORMATS:
        keep = torch.full((b,), f in formats, device=device) & ~draw(format_drop) & ~null_all
        out[f] = keep if f == SEG else keep[:, None] & valid.bool()
    return out
