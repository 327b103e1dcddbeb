"""Opening a run folder for training: every check before the first byte is written.

`open_run(cfg)` (a context manager, held for the life of the run):
1. run.dir must be a folder we can write (not a file, not read-only);
2. global rank 0 takes the folder's exclusive lock (vidgen.run_lock);
3. removes what killed writes left (`.<name>.<pid>.tmp` of dead pids) and keeps one checkpoint
   per step (`step=7-v1.ckpt` -> `step=7.ckpt`);
4. picks the checkpoint to resume from, skipping a damaged one (vidgen.checkpoints), and refuses
   one of another method/backbone, or a config that differs in a non-resumable key
   (vidgen.run_config);
5. reads metrics.csv / eval.csv, so a damaged file stops the run before training starts.
Nothing is written until `RunFolder.write_config`, called once the whole run is built. A command
that fails before that leaves the folder as it found it (a folder it created is removed again).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vidgen import csv_table
from vidgen.checkpoints import check_matches, resume_checkpoint
from vidgen.errors import VidgenError
from vidgen.run_config import check_resume_config, write_config
from vidgen.run_lock import LOCK_FILE, RunLock

TEMP_FILE = re.compile(r"^\..+\.(\d+)\.tmp$")  # written by runs._atomic_write_text / AtomicCheckpointIO
VERSIONED = re.compile(r"^(?P<stem>.+)-v\d+\.ckpt$")  # Lightning's name for a second file of one step


class RunFolderError(VidgenError):
    """run.dir cannot hold a run (a file, read-only, ...)."""


@dataclass
class RunFolder:
    dir: Path
    checkpoint: Path | None = None
    accepted_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    config_written: bool = False

    def write_config(self, cfg: DictConfig) -> None:
        """The first write of the run: config.yaml (and config.resume-N.yaml for accepted changes)."""
        from vidgen.runs import _atomic_write_text, is_global_zero

        if is_global_zero():
            write_config(self.dir, cfg, self.accepted_changes, _atomic_write_text)
        self.config_written = True


def check_writable_dir(path: Path, what: str) -> None:
    """`path` is, or can become, a folder this process can write into; else a RunFolderError."""
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{what}={path} is a file, not a folder; give a folder path")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise RunFolderError(
            f"{what}={path}: {probe} is a file, so the folder cannot be created; give another path"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunFolderError(
            f"{what}={path}: {probe} is not writable (permission denied); give a writable path"
        )


def writer_is_dead(pid: int) -> bool:
    """No process of this pid on this host: a temp file it named is a leftover."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()


def remove_dead_temp(folder: Path, pattern: str = ".*.tmp") -> list[str]:
    """Remove `.<name>.<pid>.tmp` files/folders in `folder` whose writer is dead; their names."""
    gone = []
    for path in folder.glob(pattern) if folder.is_dir() else ():
        m = TEMP_FILE.match(path.name)
        if m and writer_is_dead(int(m.group(1))):
            _remove(path)
            gone.append(path.name)
    return gone


def clean_leftovers(run_dir: Path) -> list[str]:
    """Remove temp files of dead writers; fold `<stem>-vN.ckpt` into `<stem>.ckpt` (newest kept).

    Runs under the folder's lock, so no live run of this folder writes here. Returns what it did.
    """
    ckpts = run_dir / "checkpoints"
    done = [f"removed {name}" for folder in (run_dir, ckpts) for name in remove_dead_temp(folder)]
    versions: dict[str, list[Path]] = {}
    for path in ckpts.glob("*-v*.ckpt") if ckpts.is_dir() else ():
        m = VERSIONED.match(path.name)
        if m:
            versions.setdefault(m.group("stem"), []).append(path)
    for stem, copies in versions.items():
        plain = ckpts / f"{stem}.ckpt"
        copies = sorted([*copies, *([plain] if plain.exists() else [])], key=lambda p: p.stat().st_mtime_ns)
        newest = copies[-1]
        if newest != plain:
            if plain.exists():
                _remove(plain)
            os.replace(newest, plain)
        for extra in copies[:-1]:
            if extra != plain:
                _remove(extra)
        done.append(f"kept one {stem}.ckpt of {len(copies)}")
    return done


def _check_tables(run_dir: Path) -> None:
    from vidgen.eval.callback import EVAL_FILE
    from vidgen.runs import METRICS_FILE

    for name in (METRICS_FILE, EVAL_FILE):
        csv_table.read_rows(run_dir / name)  # a damaged file: DataError naming line and fix


@contextlib.contextmanager
def open_run(cfg: DictConfig, rank_zero: bool = True) -> Iterator[RunFolder]:
    run_dir = Path(cfg.run.dir)
    check_writable_dir(run_dir, "run.dir")
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)  # for the lock; checkpoints/ comes with the first save
    lock = RunLock(run_dir)
    run = RunFolder(run_dir)
    try:
        if rank_zero:
            lock.acquire()
            for line in clean_leftovers(run_dir):
                print(f"run folder {run_dir}: {line}")
        ckpt, contents = resume_checkpoint(run_dir, quiet=not rank_zero)
        run.checkpoint = ckpt
        if ckpt is not None:
            run.accepted_changes = check_resume_config(run_dir, cfg)  # lists every differing key
            if contents is not None:
                hint = f"resume with the config this run was trained with (see {run_dir}/config.yaml)"
                check_matches(contents, cfg, ckpt, hint)
            del contents
        if rank_zero:
            _check_tables(run_dir)
        yield run
    finally:
        lock.release()
        if created and not run.config_written and rank_zero:
            _remove_if_untouched(run_dir)


def _remove_if_untouched(run_dir: Path) -> None:
    """Undo the folder this command created, if nothing but the lock is in it."""
    with contextlib.suppress(OSError):
        if {p.name for p in run_dir.iterdir()} <= {LOCK_FILE}:
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            run_dir.rmdir()
