"""The transactional outbox's delivery: due rows to the transport, with retries and backoff.

Rows are written by `mailbot.writer` in the same transaction as the change that caused them,
with their final Message-ID. Delivery takes due
rows one at a time and marks each sent in its own commit right after the transport accepted it,
so a crash can at worst resend the one message in flight (the Maildir transport not even that).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from sqlite3 import Row
from typing import Protocol

from mailbot import loops, retry
from mailbot.config import Config
from mailbot.context import Context
from mailbot.files import private_dir, write_private
from mailbot.mail import compose
from mailbot.store import to_db

log = logging.getLogger("mailbot.outbox")

BACKOFF_BASE = 30.0  # seconds before the first retry
BACKOFF_CAP = 3600.0  # never wait longer than an hour between attempts


class DeliveryError(Exception):
    """Delivery failed; `permanent` says whether retrying can help."""

    def __init__(self, text: str, *, permanent: bool) -> None:
        super().__init__(text)
        self.permanent = permanent


# -- transports --------------------------------------------------------------------------------


class Transport(Protocol):
    def send(self, key: str, envelope_from: str, recipients: list[str], data: bytes) -> None: ...

    def close(self) -> None: ...


class MaildirTransport:
    """Writes each message as a file in a Maildir's new/ (tmp → fsync → rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for sub in ("tmp", "new", "cur"):
            private_dir(path / sub)  # copies of mail to customers: mailbot's alone

    def send(self, key: str, envelope_from: str, recipients: list[str], data: bytes) -> None:
        name = f"{key}.mailbot"
        final = self.path / "new" / name
        if final.exists() or (self.path / "cur" / f"{name}:2,").exists():
            return  # delivered before a crash prevented marking the row: never twice
        tmp = self.path / "tmp" / name
        write_private(tmp, data, sync=True)
        os.rename(tmp, final)
        dir_fd = os.open(self.path / "new", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        pass


class _StaleConnection(Exception):
    """A kept connection was found closed (relays drop idle clients); try a new one once."""


class SmtpTransport:
    """Hands messages to an SMTP relay over one kept connection (reconnecting when stale)."""

    def __init__(self, cfg: Config) -> None:
        self.out = cfg.outbound
        self._smtp: smtplib.SMTP | None = None
        self._tls: ssl.SSLContext | None = None

    def _context(self) -> ssl.SSLContext:
        """Built once (loading CA certificates costs ~20 ms), and only when TLS is used."""
        if self._tls is None:
            cafile = str(self.out.cafile) if self.out.cafile else None
            self._tls = ssl.create_default_context(cafile=cafile)
        return self._tls

    def _connect(self) -> smtplib.SMTP:
        out = self.out
        context = self._context() if out.ssl or out.starttls else None
        smtp: smtplib.SMTP
        if out.ssl:
            smtp = smtplib.SMTP_SSL(out.host, out.port, timeout=out.timeout, context=context)
        else:
            smtp = smtplib.SMTP(out.host, out.port, timeout=out.timeout)
            if out.starttls:
                smtp.starttls(context=context)
        if out.username:
            smtp.login(out.username, out.password.read() or "")
        return smtp

    def send(self, key: str, envelope_from: str, recipients: list[str], data: bytes) -> None:
        if self._smtp is not None:
            try:
                self._deliver(envelope_from, recipients, data)
                return
            except _StaleConnection:
                self.close()  # the relay closed our kept connection meanwhile: one new try
        self._smtp = None
        try:
            self._smtp = self._connect()
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self.close()
            raise DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False) from exc
        try:
            self._deliver(envelope_from, recipients, data)
        except _StaleConnection as exc:
            self.close()
            raise DeliveryError(f"connection lost: {exc}", permanent=False) from exc

    def _deliver(self, envelope_from: str, recipients: list[str], data: bytes) -> None:
        assert self._smtp is not None
        try:
            options = []
            if not data.isascii():  # e.g. a customer's 8-bit message carried as message/rfc822
                self._smtp.ehlo_or_helo_if_needed()
                if self._smtp.has_extn("8bitmime"):
                    options.append("BODY=8BITMIME")
            refused = self._smtp.sendmail(envelope_from, recipients, data, options)
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            raise _StaleConnection(str(exc)) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"recipients refused: {exc.recipients}", permanent=all(c >= 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            text = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise DeliveryError(f"{exc.smtp_code} {text}", permanent=exc.smtp_code >= 500) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self.close()
            raise DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False) from exc
        if refused:
            raise DeliveryError(f"recipients refused: {refused}", permanent=True)

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._smtp = None


