"""Structured logging: one line per event (logfmt or JSON), UTC times, addresses redacted.

The daemon logs to stdout (journald keeps it), other commands to stderr, so that what a
command prints stays its output. `[logging] addresses` decides how email addresses appear in
every line: as they are, as `***@domain`, or as a short keyed hash (`#3f2a9c1b7d@domain`)
that stays the same for one address on one install. Message-IDs are kept as they are: they
name messages, not people.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import TextIO

from mailbot.config import Config

# Attributes every LogRecord has; anything else was passed with `extra=` and is printed.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Fields that hold Message-IDs: `<id@host>` looks like an address but names a message.
MESSAGE_ID_FIELDS = frozenset({"message_id", "in_reply_to", "references"})
ADDRESS_RE = re.compile(r"([^\s<>()\[\]{},;:\"'@]+)@([\w-]+(?:\.[\w-]+)+)")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}  # fmt: skip

Redact = Callable[[str], str]


def _full(text: str) -> str:
    return text


def _domain_only(text: str) -> str:
    if "@" not in text:
        return text
    return ADDRESS_RE.sub(lambda match: "***@" + match.group(2).lower(), text)


def hashed_addresses(key: bytes) -> Redact:
    """Addresses as `#<10 hex>@domain`: HMAC-SHA256 of the lower-cased address with `key`."""

    def pseudonym(match: re.Match[str]) -> str:
        address = match.group(0).lower().encode()
        digest = hmac.new(key, b"log-address\0" + address, hashlib.sha256).hexdigest()
        return f"#{digest[:10]}@{match.group(2).lower()}"

    def redact(text: str) -> str:
        return ADDRESS_RE.sub(pseudonym, text) if "@" in text else text

    return redact


def _value(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class StructuredFormatter(logging.Formatter):
    """`time=… level=info logger=mailbot.worker msg=processed ticket=12 message_id=<…>`.

    `json=True` writes the same fields as one JSON object per line.
    """


    def __init__(self, *, json_lines: bool = False, redact: Redact = _full) -> None:
        super().__init__()
        self.json_lines = json_lines
        self.redact = redact

    def converter(self, seconds: float | None) -> time.struct_time:
        return time.gmtime(seconds)  # one time zone throughout: UTC

    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        redact = self.redact
        fields: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD or value is None:
                continue
            if key not in MESSAGE_ID_FIELDS and not isinstance(value, int | float):
                value = redact(str(value))
            fields[key] = value
        if record.exc_info:
            fields["error"] = redact(self.formatException(record.exc_info))
        return fields

    def format(self, record: logging.LogRecord) -> str:
        fields = self.fields(record)
        if self.json_lines:
            return json.dumps(fields, ensure_ascii=False, default=str)
        return " ".join(f"{key}={_value(value)}" for key, value in fields.items())


class _StandardStream(logging.StreamHandler):
    """Writes to sys.stdout or sys.stderr as they are at the time of writing."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name_of_stream = name

    @property
    def stream(self) -> TextIO:
        return getattr(sys, self.name_of_stream)

    @stream.setter
    def stream(self, value: TextIO) -> None:  # set by StreamHandler.__init__; ignored
        pass


def _redactor(cfg: Config | None) -> Redact:
    mode = cfg.logging.addresses if cfg else "domain"
    if mode == "full":
        return _full
    if mode == "hash" and cfg is not None:
        from mailbot.tokens import load_secret

        return hashed_addresses(load_secret(cfg.mailbot.data_dir))
    return _domain_only


def setup(cfg: Config | None = None, stream: str = "stdout") -> None:
    """Log as `[logging]` says to sys.`stream` ("stdout" or "stderr").

    Handlers set up by others (e.g. a test runner's) are left in place; ours is replaced.
    """
    handler = _StandardStream(stream)
    handler.setFormatter(
        StructuredFormatter(
            json_lines=bool(cfg and cfg.logging.format == "json"), redact=_redactor(cfg)
        )
    )
    handler._mailbot = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_mailbot", False)]
    root.addHandler(handler)
    root.setLevel(LEVELS[cfg.logging.level] if cfg else logging.INFO)
    # Library chatter (aiosmtpd per-connection lines, APScheduler job runs) stays out of INFO.
    for noisy in ("mail.log", "apscheduler", "imapclient"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
