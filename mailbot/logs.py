"""Structured logging: one line per event as `key=value` pairs, to stdout (journald keeps it)."""

from __future__ import annotations

import logging
import sys

# Attributes every LogRecord has; anything else was passed with `extra=` and is printed.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _value(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    """`time=… level=info logger=mailbot.worker msg=processed ticket=12 message_id=<…>`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD and value is not None
        )
        line = " ".join(f"{key}={_value(value)}" for key, value in fields.items())
        if record.exc_info:
            line += " error=" + _value(self.formatException(record.exc_info))
        return line


def setup(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (aiosmtpd per-connection lines, APScheduler job runs) stays out of INFO.
    for noisy in ("mail.log", "apscheduler", "imapclient"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
