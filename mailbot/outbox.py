"""The transactional outbox's delivery: due rows to the transport, with retries and backoff.

Rows are written by `mailbot.writer` in the same transaction as the change that caused them,
with their final Message-ID. Delivery takes due rows one at a time (one body in memory) and
marks each sent in its own commit right after the transport accepted it. Before an SMTP relay
gets a row, the row is marked in flight in its own commit: a crash can resend at most the one
message in flight, and only after a pause (the Maildir transport not even that). Temporary
failures retry for `[outbound] queue_lifetime`; a 5xx fails a row at once.
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

from mailbot import loops, notices, refusals, retry, writer
from mailbot.config import Config
from mailbot.context import Context
from mailbot.decisions import Plan
from mailbot.files import private_dir, write_private
from mailbot.mail import compose
from mailbot.oauth import OAuthError
from mailbot.signin import smtp_login, smtp_tokens
from mailbot.store import Store, from_db, to_db

log = logging.getLogger("mailbot.outbox")

BACKOFF_BASE = 30.0  # seconds before the first retry
BACKOFF_CAP = 3600.0  # never wait longer than an hour between attempts
# A row found in flight (mailbot stopped while handing it over) waits this long, doubling
# if that keeps happening: other mail goes first, and a crash loop does not resend it each time.
INTERRUPTED_WAIT = 5.0


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
    """Writes each message as a file in a Maildir's new/ (tmp → fsync → rename).

    Idempotent: a message whose file exists is not written again, so rows need no in-flight
    mark. A local OSError (a full disk, a permission) is temporary: it is retried.
    """

    idempotent = True

    def __init__(self, path: Path) -> None:
        self.path = path
        for sub in ("tmp", "new", "cur"):
            private_dir(path / sub)  # copies of mail to customers: mailbot's alone

    def send(self, key: str, envelope_from: str, recipients: list[str], data: bytes) -> None:
        try:
            self._write(key, data)
        except OSError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False) from exc

    def _write(self, key: str, data: bytes) -> None:
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
        self.tokens = smtp_tokens(cfg)  # None: password login

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
            try:
                smtp_login(smtp, out.username, out.password.read, self.tokens)
            except BaseException:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    smtp.close()
                raise
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
        except (TimeoutError, smtplib.SMTPException, OSError, OAuthError) as exc:
            # No token (provider unreachable, app misconfigured) is temporary too: the mail
            # waits in the queue until the admin has fixed it.
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


BATCH = 200  # due rows read at a time (ids and metadata only; each body is read when sent)
NOTICE_TEMPLATE = "outbox_failing"


def backoff(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after `attempts` failures: 30 s, doubling, at most an hour, ±20 %."""
    return retry.backoff(attempts, first=BACKOFF_BASE, cap=BACKOFF_CAP, jitter=0.2, rng=rng)


def delivery_key(row_id: int, message_id: str) -> str:
    return f"{row_id}.{hashlib.sha256(message_id.encode()).hexdigest()[:16]}"


def expires_at(cfg: Config, row: Row) -> datetime:
    """When a row that keeps failing temporarily is given up: its queue lifetime from when it
    was queued (or requeued by an admin)."""
    queued = from_db(row["requeued_at"] or row["created_at"])
    assert queued is not None
    return queued + cfg.outbound.queue_lifetime


def deliver_due(
    ctx: Context,
    transport: Transport,
    now: datetime,
    limit: int = BATCH,
    should_stop: Callable[[], bool] = lambda: False,
) -> DeliveryReport:
    """Deliver every pending row whose time has come; each outcome committed on its own.

    Rows are read `limit` at a time without their bodies; each row's body is read just before
    it is sent, so memory does not grow with the queue. Every row taken leaves the due set
    (sent, failed or backed off), so the loop ends with everything due at `now` handled.
    """
    store = ctx.store
    report = DeliveryReport()
    while not should_stop():
        batch = store.outbox.due(now, limit)
        for meta in batch:
            if should_stop():
                return report
            _deliver_one(ctx, transport, meta, now, report)
        if len(batch) < limit:
            break
    return report


def _deliver_one(
    ctx: Context, transport: Transport, meta: Row, now: datetime, report: DeliveryReport
) -> None:
    store, cfg = ctx.store, ctx.cfg
    if meta["sending_since"] is not None:
        # Handed to the relay when mailbot stopped (or before marking it sent failed): it may
        # have gone out. Wait before sending it again rather than resend it first thing.
        error = "interrupted while being sent (mailbot stopped?); it may have been delivered"
        wait = retry.backoff(
            meta["attempts"] + 1, first=INTERRUPTED_WAIT, cap=BACKOFF_CAP, jitter=0.2
        )
        _record_failure(ctx, meta, error, False, now, report, wait=wait)
        return
    row = store.outbox.get(meta["id"])
    if row is None or row["status"] != "pending":
        return  # cancelled or sent meanwhile (an admin, or another sender)
    if not getattr(transport, "idempotent", False):
        with store.atomic():
            store.outbox.update(row["id"], {"sending_since": to_db(now)})
    recipients = [row["to_addr"], *json.loads(row["cc"])]
    try:
        att_rows = store.attachments.by_ids(json.loads(row["attachments"]))
        original = store.inbound.raw(row["original_inbound"]) if row["original_inbound"] else None
        data = compose.build(row, cfg, att_rows, original)
        transport.send(
            delivery_key(row["id"], row["message_id"]),
            loops.envelope_from(cfg, row["auto_submitted"], compose.from_address(row, cfg)),
            recipients,
            data,
        )
    except DeliveryError as exc:
        _record_failure(ctx, row, str(exc), exc.permanent, now, report)
        return
    except OSError as exc:  # a local file (attachment, raw mail): may be a full or busy disk
        _record_failure(ctx, row, f"{type(exc).__name__}: {exc}", False, now, report)
        return
    except Exception as exc:  # a row we cannot even build must not block the others
        _record_failure(ctx, row, f"{type(exc).__name__}: {exc}", True, now, report)
        return
    with store.atomic():
        store.outbox.update(
            row["id"],
            {
                "status": "sent",
                "sent_at": to_db(now),
                "attempts": row["attempts"] + 1,
                "sending_since": None,
            },
        )
        if row["template"] != NOTICE_TEMPLATE and store.outbox.set_failing(False):
            log.info("outgoing mail is delivered again")
        _count_sent(store, row, now)
    report.sent += 1
    log.info(
        "sent",
        extra={
            "ticket": row["ticket_id"],
            "message_id": row["message_id"],
            "to": row["to_addr"],
        },
    )


