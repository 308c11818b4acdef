"""The pipeline worker: takes pending inbound mail through the steps and writes each one's plan.

Each message's steps end in a `Plan` that `mailbot.writer` applies in the message's own
savepoint. This is the only place with a broad `except` for messages: whatever goes wrong with
one is recorded on its inbound row as an `Outcome` (retried, then quarantined after
`max_attempts`) and the worker carries on. A failure of the machine rather than of the message
(a full disk, a locked database: `transient`) counts no attempt: the message stays pending and
the pass stops, to be tried again when the condition clears (`Counts.waiting`).
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import sqlite3
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from sqlite3 import Row

from mailbot import mailboxes, retry, writer
from mailbot.context import Context
from mailbot.mail import limits
from mailbot.mail.parse import Unparseable, parse
from mailbot.pipeline import Ignore, Job, Quarantine, Step, classify, decide, thread
from mailbot.store import from_db, to_db

log = logging.getLogger("mailbot.worker")

# Inbound sources of old mail (`import --history`): the mailbox's folders, and its Sent folder.
HISTORY_SOURCES = ("history", "history-sent")


def parse_step(job: Job) -> None:
    """Parse the raw bytes; mail too big, too complex or not mail at all goes to quarantine."""
    cfg = job.ctx.cfg
    too_much = limits.check(
        job.raw,
        max_size=cfg.smtp.max_message_size,
        max_header=cfg.limits.max_header_size,
        max_parts=cfg.limits.max_parts,
        max_depth=cfg.limits.max_depth,
    )
    if too_much:
        raise Quarantine(too_much)
    try:
        job.parsed = parse(job.raw)
    except Unparseable as exc:
        raise Quarantine(str(exc)) from exc


# The order of processing, declared in one place. The leading steps that do not read the store
# run before the write lock is taken; the rest, and the writing of the plan, hold it.
STEPS = (Step("parse", parse_step, reads_store=False), classify.STEP, thread.STEP, decide.STEP)
LOCK_FREE = tuple(itertools.takewhile(lambda step: not step.reads_store, STEPS))
LOCKED = STEPS[len(LOCK_FREE) :]


@dataclass
class Counts:
    processed: int = 0
    ignored: int = 0
    quarantined: int = 0
    retried: int = 0
    waiting: str | None = None  # a transient failure stopped the pass: what we wait for


# A full disk, a failing disk, a locked database: nothing wrong with the message itself.
TRANSIENT_ERRNOS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EIO: "disk I/O error",
    errno.EAGAIN: "resource temporarily unavailable",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files",
}
TRANSIENT_SQLITE = {
    "database is locked": "database locked",
    "database table is locked": "database locked",
    "disk i/o error": "disk I/O error",
    "database or disk is full": "disk full",
}


def transient(exc: BaseException) -> str | None:
    """What the machine lacks when `exc` (or an exception it came from) is no fault of the
    message; None for anything else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in TRANSIENT_ERRNOS:
            return TRANSIENT_ERRNOS[current.errno]
        if isinstance(current, sqlite3.OperationalError):
            text = str(current).lower()
            for message, what in TRANSIENT_SQLITE.items():
                if message in text:
                    return what
        current = current.__cause__ or current.__context__
    return None


@dataclass(frozen=True)
class Outcome:
    """Why a message was not processed: ignored, a duplicate, quarantined, or failed."""

    status: str
    reason: str
    error: str | None = None  # the traceback of a failure
    waiting: str | None = None  # a transient failure: what the machine lacks (see transient)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _run(job: Job, steps: tuple[Step, ...]) -> Outcome | None:
    """Run the steps; the outcome that stopped them, or None when all ran."""
    try:
        for step in steps:
            step.run(job)
    except Ignore as exc:
        return Outcome(exc.status, str(exc))
    except Quarantine as exc:
        return Outcome("quarantined", str(exc))
    except Exception as exc:  # one bad message must never stop the rest
        return _failed(exc)
    return None


def _failed(exc: BaseException) -> Outcome:
    error = "".join(traceback.format_exception(exc, limit=20))
    return Outcome("failed", f"{type(exc).__name__}: {exc}", error, transient(exc))


def _finish(ctx: Context, row_id: int, now: datetime, **values: object) -> None:
    ctx.store.inbound.update(row_id, {"processed_at": to_db(now), **values})


def prepare(ctx: Context, row: Row, now: datetime) -> tuple[Job, Outcome | None]:
    """A job for one inbound row with the lock-free steps run (outside any transaction)."""
    several = len(ctx.cfg.mailboxes) > 1  # else there is no mailbox to tell apart
    imap = several and row["source"] == "imap"
    received_at = from_db(row["received_at"]) or now
    history = row["source"] in HISTORY_SOURCES
    job = Job(
        ctx=ctx,
        inbound_id=row["id"],
        raw=ctx.store.inbound.raw(row["id"]),
        received_at=received_at,
        # Old mail is replayed at its own time; the real time keeps it from sending or
        # scheduling anything in the past (`Plan.history`).
        now=received_at if history else now,
        source=row["source"],
        no_replies=bool(row["no_replies"]),
        envelope_from=row["envelope_from"],
        envelope_to=tuple(json.loads(row["envelope_to"] or "[]")) if several else (),
        folder=mailboxes.folder_of(row["source_ref"]) if imap else None,
        history=now if history else None,
        sent_by_us=row["source"] == "history-sent",
    )
    return job, _run(job, LOCK_FREE)


