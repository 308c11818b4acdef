"""Files and directories under the data directory: private to mailbot whatever the umask."""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> None:
    """Create `path` and any missing parents with mode 0700 (existing ones stay as they are).

    `Path.mkdir(parents=True)` gives the parents it creates the umask's mode, and mode= is
    itself masked by the umask; chmod after creating makes 0700 exact.
    """
    if path.is_dir():
        return
    if not path.parent.is_dir():
        private_dir(path.parent)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return  # another process made it meanwhile
    path.chmod(DIR_MODE)


def tighten(path: Path) -> None:
    """An existing data directory made 0700 if mailbot owns it: it holds customers' mail.

    systemd's StateDirectory= and `install -d` create 0755 unless told otherwise.
    """
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        path.chmod(DIR_MODE)


def write_private(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Write `data` to a new file `path` with mode 0600 (replacing what was there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), FILE_MODE)  # an existing file keeps its mode on O_CREAT
        handle.write(data)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())