def _count_sent(store: Store, row: Row, now: datetime) -> None:
    """For the metrics: one more sent, and for an ack the time since its ticket's mail came."""
    tally = store.tally
    if not tally.enabled:
        return
    tally.add("outgoing", row["template"], "sent")
    if row["template"] == "ack" and row["ticket_id"]:
        ticket = store.tickets.get(row["ticket_id"])
        arrived = from_db(ticket["created_at"]) if ticket else None
        if arrived is not None:
            tally.add("ack_latency", value=max(0.0, (now - arrived).total_seconds()))


def _record_failure(
    ctx: Context,
    row: Row,
    error: str,
    permanent: bool,
    now: datetime,
    report: DeliveryReport,
    wait: float | None = None,
) -> None:
    """One more failed attempt: a 5xx (or a row that cannot be built) fails the row at once;
    anything temporary backs off (`wait` seconds, else `backoff`), until the row's queue
    lifetime is over."""
    attempts = row["attempts"] + 1
    expiry = expires_at(ctx.cfg, row)
    final = permanent or now >= expiry
    if final and not permanent:
        lifetime = _span(ctx.cfg.outbound.queue_lifetime)
        error = f"gave up after {attempts} attempts in {lifetime}: {error}"
    values: dict[str, object] = {
        "attempts": attempts,
        "last_error": error[:2000],
        "sending_since": None,
    }
    if final:
        values["status"] = "failed"
        report.failed += 1
    else:
        delay = backoff(attempts) if wait is None else wait
        retry_at = min(now + timedelta(seconds=delay), expiry)
        values["next_attempt_at"] = to_db(max(retry_at, now))
        report.retried += 1
    with ctx.store.atomic():
        ctx.store.outbox.update(row["id"], values)
        ctx.store.tally.add("outgoing", row["template"], "failed" if final else "deferred")
        if final:
            ctx.store.events.add(
                "delivery-failed",
                f"{row['template']} to {row['to_addr']}: {error[:500]}",
                at=now,
                ticket_id=row["ticket_id"],
            )
            _tell_leads(ctx, row, error, now)
    log.warning(
        "delivery failed" if final else "delivery deferred",
        extra={"ticket": row["ticket_id"], "message_id": row["message_id"], "error": error[:300]},
    )


def _tell_leads(ctx: Context, row: Row, error: str, now: datetime) -> None:
    """The first row failing for good since mail last went out: tell the leads, once.

    Refusals of one recipient (an unknown address, a full mailbox) are the customer's matter
    and start nothing; nor does the notice itself failing. The notice goes out through the
    same relay that may be refusing mail, so an error line is logged as well.
    """
    store = ctx.store
    if row["template"] == NOTICE_TEMPLATE or refusals.about_recipient(error):
        return
    if not store.outbox.set_failing(True):
        return  # the leads were told already in this episode
    hint = refusals.explain(error) or ""
    log.error(
        "outgoing mail is failing for good; the leads are told (through the same relay)",
        extra={"error": error[:300], "hint": hint},
    )
    plan = Plan(now)
    for to in notices.leads(ctx.cfg):
        plan.add(
            notices.to_staff(
                ctx.cfg,
                template=NOTICE_TEMPLATE,
                to=to,
                purpose="notice",
                company=ctx.cfg.mailbot.name,
                address=ctx.cfg.mailbot.address,
                error=error[:500],
                hint=hint,
                failed_id=row["id"],
                failed_to=row["to_addr"],
                failed_count=store.outbox.count("failed"),
            )
        )
    plan.event("delivery-failing", f"outgoing mail fails for good; leads told: {error[:300]}")
    writer.write(ctx, plan)


def _span(value: timedelta) -> str:
    """A queue lifetime as config.toml writes it: '5 days', '12h'."""
    days, seconds = value.days, value.seconds
    parts = [f"{days} day{'s' * (days != 1)}"] if days else []
    hours, minutes = divmod(seconds // 60, 60)
    parts += [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes else []
    return " ".join(parts) or "0m"


def next_due(ctx: Context) -> datetime | None:
    """When the next pending row is due, for the sender loop to sleep until then."""
    return ctx.store.outbox.next_due()