def process_row(ctx: Context, row: Row, job: Job, outcome: Outcome | None, counts: Counts) -> None:
    """Run the remaining steps and write the plan in a savepoint; record the outcome."""
    if outcome is None:
        try:
            with ctx.store.atomic():
                outcome = _run(job, LOCKED)
                if outcome is None:
                    assert job.plan is not None
                    ticket_id = writer.write(ctx, job.plan)
                    _finish(
                        ctx,
                        row["id"],
                        job.history or job.now,
                        status="processed",
                        ticket_id=ticket_id,
                    )
        except Exception as exc:  # the plan could not be written: the savepoint rolled back
            outcome = _failed(exc)
    if outcome is None:
        counts.processed += 1
        ctx.store.tally.add("inbound", row["source"], "processed")
        log.info(
            "processed",
            extra={
                "inbound": row["id"],
                "ticket": job.plan.ticket_id if job.plan else None,
                "message_id": job.parsed.message_id if job.parsed else None,
                "how": job.match.reason if job.match else "",
            },
        )
    else:
        _record(ctx, row, job.history or job.now, outcome, counts)  # today, for old mail too


def _record(ctx: Context, row: Row, now: datetime, outcome: Outcome, counts: Counts) -> None:
    """What happened to a message that was not processed, on its inbound row."""
    store = ctx.store
    if outcome.waiting:  # not the message's fault: no attempt counted, it stays pending
        counts.waiting = outcome.waiting
        log.debug("transient failure", extra={"inbound": row["id"], "error": outcome.reason})
        return
    store.tally.add("inbound", row["source"], outcome.status)  # quarantined failed ignored …
    if outcome.status == "quarantined":
        _quarantine(ctx, row, now, outcome.reason, None)
        counts.quarantined += 1
    elif outcome.status == "failed":
        failure = retry.failed(row["attempts"], ctx.cfg.mailbot.max_attempts)
        if failure.final:
            _quarantine(ctx, row, now, outcome.reason, outcome.error, failure.attempts)
            counts.quarantined += 1
        else:
            store.inbound.update(row["id"], {"attempts": failure.attempts, "error": outcome.error})
            counts.retried += 1
            log.warning("failed, will retry", extra={"inbound": row["id"], "error": outcome.reason})
    else:  # ignored, duplicate
        _finish(ctx, row["id"], now, status=outcome.status, reason=outcome.reason, ticket_id=None)
        store.events.add(outcome.status, outcome.reason, at=now, inbound_id=row["id"])
        counts.ignored += 1
        log.info("ignored", extra={"inbound": row["id"], "reason": outcome.reason})


def _quarantine(
    ctx: Context,
    row: Row,
    now: datetime,
    reason: str,
    error: str | None,
    attempts: int | None = None,
) -> None:
    values: dict[str, object] = {"status": "quarantined", "reason": reason[:1000]}
    if error:
        values["error"] = error
    if attempts is not None:
        values["attempts"] = attempts
    _finish(ctx, row["id"], now, **values)
    ctx.store.events.add("quarantined", reason[:1000], at=now, inbound_id=row["id"])
    log.warning("quarantined", extra={"inbound": row["id"], "reason": reason[:300]})


def process_pending(
    ctx: Context,
    now: datetime | None = None,
    *,
    batch: int = 50,
    budget: float = 0.2,
    max_bytes: int = 32_000_000,
    should_stop: Callable[[], bool] = lambda: False,
    on_commit: Callable[[], None] = lambda: None,
    by_time: bool = False,
) -> Counts:
    """Process every pending inbound message, in arrival order. Returns what happened.

    Messages go in groups of up to `batch` messages, `budget` seconds of parsing or
    `max_bytes` of mail: each group is parsed first, outside any transaction, then written in
    one commit with a savepoint per message. Sources acknowledged their mail when it was
    stored, so grouping the pipeline's commits weakens nothing and saves an fsync per message;
    parsing first keeps the write lock short for the SMTP listener and the outbox sender.
    `on_commit` runs after each commit (the daemon wakes the outbox sender with it).
    `by_time`: in order of the mail's own time, not of storing (a history import stores its
    folders one after the other; an answer must come after the mail it answers).
    A transient failure (`transient`) ends the pass with `Counts.waiting` set: the message
    and those after it stay pending, in order, for the caller to try again later.
    """
    counts = Counts()
    store = ctx.store
    while not should_stop():
        rows = store.inbound.pending(batch, by_time=by_time)
        if not rows:
            return counts
        started, size, prepared = time.monotonic(), 0, []
        for row in rows:
            prepared.append((row, *prepare(ctx, row, now or utcnow())))
            size += row["size"]
            if time.monotonic() - started > budget or size > max_bytes or should_stop():
                break
        with store.atomic():
            for row, job, outcome in prepared:
                process_row(ctx, row, job, outcome, counts)
                if counts.waiting:
                    break
        on_commit()
        if counts.waiting:
            return counts
    return counts
