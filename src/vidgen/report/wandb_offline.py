"""Read a W&B run file (`run-<id>.wandb`) without a server.

wandb >= 0.19 writes runs through its Go core; an offline run leaves
`wandb/offline-run-<date>-<id>/run-<id>.wandb` and, unlike online runs, no `files/config.yaml`
or `files/wandb-summary.json` (checked with wandb 0.31). The `.wandb` file is W&B's transaction
log: a 7-byte header (b":W&B", magic 0xBEE1, version 0), then LevelDB-log records in 32 KiB
blocks (7-byte record header: crc32, length, type FULL/FIRST/MIDDLE/LAST), each a serialized
`wandb.proto.wandb_internal_pb2.Record`. The Python reader that wandb shipped for it
(`wandb.sdk.internal.datastore`) is gone from 0.31, so this is a small reimplementation using
wandb's own protobuf classes. It is what `wandb sync` uploads, so a run read here is the run
the W&B API would return after syncing.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = struct.Struct("<4sHB")  # ident, magic, version
RECORD = struct.Struct("<IHB")  # crc32, length, type
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    path: Path
    run_id: str = ""
    name: str = ""
    project: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    started: float | None = None
    exit_code: int | None = None  # None: the run never finished (crashed or still running)
    commit: str = ""

    @property
    def state(self) -> str:
        """W&B's run state: finished / failed / crashed-or-running."""
        if self.exit_code is None:
            return "crashed"
        return "finished" if self.exit_code == 0 else "failed"


def iter_records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if len(data) < HEADER.size or HEADER.unpack_from(data)[0] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    pos, chunks = HEADER.size, b""
    while pos + RECORD.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < RECORD.size:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = RECORD.unpack_from(data, pos)
        if kind == 0 and length == 0:  # zero padding up to the next block
            pos += left
            continue
        chunk = data[pos + RECORD.size: pos + RECORD.size + length]
        pos += RECORD.size + length
        chunks = chunk if kind in (FULL, FIRST) else chunks + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(chunks)
            yield record


def _set(target: dict[str, Any], item) -> None:
    keys = list(item.nested_key) or [item.key]
    value = json.loads(item.value_json)
    for k in keys[:-1]:
        target = target.setdefault(k, {})
    target[keys[-1]] = value


def read_run(path: str | Path) -> OfflineRun:
    """Config, summary (latest values), history rows and exit state of one `.wandb` file."""
    run = OfflineRun(Path(path))
    for rec in iter_records(run.path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.run_id, run.name, run.project = r.run_id, r.display_name, r.project
            run.started = r.start_time.seconds + r.start_time.nanos / 1e9 if r.HasField("start_time") else None
            run.commit = r.git.commit if r.HasField("git") else ""
            for item in r.config.update:
                _set(run.config, item)
            for item in r.summary.update:
                _set(run.summary, item)
        elif kind == "config":
            for item in rec.config.update:
                _set(run.config, item)
        elif kind == "summary":
            for item in rec.summary.update:
                _set(run.summary, item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in rec.history.item:
                _set(row, item)
            run.history.append(row)
        elif kind == "exit":
            run.exit_code = int(rec.exit.exit_code)
    return run


def find_runs(root: str | Path) -> list[Path]:
    """Every `run-*.wandb` below root (run folders keep theirs under wandb/offline-run-*/)."""
    return sorted(Path(root).rglob("run-*.wandb"))
