"""Timers: rows in the `timers` table, fired at most once, scheduled in memory by APScheduler.

The table is the source of truth. At start, whenever the worker adds timers, and every
`SWEEP_SECONDS`, the scheduler loads every `scheduled` row due within `HORIZON` that it does not
know yet into APScheduler as a one-shot date job; overdue rows run at once, so a daemon that was
down past a due time fires what is overdue once, on start. Firing claims the row (`scheduled` →
`fired`), asks the kind's handler in `mailbot.timers` for its plan and has `mailbot.writer`
write it, in one transaction, so a timer fires once even when two processes or a restart race
for it. A handler that raises leaves the row scheduled; after `[mailbot] max_attempts` failures
it is marked `failed` with the error.
`fire_due(ctx, now)` does the same synchronously for `run --once` and for tests with a given `now`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from sqlite3 import Row

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from mailbot import retry, timers, writer
from mailbot import templates as templates_module
from mailbot.config import Config
from mailbot.context import Context, open_context
from mailbot.decisions import Plan
from mailbot.store import from_db
from mailbot.tally import Sink

log = logging.getLogger("mailbot.scheduler")

# How often the table is looked at even when nobody wakes us: picks up timers written by other
# processes (`run --once`, the CLI) and runs jobs a forward clock jump made overdue.
SWEEP_SECONDS = 30.0
# Timers due within this much time are held in APScheduler; the sweep loads later ones as
# their time comes closer (it runs many times within one HORIZON).
HORIZON = timedelta(hours=1)
RETENTION_DELAY = timedelta(minutes=1)  # the first daily retention purge, after start


def fire(ctx: Context, timer_id: int, now: datetime) -> bool:
    """Fire one timer if it is still scheduled; True when it did something."""
    try:
        return _fire(ctx, timer_id, now)
    except Exception as exc:  # one broken timer must not stop the others
        _record_failure(ctx, timer_id, now, exc)
        return False


def _fire(ctx: Context, timer_id: int, now: datetime) -> bool:
    store = ctx.store
    with store.atomic():
        if not store.timers.claim(timer_id, now):
            return False  # fired or cancelled already: at most once
        row = store.timers.get(timer_id)
        assert row is not None
        handler = timers.HANDLERS.get(row["kind"])
        plan = handler(store, ctx.cfg, row, now) if handler else _unknown(row, now)
        if plan is not None:
            writer.write(ctx, plan)
            if plan.acted and row["kind"] == "sla_breach":
                store.tally.add("sla_breaches")
    acted = plan is not None and plan.acted
    log.info(
        "timer fired" if acted else "timer obsolete",
        extra={"timer": timer_id, "kind": row["kind"], "ticket": row["ticket_id"]},
    )
    return acted


def _unknown(timer: Row, now: datetime) -> Plan:
    """A kind no handler knows (written by a newer or older mailbot): recorded, not fired."""
    plan = Plan(now, ticket_id=timer["ticket_id"], acted=False)
    plan.event("timer", f"unknown timer kind {timer['kind']}")
    return plan


def _record_failure(ctx: Context, timer_id: int, now: datetime, exc: Exception) -> None:
    """The handler's transaction rolled back: count the attempt, give up after a few."""
    store = ctx.store
    error = traceback.format_exc(limit=20)
    with store.atomic():
        row = store.timers.get(timer_id)
        if row is None or row["status"] != "scheduled":
            log.exception("timer failed", extra={"timer": timer_id})
            return
        failure = retry.failed(row["attempts"], ctx.cfg.mailbot.max_attempts)
        attempts, final = failure.attempts, failure.final
        store.timers.record_failure(timer_id, attempts, error, final)
        if final:
            store.events.add(
                "timer-failed",
                f"{row['kind']} gave up after {attempts} attempts: {type(exc).__name__}: {exc}",
                at=now,
                ticket_id=row["ticket_id"],
            )
    log.exception("timer failed", extra={"timer": timer_id, "attempts": attempts, "final": final})


def fire_due(ctx: Context, now: datetime) -> int:
    """Fire every timer due by `now` (oldest first); returns how many did something."""
    fired = 0
    timers.keep_digest(ctx, now)
    # Handlers may add timers that are already due: look again, a bounded number of times.
    for _ in range(10):
        results = [fire(ctx, timer_id, now) for timer_id in ctx.store.timers.due_ids(now)]
        fired += sum(results)
        if not any(results):
            break
    return fired


