"""Whole-scene HED edges and depth of real clips for JDM Table 5 (`vidgen jdm signals`).

JDM A.3: "regional HED and depth signals are obtained by first extracting whole-scene HED and
depth maps, then cropping them according to the regional masks" (the crop is ``signals.py``).
This module extracts the whole-scene maps ``[F, H, W]`` in [0, 1] at the clip's frame size and
stores them in the shards as ``<key>/hed`` / ``<key>/depth`` (read as ``regions.hed`` / ``regions.depth``).

- **Depth**: any transformers depth model in a local folder (``AutoModelForDepthEstimation``:
  DPT, Depth-Anything, ...) with its ``preprocessor_config.json``. Its ``predicted_depth`` is
  relative inverse depth (larger = nearer), resized to the frame and min-max normalised per clip,
  so 1 = nearest as in the shapes world.
- **HED** (Xie & Tu, ICCV 2015): ``HED`` below, the VGG-16 network with five side outputs fused by
  a 1x1 convolution, with the parameter names of the widely used PyTorch port (sniklaus/pytorch-hed:
  ``netVggOne.0.weight`` ... ``netCombine.0.weight``), so its BSDS500 weights load once converted
  to safetensors. Folder: ``config.json`` (``{"model_type": "vidgen-hed", "widths": [64, 128, 256,
  512, 512]}``) + ``model.safetensors``. No transformers class implements HED.

Frames are read like ``vidgen precompute`` read them: from ``--videos`` / ``--annotations``, the
clip's ``F`` frames at its recorded stride, resized and centre-cropped to the clip's frame size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.errors import ConfigError, DataError

HED_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)  # the Caffe HED's mean pixel (BGR, 0..255)
HED_LAYOUT = (
    'config.json ({"model_type": "vidgen-hed", "widths": [64, 128, 256, 512, 512]}) + model.safetensors'
)


def _stage(c_in: int, c_out: int, convs: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.MaxPool2d(2, 2)] if pool else []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, 1, 1), nn.ReLU(inplace=False)]
    return nn.Sequential(*layers)


class HED(nn.Module):
    """HED: five VGG-16 stages, a 1-channel score per stage, upsampled and fused (sigmoid)."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512, 512)):
        super().__init__()
        w = list(widths)
        if len(w) != 5:
            raise ConfigError(f"HED widths {w}: need 5 stage widths")
        # 1. VGG-16 stages (2, 2, 3, 3, 3 convolutions; max-pool before stages 2-5)
        self.netVggOne = _stage(3, w[0], 2, pool=False)
        self.netVggTwo = _stage(w[0], w[1], 2, pool=True)
        self.netVggThr = _stage(w[1], w[2], 3, pool=True)
        self.netVggFou = _stage(w[2], w[3], 3, pool=True)
        self.netVggFiv = _stage(w[3], w[4], 3, pool=True)
        # 2. side outputs and their fusion
        self.netScoreOne, self.netScoreTwo, self.netScoreThr, self.netScoreFou, self.netScoreFiv = (
            nn.Conv2d(c, 1, 1) for c in w
        )
        self.netCombine = nn.Sequential(nn.Conv2d(5, 1, 1), nn.Sigmoid())

    def forward(self, rgb: Tensor) -> Tensor:
        """rgb [N, 3, H, W] in [0, 1] -> edge probability [N, 1, H, W]."""
        x = rgb[:, [2, 1, 0]] * 255.0 - torch.tensor(HED_MEAN_BGR, device=rgb.device).view(1, 3, 1, 1)
        scores = []
        for stage, score in (
            (self.netVggOne, self.netScoreOne),
            (self.netVggTwo, self.netScoreTwo),
            (self.netVggThr, self.netScoreThr),
            (self.netVggFou, self.netScoreFou),
            (self.netVggFiv, self.netScoreFiv),
        ):
            x = stage(x)
            scores.append(F.interpolate(score(x), size=rgb.shape[-2:], mode="bilinear", align_corners=False))
        return self.netCombine(torch.cat(scores, dim=1))


