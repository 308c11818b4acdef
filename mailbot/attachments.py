"""Attachment files on disk under generated, content-addressed names; display names sanitised."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

from mailbot.files import private_dir, write_private

MAX_NAME = 120
# Bidirectional overrides and other format characters can disguise "gpj.exe" as "exe.jpg".
UNSAFE_RE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
# Line and paragraph separators would start a line of their own in a notice's file list.
SPACE_RE = re.compile(r"[\s\u2028\u2029]+")
# Names Windows keeps for devices, with any extension: saving "CON.txt" fails or worse.
DEVICE_RE = re.compile(r"^(?:con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(?:\.|$)", re.IGNORECASE)


def safe_filename(name: str, fallback: str = "attachment") -> str:
    """A display name that is never a path and never hides its real extension."""
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in {"Cf", "Cc", "Cs"})
    name = UNSAFE_RE.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = SPACE_RE.sub(" ", name).strip(" .")
    if not name:
        return fallback
    if DEVICE_RE.match(name):
        name = f"_{name}"
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot else ""
        name = (stem if dot else name)[: MAX_NAME - len(ext) - 1].rstrip(" .") + (
            f".{ext}" if ext else ""
        )
    return name


def save(data_dir: Path, data: bytes) -> tuple[str, str]:
    """Store the bytes under their SHA-256; returns (relative path, sha256). Idempotent."""
    digest = hashlib.sha256(data).hexdigest()
    rel = f"attachments/{digest[:2]}/{digest}"
    path = data_dir / rel
    if not path.exists():
        private_dir(path.parent)
        tmp = path.with_name(f".{digest}.{os.getpid()}.tmp")
        write_private(tmp, data)
        os.replace(tmp, path)
    return rel, digest
