"""Reading checkpoints: the one loader that resume, `vidgen sample` and `vidgen export` share.

`load_checkpoint` never unpickles (a PyTorch zip file is read with `weights_only=True`; a DeepSpeed
ZeRO folder is consolidated by Lightning's converter) and turns every failure into a
`CheckpointError` that names the file and says what to do. `resume_checkpoint` picks the newest
loadable checkpoint of a run folder, skipping a damaged one with a warning.
"""

from __future__ import annotations

import pickle
import re
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from vidgen.errors import VidgenError

WRITTEN_BY = "a checkpoint written by `vidgen train` (a .ckpt file, or a DeepSpeed checkpoint folder)"


class CheckpointError(VidgenError):
    """A checkpoint cannot be used: missing, damaged, not a vidgen checkpoint, or another run's."""


def _load_zero_folder(path: Path) -> Any:
    try:
        from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict
    except ImportError as err:  # deepspeed missing
        raise CheckpointError(f"{path} is a DeepSpeed (ZeRO) checkpoint folder; {err}") from None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "consolidated.ckpt"
        try:
            convert_zero_checkpoint_to_fp32_state_dict(str(path), str(out))
        except Exception as err:
            raise CheckpointError(
                f"{path} is a folder but not a readable DeepSpeed checkpoint ({type(err).__name__}: "
                f"{str(err)[:200]}); pass {WRITTEN_BY}"
            ) from None
        # the converter pickles a few non-tensor objects (e.g. the DeepSpeed config) into the file it
        # just wrote from the folder's own files
        return torch.load(out, map_location="cpu", weights_only=False)


def _load_file(path: Path, mmap: bool) -> Any:
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a readable checkpoint: it is not a complete PyTorch checkpoint file (truncated by a "
            f"killed write or a full disk, or another kind of file), so it was not loaded. Use {WRITTEN_BY}"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        found = re.search(r"(?:Unsupported global|Unsupported operand)[^\n]*?(GLOBAL [\w.]+|\d+)", str(err))
        what = f" ({found.group(0)})" if found else ""
        raise CheckpointError(
            f"{path} is not a vidgen checkpoint: it holds Python objects a checkpoint never contains{what}, "
            f"so it was not loaded. Use {WRITTEN_BY}"
        ) from None
    except Exception as err:
        first = str(err).split(". ")[0][:200]
        raise CheckpointError(
            f"{path} cannot be read as a checkpoint ({type(err).__name__}: {first}); use {WRITTEN_BY}"
        ) from None


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """A Lightning checkpoint dict (with `state_dict`) from a file or a ZeRO folder; never unpickles.

    `mmap=True` maps the tensors instead of reading them: a cheap check that a file is loadable.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; pass {WRITTEN_BY}")
    checkpoint = _load_zero_folder(path) if path.is_dir() else _load_file(path, mmap)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} has no 'state_dict': it is not a Lightning checkpoint; use {WRITTEN_BY}"
        )
    return checkpoint


def check_matches(checkpoint: dict[str, Any], cfg: Any, path: str | Path, hint: str) -> None:
    """Refuse a checkpoint of another method / backbone / size than `cfg` (recorded by DiffusionModule)."""
    saved = checkpoint.get("vidgen") or {}
    now = {"method": cfg.method.name, "backbone": cfg.backbone.name, "backbone_size": cfg.backbone.size}
    differ = {k: (saved[k], v) for k, v in now.items() if k in saved and saved[k] != v}
    if differ:
        listing = ", ".join(f"{k}={a} (this config: {b})" for k, (a, b) in differ.items())
        exp = f" of exp={saved['exp']}" if saved.get("exp") else ""
        raise CheckpointError(f"{path} is a checkpoint{exp} with {listing}; {hint}")


def load_matching_state(
    module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, hint: str
) -> None:
    """`module.load_state_dict(state, strict=True)`, a mismatch reported as a CheckpointError."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines()[1:4] if ln.strip()]
        raise CheckpointError(
            f"{path} does not fit the model of this config ({' '.join(lines)[:400]}); {hint}"
        ) from None


def resume_checkpoint(run_dir: Path, quiet: bool = False) -> tuple[Path | None, dict[str, Any] | None]:
    """The newest loadable checkpoint of a run folder and its (memory-mapped) contents.

    Order: checkpoints/last.ckpt and SLURM's hpc_ckpt_N.ckpt (newest first), then checkpoints/step=N.ckpt
    (highest N first). A damaged one is skipped with a warning naming it; if every one is damaged,
    a CheckpointError lists them.
    """
    run_dir = Path(run_dir)
    ckpts = run_dir / "checkpoints"
    latest = [p for p in (ckpts / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")) if p.exists()]
    latest.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    steps = {p: re.fullmatch(r"step=(\d+)", p.stem) for p in ckpts.glob("step=*.ckpt")}
    periodic = sorted((p for p, m in steps.items() if m), key=lambda p: int(steps[p].group(1)), reverse=True)
    bad: list[str] = []
    for path in [*latest, *periodic]:
        if path.is_dir():
            return path, None  # a DeepSpeed folder: Lightning's DeepSpeed strategy reads it
        try:
            checkpoint = load_checkpoint(path, mmap=True)
        except CheckpointError as err:
            bad.append(str(err))
            continue
        if bad and not quiet:
            print(f"warning: {' '.join(bad)}\nwarning: resuming from {path} instead", file=sys.stderr)
        return path, checkpoint
    if bad:
        raise CheckpointError(
            f"no loadable checkpoint in {ckpts}: {' '.join(bad)} Move the damaged files aside to start the run "
            "from scratch, or restore a checkpoint"
        )
    return None, None