class TimerScheduler:
    """APScheduler in the background, mirroring the timers table."""

    def __init__(
        self,
        cfg: Config,
        on_fired: Callable[[], None],
        *,
        sink: Sink | None = None,
        on_alive: Callable[[], None] | None = None,
        alive_every: float = 5.0,
    ) -> None:
        """`sink` takes the figures of fired timers (metrics); `on_alive` is called every
        `alive_every` seconds from the timers' own executor: it stops when a timer hangs."""
        self.cfg = cfg
        self.on_fired = on_fired
        self.sink = sink
        self.on_alive = on_alive
        self.alive_every = alive_every
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            # One thread: timers are short transactions, and SQLite takes one writer anyway.
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._local = threading.local()
        # Guards the job bookkeeping and the contexts; re-entrant because wake() opens contexts.
        self._lock = threading.RLock()
        self._known: set[int] = set()
        self._contexts: list[Context] = []  # one per thread that used us; closed at shutdown
        self._stopped = False

    def _ctx(self) -> Context:
        """This thread's context, reopened when the config was reloaded."""
        ctx: Context | None = getattr(self._local, "ctx", None)
        if ctx is not None and ctx.cfg is not self.cfg:
            with self._lock:
                self._contexts.remove(ctx)
            ctx.close()
            ctx = None
        if ctx is None:
            ctx = self._local.ctx = open_context(self.cfg, migrate=False)
            ctx.store.tally.sink = self.sink
            # Fresh templates too: a reload may have changed them on disk.
            ctx.templates = templates_module.Templates(self.cfg.mailbot.templates)
            with self._lock:
                self._contexts.append(ctx)
        return ctx

    def start(self) -> None:
        self._recompute()  # config may have changed while we were down
        self.scheduler.start()
        self.scheduler.add_job(self.sweep, "interval", seconds=SWEEP_SECONDS, id="sweep")
        self._keep_retention()
        if self.on_alive is not None:
            self.on_alive()
            self.scheduler.add_job(
                self.on_alive, "interval", seconds=self.alive_every, id="heartbeat"
            )
        self.wake()

    def _keep_retention(self) -> None:
        """[retention], once a day, the first time a minute after start (not in its way)."""
        if self.cfg.retention.enabled and self.scheduler.get_job("retention") is None:
            self.scheduler.add_job(
                self.purge,
                "interval",
                hours=24,
                id="retention",
                next_run_time=datetime.now(UTC) + RETENTION_DELAY,
            )

    def sweep(self) -> None:
        """The periodic look: the digest timer too (a digest that gave up left none)."""
        with self._lock:
            if self._stopped:
                return
            try:
                timers.keep_digest(self._ctx(), datetime.now(UTC))
            except Exception:  # e.g. the database is locked for long: the next sweep tries
                log.exception("keeping the digest timer failed")
        self.wake()

    def purge(self) -> None:
        """Remove what is past [retention] (nothing when it keeps everything)."""
        from mailbot import privacy

        with self._lock:
            if self._stopped or not self.cfg.retention.enabled:
                return
            try:
                due = privacy.purge(self._ctx(), datetime.now(UTC))
            except Exception:  # e.g. the database is locked for long: tomorrow's run tries
                log.exception("retention purge failed")
                return
        if not due.empty:
            log.info("retention purge", extra=due.counts())

    def wake(self) -> None:
        """Schedule timers due within `HORIZON` that we do not know yet; drop cancelled ones.

        Called from any thread (the worker after new mail, the sweep, a fired timer); holding
        the lock throughout keeps shutdown from closing a connection in use. Only near timers
        are held in memory, so a big backlog of open tickets costs little here.
        """
        with self._lock:
            if self._stopped:
                return
            rows = self._ctx().store.timers.scheduled_until(datetime.now(UTC) + HORIZON)
            scheduled = {row["id"] for row in rows}
            for timer_id in self._known - scheduled:
                self._known.discard(timer_id)
                with contextlib.suppress(JobLookupError):  # it ran meanwhile
                    self.scheduler.remove_job(f"timer-{timer_id}")
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
                    replace_existing=True,
                )

    def _run(self, timer_id: int) -> None:
        try:
            acted = fire(self._ctx(), timer_id, datetime.now(UTC))
            with self._lock:
                self._known.discard(timer_id)  # done with: keeps the set as small as the table
            if acted:
                self.wake()  # a handler may have added a timer (a page deferred again)
                self.on_fired()
        except Exception:  # e.g. the database is locked for long: the sweep tries again
            log.exception("timer run failed", extra={"timer": timer_id})
            with self._lock:
                self._known.discard(timer_id)

    def _recompute(self) -> None:
        ctx = self._ctx()
        now = datetime.now(UTC)
        with ctx.store.atomic():
            changed = timers.recompute_open(ctx, now)
        if changed:
            log.info("deadlines recomputed", extra={"tickets": changed})
        if timers.keep_digest(ctx, now):
            log.info("daily digest rescheduled")

    def reload(self, cfg: Config) -> None:
        """New config: open tickets' deadlines follow the new calendar and SLA."""
        self.cfg = cfg
        try:
            self._recompute()
            self._keep_retention()
            self.wake()
        except Exception:  # the daemon keeps running; the next sweep or restart tries again
            log.exception("recomputing deadlines after reload failed")

    def shutdown(self) -> None:
        """Stop; a timer being fired finishes its transaction first."""
        self.scheduler.shutdown(wait=True)
        with self._lock:
            self._stopped = True
            for ctx in self._contexts:
                ctx.close()
            self._contexts.clear()
