"""VBench-I2V's image suite as `vidgen eval` input (github.com/Vchitect/VBench, ``vbench2_beta_i2v/README.md``).

- Images: ``vbench2_beta_i2v/data/crop/<ratio>/<image_name>``, each image cropped by VBench to the
  aspect ratios ``1-1``, ``8-5``, ``7-4``, ``16-9``; the suite folder (``eval.vbench_i2v.images``) is
  that ``crop`` folder. The ratio is the one closest to the model's width / height (VBench: "select the
  suitable ratio according to the video resolution"), or ``eval.vbench_i2v.ratio``.
- Prompts: ``vbench2_i2v_full_info.json`` (``[{"prompt_en", "dimension", "image_name"}, ...]``), given as
  ``eval.prompts`` or found beside the image suite (``crop/``, ``data/``, ``vbench2_beta_i2v/``).
- Videos: ``<prompt_en>-<i>.mp4``, i = 0..4, in one folder (VBench-I2V's "Video Data" layout), scored with
  ``VBenchI2V(...).evaluate(videos_path=..., resolution=<ratio>)``.
- Conditioning image: the crop centre-cropped to the model's exact aspect ratio, then resized (bicubic) to
  its height x width; VBench leaves resizing to the model, so this is our choice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vidgen.errors import ConfigError

RATIOS = {"1-1": 1.0, "8-5": 8 / 5, "7-4": 7 / 4, "16-9": 16 / 9}  # VBench-I2V's crop folders (w:h)
FULL_INFO = "vbench2_i2v_full_info.json"
IMAGES_KEY = "eval.vbench_i2v.images"
IMAGES_WHAT = (
    "the folder of VBench-I2V's cropped image suite (vbench2_beta_i2v/data/crop, with 1-1/ 8-5/ 7-4/ 16-9/ "
    "subfolders; VBench's vbench2_beta_i2v/download_data.sh fetches it)"
)


def closest_ratio(width: int, height: int) -> str:
    """The crop folder whose aspect is closest (in log scale) to width / height; portrait models get 1-1."""
    r = width / height
    return min(RATIOS, key=lambda k: abs(math.log(RATIOS[k]) - math.log(max(r, 1.0))))


def image_folder(opts: dict, width: int, height: int) -> tuple[Path, str]:
    """(folder of the chosen ratio's images, ratio); a missing folder names the key and what to put there."""
    given = opts.get("vbench_i2v.images")
    if not given or not Path(given).is_dir():
        state = f"{given!r} does not exist" if given else "it is not set"
        raise ConfigError(f"suite=vbench-i2v needs {IMAGES_KEY}=DIR ({state}): put {IMAGES_WHAT} there")
    ratio = str(opts.get("vbench_i2v.ratio") or closest_ratio(width, height))
    if ratio not in RATIOS:
        raise ConfigError(f"eval.vbench_i2v.ratio={ratio}: choose from {', '.join(RATIOS)}")
    folder = Path(given) / ratio
    if not folder.is_dir():
        raise ConfigError(f"{IMAGES_KEY}={given}: no {ratio}/ subfolder; put {IMAGES_WHAT} there")
    return folder, ratio


def full_info(opts: dict) -> Path:
    """``eval.prompts``, else ``vbench2_i2v_full_info.json`` in the image suite folder or up to two above it."""
    if opts.get("prompts"):
        path = Path(opts["prompts"])
        if not path.is_file():
            raise ConfigError(f"eval.prompts={path}: no such file; give VBench-I2V's {FULL_INFO}")
        return path
    base = Path(opts["vbench_i2v.images"]).resolve()
    for folder in (base, base.parent, base.parent.parent):
        if (folder / FULL_INFO).is_file():
            return folder / FULL_INFO
    raise ConfigError(
        f"suite=vbench-i2v: no {FULL_INFO} in {base} or the two folders above it; "
        f"pass eval.prompts=PATH (vbench2_beta_i2v/{FULL_INFO} of the VBench repository)"
    )


def prompts(path: Path, dimensions: list[str] | None = None) -> list[tuple[str, str]]:
    """(prompt_en, image_name) in file order, unique per prompt; only ``dimensions``' entries when given."""
    try:
        entries = json.loads(path.read_text())
        wanted = set(dimensions or ())
        pairs = [(str(e["prompt_en"]), str(e["image_name"])) for e in entries
                 if not wanted or wanted & set(e["dimension"])]  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"eval.prompts={path}: not VBench-I2V's {FULL_INFO} ({exc}); expected "
                          '[{"prompt_en": ..., "dimension": [...], "image_name": ...}, ...]') from None  # fmt: skip
    first: dict[str, str] = {}
    for prompt, image in pairs:
        first.setdefault(prompt, image)
    return list(first.items())


def image_pixels(path: str | Path, height: int, width: int) -> Tensor:
    """The conditioning frame [1, 3, 1, H, W] in [-1, 1]: centre crop to width / height, bicubic resize."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        if w * height > h * width:  # too wide: keep the full height
            cw, ch = round(h * width / height), h
        else:
            cw, ch = w, round(w * height / width)
        left, top = (w - cw) // 2, (h - ch) // 2
        img = img.crop((left, top, left + cw, top + ch)).resize((width, height), Image.Resampling.BICUBIC)
        pixels = torch.from_numpy(np.asarray(img).copy())  # [H, W, 3] uint8
    return pixels.permute(2, 0, 1)[None, :, None].float() / 127.5 - 1.0
