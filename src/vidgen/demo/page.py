"""`outputs/demo/index.html`: one self-contained page (GIFs and PNGs inline as base64).

Per clip of the demo set: generated clip | generated mask | ground-truth clip | ground-truth mask,
animated, with the clip's scores; then the scores of the trained model beside the untrained one
and the codec ceiling, the loss curve, and JDM Table 3 in `vidgen report`'s layout with the demo's
numbers in an "ours (demo scale)" row.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vidgen.demo.judge import ClipScore

GIF_SCALE = 3  # 64 px clips shown at 192 px, nearest neighbour: pixels stay sharp
GIF_FPS = 8  # the shapes world's frame rate

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:right;vertical-align:middle}td:first-child,th:first-child{text-align:left}.clips td{text-align:center}
.clips img{display:block;image-rendering:pixelated}.clips td:first-child{min-width:16em;text-align:left}.best{font-weight:bold}.mark{color:#b00}.paper{color:#555}
.diff{color:#777;font-size:11px}.note{color:#555;font-size:13px}code{font-size:12px}"""


@dataclass(frozen=True)
class ClipView:
    """One row of the page: the generated pair beside the truth, and its scores."""

    score: ClipScore
    prompt: str  # what the clip was generated from
    video: Tensor  # [3, F, H, W] generated, in [-1, 1]
    mask: Tensor  # [F, H, W] bool, generated
    true_video: Tensor  # [3, F, H, W] rendered, in [-1, 1]
    true_mask: Tensor  # [F, H, W] bool, all objects


def _frames(x: Tensor) -> np.ndarray:
    """A video [3, F, H, W] in [-1, 1] or a mask [F, H, W] bool -> uint8 frames [F, H, W, 3]."""
    if x.dim() == 3:
        x = (x.float() * 2 - 1)[None].expand(3, -1, -1, -1)
    rgb = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return rgb.permute(1, 2, 3, 0).contiguous().numpy()


def gif_bytes(x: Tensor, scale: int = GIF_SCALE, fps: int = GIF_FPS) -> bytes:
    """An animated, looping GIF of a video [3, F, H, W] or a mask [F, H, W]."""
    from PIL import Image

    frames = _frames(x)
    h, w = frames.shape[1:3]
    images = [Image.fromarray(f).resize((w * scale, h * scale), Image.NEAREST) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
    return buf.getvalue()


def loss_curve_png(rows: list[dict[str, float]]) -> bytes:
    """train/loss per optimizer step (metrics.csv) and its running mean over 50 steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r["step"] for r in rows if "train/loss" in r])
    loss = np.array([r["train/loss"] for r in rows if "train/loss" in r])
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    ax.plot(steps, loss, color="#9bbbd9", linewidth=0.6, label="train/loss")
    if len(loss) >= 50:
        smooth = np.convolve(loss, np.ones(50) / 50, mode="valid")
        ax.plot(steps[49:], smooth, color="#1f5f99", linewidth=1.6, label="mean of 50 steps")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (log)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _img(data: bytes, mime: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'


def _num(x: float | None) -> str:
    return "—" if x is None or x != x else f"{x:.3f}"


def clips_table(views: list[ClipView]) -> str:
    head = (
        '<tr><th>prompt <span class="note">(clip caption)</span></th><th>generated clip</th><th>generated mask</th><th>ground truth</th>'
        "<th>true mask</th><th>box IoU</th><th>mask IoU</th></tr>"
    )
    rows = []
    for v in views:
        s = v.score
        cells = [
            _img(gif_bytes(x), "image/gif", f"{name} {s.index}")
            for name, x in (
                ("generated clip", v.video),
                ("generated mask", v.mask),
                ("ground-truth clip", v.true_video),
                ("ground-truth mask", v.true_mask),
            )
        ]
        rows.append(
            f'<tr><td>{html.escape(v.prompt)}<br><span class="note">({html.escape(s.caption)})</span></td>'
            f"{''.join(f'<td>{c}</td>' for c in cells)}"
            f"<td>{_num(s.box_iou)}</td><td>{_num(s.mask_iou)}</td></tr>"
        )
    return f'<table class="clips">{head}{"".join(rows)}</table>'


def scores_table(rows: dict[str, dict[str, float]]) -> str:
    """{row label: {box_iou, mask_iou, mask_f1, mask_pixel_acc}} as an HTML table."""
    cols = (
        ("box_iou", "layout: box IoU"),
        ("mask_iou", "mask IoU"),
        ("mask_f1", "mask F1"),
        ("mask_pixel_acc", "mask pixel acc"),
    )
    head = "".join(f"<th>{html.escape(name)}</th>" for _, name in cols)
    body = "".join(
        f"<tr><td>{html.escape(label)}</td>{''.join(f'<td>{_num(m.get(k))}</td>' for k, _ in cols)}</tr>"
        for label, m in rows.items()
    )
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def render_page(
    *,
    title: str,
    intro: str,
    views: list[ClipView],
    scores: dict[str, dict[str, float]],
    loss_png: bytes,
    table3_html: str,
    footer: str,
) -> str:
    e = html.escape
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{e(title)}</h1>
<p>{intro}</p>
<h2>Generated from the captions of the training set</h2>
{clips_table(views)}
<h2>Scores</h2>
{scores_table(scores)}
<p class="note">Box IoU: the shapes world's exact detector (vidgen.data.shapes_segment) finds each captioned
shape by its colour in the generated clip; its box per frame against the true box, over the frames where the
shape is visible. Mask IoU / F1 / pixel accuracy: the generated mask against the exact all-objects mask
(JDM Table 3's metrics). The codec ceiling judges the ground truth after the stand-in VAE (encode, decode): no
model can score higher through it.</p>
<h2>Training loss</h2>
{_img(loss_png, "image/png", "training loss")}
<h2>JDM Table 3 (mask quality)</h2>
{table3_html}
<p class="note">{footer}</p>
</body></html>
"""
