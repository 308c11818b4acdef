"""Decisions as values: SLA timers, pauses and notices decided for a new ticket, no database.

A plan that opens a ticket reads nothing from the store, so these tests hand the deciders no
store at all: what they return is all there is to check.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot import config as config_module
from mailbot import escalations, notices, sla_timers
from mailbot.config import Config
from mailbot.decisions import (
    CancelTimers,
    Event,
    OpenTicket,
    PauseClock,
    Plan,
    ScheduleTimer,
    Send,
)
from mailbot.store import to_db
from tests.helpers import write_config

WARSAW = ZoneInfo("Europe/Warsaw")
NO_STORE = None  # a new ticket's plan reads nothing from the store


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return config_module.load(write_config(tmp_path))


def opened(cfg: Config, arrival: datetime, requester: str = "jan@klient.pl") -> Plan:
    """A plan that opens a ticket arriving at `arrival`, as the decide step does."""
    plan = Plan(arrival)
    plan.add(
        OpenTicket(
            subject="Dostawa komponentów",
            priority="normal",
            language="pl",
            requester=requester,
            requester_name="Jan Kowalski",
            topic=None,
            created_at=arrival,
            first_response_due=cfg.calendar.first_response_due(arrival, cfg.sla.first_response),
        )
    )
    return plan


def timers(plan: Plan) -> dict[str, list[datetime]]:
    found: dict[str, list[datetime]] = {}
    for decision in plan.decisions:
        if isinstance(decision, ScheduleTimer):
            found.setdefault(decision.kind, []).append(decision.due.astimezone(WARSAW))
    return found


def test_a_saturday_ticket_is_due_wednesday_and_warned_before(cfg: Config) -> None:
    """DESIGN §5: Sat 09:00 → Wed 09:00; warnings 1 business day and 4 h before."""
    plan = opened(cfg, datetime(2026, 11, 28, 9, 0, tzinfo=WARSAW))
    sla_timers.schedule(plan, NO_STORE, cfg)  # type: ignore[arg-type]
    assert timers(plan) == {
        "sla_warning": [
            datetime(2026, 12, 1, 9, 0, tzinfo=WARSAW),
            datetime(2026, 12, 1, 15, 0, tzinfo=WARSAW),  # 4 business hours before 09:00
        ],
        "sla_breach": [datetime(2026, 12, 2, 9, 0, tzinfo=WARSAW)],
    }


def test_a_warning_whose_moment_passed_is_not_planned(cfg: Config) -> None:
    """Mail that arrives late (imported, or the daemon was down) gets no warning in the past."""
    arrival = datetime(2026, 11, 30, 10, 0, tzinfo=WARSAW)
    plan = opened(cfg, arrival)
    plan.now = arrival + timedelta(days=1, hours=5)  # processed Tuesday 15:00
    sla_timers.schedule(plan, NO_STORE, cfg)  # type: ignore[arg-type]
    assert timers(plan) == {
        "sla_warning": [datetime(2026, 12, 1, 16, 0, tzinfo=WARSAW)],  # 4 business hours before
        "sla_breach": [datetime(2026, 12, 2, 10, 0, tzinfo=WARSAW)],
    }


def test_pending_pauses_the_clock_once_and_cancels_what_was_planned(cfg: Config) -> None:
    plan = opened(cfg, datetime(2026, 11, 30, 10, 0, tzinfo=WARSAW))
    sla_timers.schedule(plan, NO_STORE, cfg)  # type: ignore[arg-type]
    sla_timers.on_pending(plan, NO_STORE, cfg)  # type: ignore[arg-type]
    sla_timers.on_closed(plan, NO_STORE, cfg)  # already paused: no second pause
    pauses = [d for d in plan.decisions if isinstance(d, PauseClock)]
    assert pauses == [PauseClock("pending")]
    assert plan.ticket["pending_since"] == to_db(plan.now)
    assert plan.scheduled(NO_STORE, sla_timers.SLA_KINDS) == []  # type: ignore[arg-type]
    assert plan.decisions[-1] == CancelTimers()


def test_rescheduling_in_the_same_plan_drops_the_timers_planned_before(cfg: Config) -> None:
    """A due time that moves within one plan leaves one timer per slot, not two."""
    plan = opened(cfg, datetime(2026, 11, 30, 10, 0, tzinfo=WARSAW))
    sla_timers.schedule(plan, NO_STORE, cfg)  # type: ignore[arg-type]
    later = datetime(2026, 12, 3, 10, 0, tzinfo=WARSAW)
    plan.update(first_response_due=later)
    sla_timers.schedule(plan, NO_STORE, cfg)  # type: ignore[arg-type]
    assert timers(plan)["sla_breach"] == [later]
    assert len(timers(plan)["sla_warning"]) == 2


def test_a_ticket_answered_in_the_plan_has_no_clock_left(cfg: Config) -> None:
    plan = opened(cfg, datetime(2026, 11, 30, 10, 0, tzinfo=WARSAW))
    plan.update(first_response_at=plan.now)
    sla_timers.schedule(plan, NO_STORE, cfg)  # type: ignore[arg-type]
    assert timers(plan) == {}
    assert plan.decisions[-1] == CancelTimers(sla_timers.SLA_KINDS)


def test_urgent_mail_from_a_customer_without_a_manager_is_only_recorded(cfg: Config) -> None:
    plan = opened(cfg, datetime(2026, 11, 30, 10, 0, tzinfo=WARSAW), "ktos@bez-opiekuna.pl")
    escalations.escalate(plan, NO_STORE, cfg, source="customer")  # type: ignore[arg-type]
    assert plan.decisions[1:] == [
        Event("escalation", "urgent; ktos@bez-opiekuna.pl has no account manager")
    ]


def test_staff_notices_go_out_in_the_default_language_threaded_under_the_cause(
    cfg: Config,
) -> None:
    send = notices.to_staff(cfg, template="sla_breach", to="kierownik@4dustry.com",
                            in_reply_to="<CAB+x1@mail.gmail.com>")  # fmt: skip
    assert send == Send(
        template="sla_breach",
        to="kierownik@4dustry.com",
        language=cfg.mailbot.default_language,
        purpose="agent",
        in_reply_to="<CAB+x1@mail.gmail.com>",
        references=("<CAB+x1@mail.gmail.com>",),
        auto_submitted="auto-generated",
    )


def test_the_due_time_moves_by_the_business_time_the_clock_stood(cfg: Config) -> None:
    created = to_db(datetime(2026, 11, 30, 10, 0, tzinfo=WARSAW))
    pause = {
        "started_at": to_db(datetime(2026, 11, 30, 12, 0, tzinfo=WARSAW)),
        "ended_at": to_db(datetime(2026, 12, 1, 12, 0, tzinfo=WARSAW)),  # one business day
    }
    due = sla_timers.compute_due(cfg, created, [pause])
    assert due.astimezone(WARSAW) == datetime(2026, 12, 3, 10, 0, tzinfo=WARSAW)
