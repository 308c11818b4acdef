"""Timers: rows in the `timers` table, fired at most once, scheduled in memory by APScheduler.

The table is the source of truth. At start (and whenever the worker adds timers) the scheduler
loads every `scheduled` row it does not know yet into APScheduler as a one-shot date job; overdue
rows run at once. Firing claims the row (`scheduled` → `fired`) and writes its outbox rows in one
transaction, so a timer fires once even when two processes or a restart race for it.
`fire_due(ctx, now)` does the same synchronously for `run --once` and for tests with a given `now`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from sqlite3 import Row

from apscheduler.schedulers.background import BackgroundScheduler

from mailbot.config import Config
from mailbot.context import Context, open_context
from mailbot.db import from_db, to_db

log = logging.getLogger("mailbot.scheduler")

# kind → function(ctx, timer row, now) that writes the timer's effects (outbox rows, events).
# Returns False when the timer no longer applies (e.g. the ticket was answered meanwhile).
Handler = Callable[[Context, Row, datetime], bool]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[kind] = func
        return func

    return register


def add_timer(
    ctx: Context,
    *,
    kind: str,
    due: datetime,
    now: datetime,
    ticket_id: int | None,
    payload: dict | None = None,
) -> int:
    return ctx.store.insert(
        "timers",
        {
            "ticket_id": ticket_id,
            "kind": kind,
            "due_at": to_db(due),
            "payload": json.dumps(payload or {}),
            "created_at": to_db(now),
        },
    )


def cancel_timers(ctx: Context, ticket_id: int, kinds: tuple[str, ...] | None = None) -> int:
    sql = "UPDATE timers SET status = 'cancelled' WHERE ticket_id = ? AND status = 'scheduled'"
    params: list = [ticket_id]
    if kinds:
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        params.extend(kinds)
    return ctx.store.execute(sql, params).rowcount


def fire(ctx: Context, timer_id: int, now: datetime) -> bool:
    """Fire one timer if it is still scheduled; True when it did something."""
    store = ctx.store
    with store.atomic():
        claimed = store.execute(
            "UPDATE timers SET status = 'fired', fired_at = ?"
            " WHERE id = ? AND status = 'scheduled'",
            (to_db(now), timer_id),
        ).rowcount
        if not claimed:
            return False  # fired or cancelled already: at most once
        row = store.one("SELECT * FROM timers WHERE id = ?", (timer_id,))
        assert row is not None
        func = HANDLERS.get(row["kind"])
        if func is None:
            store.add_event(
                "timer", f"unknown timer kind {row['kind']}", at=now, ticket_id=row["ticket_id"]
            )
            return False
        acted = func(ctx, row, now)
    log.info(
        "timer fired" if acted else "timer obsolete",
        extra={"timer": timer_id, "kind": row["kind"], "ticket": row["ticket_id"]},
    )
    return acted


def fire_due(ctx: Context, now: datetime) -> int:
    """Fire every timer due by `now` (oldest first); returns how many did something."""
    import mailbot.sla_timers  # noqa: F401 - registers the SLA and manager handlers

    due = ctx.store.all(
        "SELECT id FROM timers WHERE status = 'scheduled' AND due_at <= ? ORDER BY due_at, id",
        (to_db(now),),
    )
    return sum(fire(ctx, row["id"], now) for row in due)


class TimerScheduler:
    """APScheduler in the background, mirroring the timers table."""

    def __init__(self, cfg: Config, on_fired: Callable[[], None]) -> None:
        import mailbot.sla_timers  # noqa: F401 - registers the SLA and manager handlers

        self.cfg = cfg
        self.on_fired = on_fired
        self.scheduler = BackgroundScheduler(
            timezone=UTC, job_defaults={"misfire_grace_time": None, "coalesce": True}
        )
        self._local = threading.local()
        self._lock = threading.Lock()
        self._known: set[int] = set()

    def _ctx(self) -> Context:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None or ctx.cfg is not self.cfg:
            ctx = self._local.ctx = open_context(self.cfg, migrate=False)
        return ctx

    def start(self) -> None:
        self.scheduler.start()
        self.wake()

    def wake(self) -> None:
        """Schedule timers added to the table since the last look."""
        ctx = self._ctx()
        rows = ctx.store.all("SELECT id, due_at FROM timers WHERE status = 'scheduled'")
        with self._lock:
            for row in rows:
                if row["id"] in self._known:
                    continue
                self._known.add(row["id"])
                self.scheduler.add_job(
                    self._run,
                    "date",
                    run_date=from_db(row["due_at"]),
                    args=[row["id"]],
                    id=f"timer-{row['id']}",
                )

    def _run(self, timer_id: int) -> None:
        try:
            if fire(self._ctx(), timer_id, datetime.now(UTC)):
                self.on_fired()
            with self._lock:
                self._known.discard(timer_id)  # done with: keeps the set as small as the table
        except Exception:
            log.exception("timer failed", extra={"timer": timer_id})
            with self._lock:
                self._known.discard(timer_id)  # left scheduled: picked up again on the next wake

    def reload(self, cfg: Config) -> None:
        self.cfg = cfg

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)
