"""Every kind of timer and the handler that decides what firing it means: the scheduler's registry.

A handler is a plain function (store, config, timer row, now) → `Plan` or None (nothing left to
do). It reads, never writes: the scheduler claims the timer and writes the plan in one
transaction. Listing the handlers here, instead of having modules register themselves on
import, keeps the scheduler free of any import of what it fires.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from sqlite3 import Row

from mailbot import digest, escalations, sla_timers, writer
from mailbot.config import Config
from mailbot.context import Context
from mailbot.decisions import Plan
from mailbot.store import Store

Handler = Callable[[Store, Config, Row, datetime], Plan | None]

HANDLERS: dict[str, Handler] = {
    "sla_warning": sla_timers.fire_warning,
    "sla_breach": sla_timers.fire_breach,
    escalations.PAGE_KIND: escalations.fire_page,
    digest.KIND: digest.fire,
}


def recompute_open(ctx: Context, now: datetime) -> int:
    """After a config change: due times and timers of tickets whose clock runs; # changed."""
    changed = 0
    for ticket in ctx.store.tickets.clock_running():
        plan = sla_timers.recompute(ctx.store, ctx.cfg, ticket, now)
        writer.write(ctx, plan)
        changed += plan.acted
    return changed


def keep_digest(ctx: Context, now: datetime) -> bool:
    """The daily digest's timer in step with the config; True when it changed.

    Read first: the write lock is taken only when something is to change.
    """
    if digest.keep_scheduled(ctx.store, ctx.cfg, now) is None:
        return False
    with ctx.store.atomic():
        plan = digest.keep_scheduled(ctx.store, ctx.cfg, now)  # again, under the lock
        if plan is not None:
            writer.write(ctx, plan)
    return plan is not None