def save_hed(model: HED, folder: str | Path) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    widths = [model.netScoreOne.in_channels, model.netScoreTwo.in_channels, model.netScoreThr.in_channels,
              model.netScoreFou.in_channels, model.netScoreFiv.in_channels]  # fmt: skip
    (folder / "config.json").write_text(json.dumps({"model_type": "vidgen-hed", "widths": widths}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder


def load_hed(folder: str | Path, device: str | torch.device = "cpu") -> HED:
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, weights = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise DataError(f"--hed {folder}: not a HED folder; expected {HED_LAYOUT}.")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if cfg.get("model_type") != "vidgen-hed":
        raise DataError(f"--hed {cfg_path}: model_type {cfg.get('model_type')!r}; expected {HED_LAYOUT}.")
    model = HED(tuple(cfg.get("widths", (64, 128, 256, 512, 512))))
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    if missing or unexpected:
        raise DataError(
            f"--hed {weights}: weights do not match the HED network (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); the parameter names are those of sniklaus/pytorch-hed."
        )
    return model.to(device).eval().requires_grad_(False)


class DepthModel:
    """A transformers depth model + its image processor from a local folder."""

    def __init__(self, folder: str | Path, device: str | torch.device = "cpu"):
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise DataError(
                f"--depth {folder}: no config.json; expected a transformers depth-estimation folder."
            )
        try:
            self.model = (
                AutoModelForDepthEstimation.from_pretrained(folder).to(device).eval().requires_grad_(False)
            )
            self.processor = AutoImageProcessor.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"--depth {folder}: cannot load a depth model and its image processor: {exc}"
            ) from None
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, frames: Tensor) -> Tensor:
        """uint8 frames [F, H, W, 3] -> relative inverse depth [F, H, W] in [0, 1] (1 = nearest)."""
        inputs = self.processor(images=list(frames.numpy()), return_tensors="pt").to(self.device)
        depth = self.model(**inputs).predicted_depth[:, None].float()  # [F, 1, h, w]
        depth = F.interpolate(depth, size=tuple(frames.shape[1:3]), mode="bicubic", align_corners=False)[:, 0]
        lo, span = depth.min(), depth.max() - depth.min()
        if span <= 0:  # a constant map carries no depth order
            return torch.zeros_like(depth).cpu()
        return ((depth - lo) / span).clamp(0, 1).cpu()


@torch.no_grad()
def hed_map(model: HED, frames: Tensor, batch: int = 8) -> Tensor:
    """uint8 frames [F, H, W, 3] -> HED edge map [F, H, W] in [0, 1]."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, frames.shape[0], batch):
        rgb = frames[i : i + batch].permute(0, 3, 1, 2).float().div(255).to(device)
        out.append(model(rgb)[:, 0].cpu())
    return torch.cat(out)


def clip_frames(record, frame_size: list[int], stride: int) -> Tensor:
    """The clip's frames as `vidgen precompute` selected them: uint8 [F, H, W, 3]."""
    from vidgen.data.precompute import _load_clip
    from vidgen.data.video_io import resize_crop

    f, h, w = frame_size
    clip, _, _ = _load_clip(record, f, stride)
    pixels, _, _ = resize_crop(clip, h, w)
    return pixels


def add_scene_signals(
    data: str | Path,
    videos: str | Path,
    annotations: str | Path,
    hed: str | Path | None = None,
    depth: str | Path | None = None,
    device: str = "cpu",
    overwrite: bool = False,
) -> dict[str, int]:
    """Write ``<key>/hed`` and / or ``<key>/depth`` for every sample of the shard dataset ``data``.

    Shard by shard, each tensors file rewritten atomically (resumable: a shard that already holds
    the maps is skipped). Existing maps are replaced only with ``overwrite``."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from vidgen.data.precompute import read_annotations
    from vidgen.data.shards import INDEX_FILE, read_index
    from vidgen.methods.jdm.combinations import _atomic_json

    if hed is None and depth is None:
        raise ConfigError("vidgen jdm signals: pass --hed DIR and / or --depth DIR (local model folders)")
    root = Path(data)
    index = read_index(root)
    records = {r.key: r for r in read_annotations(annotations, videos, check_files=False)}
    extractors = {}
    if hed is not None:
        model = load_hed(hed, device)
        extractors["hed"] = lambda frames: hed_map(model, frames)
    if depth is not None:
        extractors["depth"] = DepthModel(depth, device)
    written = skipped = 0
    for shard in index["shards"]:
        path = root / shard["tensors"]
        with safe_open(str(path), framework="pt") as fh:
            names = set(fh.keys())
        have = {n for n in extractors if all(f"{k}/{n}" in names for k in shard["keys"])}
        todo = {n: e for n, e in extractors.items() if overwrite or n not in have}
        if not todo:  # done by an earlier (interrupted) run
            skipped += len(shard["keys"])
            continue
        anns = json.loads((root / shard["annotations"]).read_text(encoding="utf-8"))  # a list, one per key
        tensors = load_file(str(path))
        for ann in anns:
            key = ann["key"]
            if key not in records:
                raise DataError(
                    f"{annotations}: no line for sample {key!r} of {root}. Fix: pass the annotations the dataset "
                    "was precomputed from (--annotations)."
                )
            stride = int((ann.get("micro") or {}).get("stride") or 1)
            frames = clip_frames(records[key], ann["frame_size"], stride)
            for name, extract in todo.items():
                if f"{key}/{name}" in names and not overwrite:
                    raise DataError(
                        f"{path}: sample {key!r} already has a {name} map; pass --overwrite to replace it."
                    )
                tensors[f"{key}/{name}"] = extract(frames).float().contiguous()
            written += 1
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        save_file(tensors, str(tmp), {"format": "vidgen-shards", "version": "1"})
        os.replace(tmp, path)
    fields = set(index.get("fields", [])) | {f"regions.{n}" for n in extractors}
    from vidgen.data.sample import FIELDS

    _atomic_json(root / INDEX_FILE, {**read_index(root), "fields": sorted(fields, key=FIELDS.index)})
    return {"written": written, "skipped": skipped}
