"""Backups: a consistent online copy, restore into a stopped install, and an integrity check.

A backup is a directory: `mailbot.sqlite3` (SQLite's online backup, one snapshot, taken while
the daemon runs), `attachments/` (every file that snapshot refers to, checked against its
SHA-256 as it is copied), `secret.key` (the install's secret: tokens in mail already sent
stay valid after a restore) and `backup.json` (what was copied). It holds customers' mail and
the secret, so it is written 0700/0600: keep it as safe as the data directory itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mailbot import datalock
from mailbot.config import Config
from mailbot.context import database_path
from mailbot.store import Store

DATABASE = "mailbot.sqlite3"
MANIFEST = "backup.json"
SECRET = "secret.key"
CHUNK = 1 << 20


class BackupError(Exception):
    """The backup, restore or check cannot go on; the text says why and what to do."""


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _copy_file(source: Path, target: Path, mode: int = 0o600) -> str:
    """Copy through a temporary name, fsynced; returns the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with open(source, "rb") as reader, os.fdopen(fd, "wb") as writer:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, target)
    return digest.hexdigest()


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def backup(cfg: Config, target: Path) -> Outcome:
    """Copy the database, its attachments and the secret into the new directory `target`."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} exists and is not empty: back up into a new directory")
    data_dir = cfg.mailbot.data_dir
    if not database_path(cfg).exists():
        raise BackupError(f"no database in {data_dir}: nothing to back up")
    _private_dir(target)
    copy = target / DATABASE
    live = Store(database_path(cfg), migrate=False)
    try:
        live.backup_to(copy)
    finally:
        live.close()
    os.chmod(copy, 0o600)
    outcome = Outcome()
    snapshot = Store(copy, migrate=False, wal=False)
    try:
        files = snapshot.attachments.files()
        tickets, inbound = snapshot.count("tickets"), snapshot.count("inbound")
    finally:
        snapshot.close()
    copied = 0
    for row in files:
        source, dest = data_dir / row["path"], target / row["path"]
        _private_dir(dest.parent)
        try:
            digest = _copy_file(source, dest)
        except FileNotFoundError:
            outcome.problems.append(f"{row['path']}: missing in {data_dir}")
            continue
        if digest != row["sha256"]:
            outcome.problems.append(f"{row['path']}: content does not match its SHA-256")
        copied += 1
    if (data_dir / SECRET).exists():
        _copy_file(data_dir / SECRET, target / SECRET)
    manifest = {
        "format": 1,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_dir": str(data_dir),
        "tickets": tickets,
        "inbound": inbound,
        "attachments": copied,
        "problems": outcome.problems,
    }
    fd = os.open(target / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    for directory in {target, *(p.parent for p in target.glob("attachments/*/*"))} | {
        p for p in (target / "attachments",) if p.is_dir()
    }:
        _fsync_dir(directory)
    outcome.lines.append(
        f"{target}: {tickets} tickets, {inbound} inbound messages, {copied} attachment files"
    )
    return outcome


def _in_use(data_dir: Path) -> list[str]:
    """What a restore would overwrite: a database, attachment files."""
    found = [name for name in (DATABASE, f"{DATABASE}-wal") if (data_dir / name).exists()]
    attachments = data_dir / "attachments"
    if attachments.is_dir() and any(p.is_file() for p in attachments.rglob("*")):
        found.append("attachments/")
    return found


def restore(cfg: Config, source: Path, *, force: bool = False) -> Outcome:
    """Put a backup in place of the data directory's database, attachments and secret.

    Refused while a daemon holds the data directory, and over an existing database unless
    `force`. The backup is checked first; nothing is touched when it is unsound.
    """
    copy = source / DATABASE
    if not copy.is_file() or not (source / MANIFEST).is_file():
        raise BackupError(f"{source} is not a mailbot backup (no {DATABASE} and {MANIFEST})")
    checked = Store(copy, migrate=False, wal=False)
    try:
        problems = checked.integrity_problems()
        files = checked.attachments.files()
    finally:
        checked.close()
    if problems:
        raise BackupError(f"{copy} is damaged: {'; '.join(problems[:5])}")
    data_dir = cfg.mailbot.data_dir
    try:
        lock = datalock.acquire(data_dir)
    except datalock.Locked as exc:
        raise BackupError(
            f"mailbot is running on {data_dir} (process {exc.pid or '?'}): stop it first"
        ) from exc
    try:
        in_use = _in_use(data_dir)
        if in_use and not force:
            raise BackupError(
                f"{data_dir} already holds {', '.join(in_use)}: restore into an empty data"
                " directory, or add --force to replace them"
            )
        outcome = Outcome()
        for row in files:
            src, dest = source / row["path"], data_dir / row["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                digest = _copy_file(src, dest, 0o640)
            except FileNotFoundError:
                outcome.problems.append(f"{row['path']}: not in the backup")
                continue
            if digest != row["sha256"]:
                outcome.problems.append(f"{row['path']}: content does not match its SHA-256")
        if (source / SECRET).exists():
            _copy_file(source / SECRET, data_dir / SECRET)
        target = database_path(cfg)
        staged = target.with_name(f".{DATABASE}.restoring")
        _copy_file(copy, staged, 0o640)
        # A WAL left by the old database must never be applied to the restored one.
        for leftover in (f"{DATABASE}-wal", f"{DATABASE}-shm", f"{DATABASE}-journal"):
            with contextlib.suppress(FileNotFoundError):
                (data_dir / leftover).unlink()
        os.replace(staged, target)
        _fsync_dir(data_dir)
        restored = Store(target)  # a backup of an older mailbot gets this one's migrations
        try:
            tickets, inbound = restored.count("tickets"), restored.count("inbound")
        finally:
            restored.close()
        outcome.lines.append(
            f"{data_dir}: restored {tickets} tickets, {inbound} inbound messages,"
            f" {len(files)} attachment files from {source}"
        )
        return outcome
    finally:
        datalock.release(lock)


def verify(cfg: Config) -> Outcome:
    """Database integrity, every raw message and attachment file against its SHA-256."""
    outcome = Outcome()
    data_dir = cfg.mailbot.data_dir
    if not database_path(cfg).exists():
        raise BackupError(f"no database in {data_dir}")
    store = Store(database_path(cfg), migrate=False)
    try:
        problems = store.integrity_problems()
        outcome.problems += [f"database: {p}" for p in problems]
        if not problems:
            outcome.lines.append("database: integrity and foreign keys ok")
        checked, removed, last = 0, 0, 0
        while rows := store.inbound.hashes(last, 500):
            for row in rows:
                last = row["id"]
                raw = store.inbound.raw(row["id"])
                if raw == b"" and row["size"]:
                    removed += 1  # erased by retention or `customer forget`: hash and size stay
                    continue
                if raw is None or hashlib.sha256(raw).hexdigest() != row["sha256"]:
                    outcome.problems.append(
                        f"inbound {row['id']}: raw bytes do not match their SHA-256"
                    )
                checked += 1
        outcome.lines.append(
            f"inbound: {checked} messages checked against their SHA-256"
            + (f" ({removed} removed as personal data, not checked)" if removed else "")
        )
        files = store.attachments.files()
    finally:
        store.close()
    for row in files:
        path = data_dir / row["path"]
        try:
            digest = _file_hash(path)
        except FileNotFoundError:
            outcome.problems.append(f"attachment {row['path']}: missing")
            continue
        if digest != row["sha256"]:
            outcome.problems.append(f"attachment {row['path']}: does not match its SHA-256")
    outcome.lines.append(f"attachments: {len(files)} files checked against their SHA-256")
    return outcome

