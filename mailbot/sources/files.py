"""Import source: .eml files, mbox files and Maildir folders fed through the same intake."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from mailbot.intake import accept
from mailbot.store import Store


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def _is_mbox(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(5) == b"From "


def messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(source reference, raw bytes) for every message under a path."""
    if _is_maildir(path):
        maildir = mailbox.Maildir(path, create=False)
        for key in sorted(maildir.keys()):
            yield f"{path}#{key}", maildir.get_bytes(key)
    elif path.is_dir():
        for child in sorted(path.iterdir()):
            if not child.name.startswith("."):
                yield from messages(child)
    elif path.is_file():
        if _is_mbox(path):
            mbox = mailbox.mbox(path, create=False)
            for key in mbox.keys():  # noqa: SIM118 - mailbox has no plain iteration over keys
                yield f"{path}#{key}", mbox.get_bytes(key)
        else:
            yield str(path), path.read_bytes()


def import_paths(
    store: Store, paths: list[Path], *, no_replies: bool = False, now: datetime | None = None
) -> tuple[int, int]:
    """Store every message found; returns (new, already known)."""
    new = known = 0
    for path in paths:
        for ref, raw in messages(path):
            _, is_new = accept(
                store,
                raw,
                source="import",
                now=now or datetime.now(UTC),
                source_ref=ref,
                no_replies=no_replies,
            )
            new += is_new
            known += not is_new
    return new, known
