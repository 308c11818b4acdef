"""The daemon's lock on its data directory: one daemon per directory, and `restore` sees it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "daemon.lock"


class Locked(Exception):
    """Another process (a running daemon, a restore) holds the data directory."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"{path} is held by process {pid or '?'}")
        self.path = path
        self.pid = pid


def acquire(data_dir: Path) -> int:
    """Lock `data_dir` for this process (released when the fd closes or the process dies)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = ""
        with contextlib.suppress(OSError):
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise Locked(path, pid) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release(fd: int) -> None:
    os.close(fd)
