"""The pipeline worker: takes pending inbound mail through the steps, one transaction per message.

This is the only place with a broad `except`: whatever goes wrong with one message is recorded on
its inbound row (retried, then quarantined after `max_attempts`) and the worker carries on.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mailbot.context import Context
from mailbot.mail import limits
from mailbot.mail.parse import Unparseable, parse
from mailbot.pipeline import Ignore, Job, Quarantine, apply, classify, thread
from mailbot.store import from_db, to_db

log = logging.getLogger("mailbot.worker")


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


# The order of processing, declared in one place. The first PURE_STEPS read nothing from the
# database and write nothing, so they run before the write lock is taken.
STEPS = (parse_step, classify.run, thread.run, apply.run)
PURE_STEPS = 2


@dataclass
class Counts:
    processed: int = 0
    ignored: int = 0
    quarantined: int = 0
    retried: int = 0


def utcnow() -> datetime:
    return datetime.now(UTC)


def _finish(ctx: Context, row_id: int, now: datetime, **values: object) -> None:
    ctx.store.inbound.update(row_id, {"processed_at": to_db(now), **values})


def prepare(ctx: Context, row, now: datetime) -> tuple[Job, BaseException | None]:
    """A job for one inbound row with the pure steps run (outside any transaction)."""
    job = Job(
        ctx=ctx,
        inbound_id=row["id"],
        # Fetched one at a time: a batch of large messages must not sit in memory together.
        raw=ctx.store.inbound.raw(row["id"]),
        received_at=from_db(row["received_at"]) or now,
        now=now,
        source=row["source"],
        no_replies=bool(row["no_replies"]),
        envelope_from=row["envelope_from"],
    )
    try:
        for step in STEPS[:PURE_STEPS]:
            step(job)
    except Exception as exc:  # recorded on the row by process_row, like any step's failure
        return job, exc
    return job, None


def process_row(ctx: Context, row, job: Job, failed: BaseException | None, counts: Counts) -> None:
    """Run the remaining steps inside a savepoint; record the outcome on the inbound row."""
    store, now = ctx.store, job.now
    try:
        with store.atomic():
            if failed is not None:
                raise failed
            for step in STEPS[PURE_STEPS:]:
                step(job)
            _finish(ctx, row["id"], now, status="processed", ticket_id=job.ticket_id)
        counts.processed += 1
        log.info(
            "processed",
            extra={
                "inbound": row["id"],
                "ticket": job.ticket_id,
                "message_id": job.parsed.message_id if job.parsed else None,
                "how": job.match.reason if job.match else "",
            },
        )
    except Ignore as exc:
        _finish(ctx, row["id"], now, status=exc.status, reason=str(exc), ticket_id=job.ticket_id)
        store.events.add(exc.status, str(exc), at=now, inbound_id=row["id"])
        counts.ignored += 1
        log.info("ignored", extra={"inbound": row["id"], "reason": str(exc)})
    except Quarantine as exc:
        _quarantine(ctx, row, now, str(exc), None)
        counts.quarantined += 1
    except Exception as exc:  # one bad message must never stop the rest
        attempts = row["attempts"] + 1
        error = "".join(traceback.format_exception(exc, limit=20))
        if attempts >= ctx.cfg.mailbot.max_attempts:
            _quarantine(ctx, row, now, f"{type(exc).__name__}: {exc}", error, attempts)
            counts.quarantined += 1
        else:
            store.inbound.update(row["id"], {"attempts": attempts, "error": error})
            counts.retried += 1
            log.warning("failed, will retry", extra={"inbound": row["id"], "error": repr(exc)})


def _quarantine(
    ctx: Context, row, now: datetime, reason: str, error: str | None, attempts: int | None = None
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
) -> Counts:
    """Process every pending inbound message, in arrival order. Returns what happened.

    Messages go in groups of up to `batch` messages, `budget` seconds of parsing or
    `max_bytes` of mail: each group is parsed first, outside any transaction, then written in
    one commit with a savepoint per message. Sources acknowledged their mail when it was
    stored, so grouping the pipeline's commits weakens nothing and saves an fsync per message;
    parsing first keeps the write lock short for the SMTP listener and the outbox sender.
    `on_commit` runs after each commit (the daemon wakes the outbox sender with it).
    """
    counts = Counts()
    store = ctx.store
    while not should_stop():
        rows = store.inbound.pending(batch)
        if not rows:
            return counts
        started, size, prepared = time.monotonic(), 0, []
        for row in rows:
            prepared.append((row, *prepare(ctx, row, now or utcnow())))
            size += row["size"]
            if time.monotonic() - started > budget or size > max_bytes or should_stop():
                break
        with store.atomic():
            for row, job, failed in prepared:
                process_row(ctx, row, job, failed, counts)
        on_commit()
    return counts