def make_transport(cfg: Config) -> Transport:
    if cfg.outbound.transport == "smtp":
        return SmtpTransport(cfg)
    return MaildirTransport(cfg.outbound.path)


# -- delivery ----------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def backoff(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after `attempts` failures: 30 s, doubling, at most an hour, ±20 %."""
    return retry.backoff(attempts, first=BACKOFF_BASE, cap=BACKOFF_CAP, jitter=0.2, rng=rng)


def delivery_key(row_id: int, message_id: str) -> str:
    return f"{row_id}.{hashlib.sha256(message_id.encode()).hexdigest()[:16]}"


def deliver_due(
    ctx: Context,
    transport: Transport,
    now: datetime,
    limit: int = 200,
    should_stop: Callable[[], bool] = lambda: False,
) -> DeliveryReport:
    """Deliver pending rows whose time has come; each outcome committed on its own."""
    store, cfg = ctx.store, ctx.cfg
    report = DeliveryReport()
    rows = store.outbox.due(now, limit)
    for row in rows:
        if should_stop():
            break
        att_rows = store.attachments.by_ids(json.loads(row["attachments"]))
        recipients = [row["to_addr"], *json.loads(row["cc"])]
        try:
            original = (
                store.inbound.raw(row["original_inbound"]) if row["original_inbound"] else None
            )
            data = compose.build(row, cfg, att_rows, original)
            transport.send(
                delivery_key(row["id"], row["message_id"]),
                loops.envelope_from(cfg, row["auto_submitted"]),
                recipients,
                data,
            )
        except DeliveryError as exc:
            _record_failure(ctx, row, str(exc), exc.permanent, now, report)
            continue
        except Exception as exc:  # a row we cannot even build must not block the others
            _record_failure(ctx, row, f"{type(exc).__name__}: {exc}", True, now, report)
            continue
        with store.atomic():
            store.outbox.update(
                row["id"],
                {"status": "sent", "sent_at": to_db(now), "attempts": row["attempts"] + 1},
            )
        report.sent += 1
        log.info(
            "sent",
            extra={
                "ticket": row["ticket_id"],
                "message_id": row["message_id"],
                "to": row["to_addr"],
            },
        )
    return report


def _record_failure(
    ctx: Context, row: Row, error: str, permanent: bool, now: datetime, report: DeliveryReport
) -> None:
    failure = retry.failed(row["attempts"], ctx.cfg.outbound.max_attempts, permanent=permanent)
    attempts, final = failure.attempts, failure.final
    values: dict[str, object] = {"attempts": attempts, "last_error": error[:2000]}
    if final:
        values["status"] = "failed"
        report.failed += 1
    else:
        values["next_attempt_at"] = to_db(now + timedelta(seconds=backoff(attempts)))
        report.retried += 1
    with ctx.store.atomic():
        ctx.store.outbox.update(row["id"], values)
        if final:
            ctx.store.events.add(
                "delivery-failed",
                f"{row['template']} to {row['to_addr']}: {error[:500]}",
                at=now,
                ticket_id=row["ticket_id"],
            )
    log.warning(
        "delivery failed" if final else "delivery deferred",
        extra={"ticket": row["ticket_id"], "message_id": row["message_id"], "error": error[:300]},
    )


def next_due(ctx: Context) -> datetime | None:
    """When the next pending row is due, for the sender loop to sleep until then."""
    return ctx.store.outbox.next_due()
