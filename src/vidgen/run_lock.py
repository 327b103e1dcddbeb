"""An exclusive lock on a run folder for the life of a run: two trainings never share one folder.

`fcntl.flock` on `<run.dir>/.lock`, held by global rank 0 until the run ends. The kernel drops it
when the holder dies (kill -9, node reboot; on NFS when the lease expires), so a stale lock is
taken over without any clean-up: a requeued SLURM job starts after the old one's process is gone.
The file records who holds it (pid, host, start time) for the error the second process prints.
(The `filelock` package takes the same flock, but cannot say who holds it.)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from vidgen.errors import VidgenError

LOCK_FILE = ".lock"


class RunFolderBusy(VidgenError):
    """Another live process trains in this run folder."""


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderBusy(
                f"run folder {self.path.parent} is in use by {self.holder()}; wait for that run to end "
                "(or stop it), or train in another folder (run.dir=...)"
            ) from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd = fd
        return self

    def holder(self) -> str:
        try:
            who = json.loads(self.path.read_text())
            return f"pid {who['pid']} on host {who['host']} (since {who['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (removing it would race)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
