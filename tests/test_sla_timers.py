"""SLA reminders, breaches and manager pages as timers, driven with an explicit clock."""

from __future__ import annotations

import json
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot import config as config_module
from mailbot import escalations, scheduler, sla_timers, writer
from mailbot import timers as registry
from mailbot.cli import main
from mailbot.context import open_context
from mailbot.decisions import Event, Plan, Send
from tests.daemon_helpers import InProcessDaemon, daemon_settings, wait_until
from tests.helpers import Mailbot, body_of, make_mail, write_config

WARSAW = ZoneInfo("Europe/Warsaw")
LEAD = "kierownik@4dustry.com"
ANNA = "anna@4dustry.com"
TOMASZ = "tomasz@4dustry.com"
MANAGER = "marta.wisniewska@4dustry.com"
EWA = "Ewa Nowak <ewa@przyklad.pl>"  # a customer of the manager (@przyklad.pl)
SECOND = timedelta(seconds=1)


def warsaw(*args: int) -> datetime:
    return datetime(*args, tzinfo=WARSAW)


MON_10 = warsaw(2026, 11, 30, 10, 0)  # due Wed 2 Dec 10:00; warnings Tue 10:00 and Tue 16:00
TUE_10 = warsaw(2026, 12, 1, 10, 0)
TUE_16 = warsaw(2026, 12, 1, 16, 0)
WED_10 = warsaw(2026, 12, 2, 10, 0)


def delivered(bot: Mailbot, template: str, to: str | None = None) -> list[EmailMessage]:
    """Mail of one template that the transport actually delivered (optionally to one address)."""
    ids = {row["message_id"] for row in bot.ctx.store.rows("outbox", template=template)}
    return [m for m in bot.outbox() if m["Message-ID"] in ids and (to is None or m["To"] == to)]


def reminders(bot: Mailbot) -> list[str]:
    """'template→recipient' of every SLA mail delivered so far: warnings, then breaches."""
    return [f"{t}→{m['To']}" for t in ("sla_warning", "sla_breach") for m in delivered(bot, t)]


def due_of(bot: Mailbot, ticket_id: int = 1) -> datetime:
    ticket = bot.ctx.store.tickets.get(ticket_id)
    assert ticket is not None
    return datetime.fromisoformat(ticket["first_response_due"]).astimezone(WARSAW)


def agent_says(
    bot: Mailbot, text: str, now: datetime, agent: str = ANNA, ticket_id: int = 1
) -> None:
    """An agent answers the new-ticket notification they got, from their mail client."""
    [note] = [m for m in delivered(bot, "agent_new", agent) if f"#{ticket_id}]" in m["Subject"]]
    bot.deliver(
        make_mail(
            sender=agent,
            subject="Re: " + note["Subject"],
            body=text,
            headers={"In-Reply-To": note["Message-ID"], "References": note["Message-ID"]},
        ),
        now=now,
    )


def customer_replies(bot: Mailbot, now: datetime, ticket_id: int = 1) -> None:
    [ack] = [m for m in delivered(bot, "ack") if f"#{ticket_id}]" in m["Subject"]]
    bot.deliver(
        make_mail(
            subject="Odp: " + ack["Subject"],
            body="Przesyłam brakujące informacje.",
            headers={"In-Reply-To": ack["Message-ID"]},
        ),
        now=now,
    )


# -- due times and when the SLA mail goes out --------------------------------------------------

CONTRACT = [
    # DESIGN §5 examples, Europe/Warsaw
    (warsaw(2026, 11, 28, 9, 0), warsaw(2026, 12, 2, 9, 0), ""),  # Saturday → Wednesday
    (warsaw(2026, 11, 30, 10, 0), warsaw(2026, 12, 2, 10, 0), ""),
    (warsaw(2026, 11, 27, 17, 0), warsaw(2026, 12, 1, 17, 0), ""),
    (warsaw(2026, 12, 23, 10, 0), warsaw(2026, 12, 29, 10, 0), ""),  # 24–26 Dec are holidays
    (warsaw(2026, 11, 9, 10, 0), warsaw(2026, 11, 12, 10, 0), ""),  # 11 Nov: Independence Day
    (warsaw(2026, 11, 30, 10, 0), warsaw(2026, 12, 3, 10, 0), '["2026-12-01"]'),  # company day
]


@pytest.mark.parametrize(("arrival", "due", "extra_holidays"), CONTRACT)
def test_due_time_follows_the_contract_and_the_breach_fires_exactly_then(
    tmp_path: Path, arrival: datetime, due: datetime, extra_holidays: str
) -> None:
    settings = {"hours.extra_holidays": extra_holidays} if extra_holidays else None
    bot = Mailbot(tmp_path, settings=settings)
    try:
        bot.deliver(make_mail(), now=arrival)
        assert due_of(bot) == due
        bot.run(now=due - SECOND)
        assert delivered(bot, "sla_breach") == []
        bot.run(now=due)
        bot.run(now=due + timedelta(hours=1))
        [breach] = delivered(bot, "sla_breach")
        assert breach["To"] == LEAD
        assert breach["Auto-Submitted"] == "auto-generated"
        assert breach["Subject"] == "[4Dustry #1] Przekroczony termin pierwszej odpowiedzi"
    finally:
        bot.close()


def test_warnings_at_the_configured_offsets_then_the_breach(bot: Mailbot) -> None:
    bot.deliver(make_mail(subject="Dostawa komponentów"), now=MON_10)  # topic logistics → Anna
    for moment, expected in [
        (TUE_10 - SECOND, []),
        (TUE_10, [f"sla_warning→{ANNA}"]),  # "1 business day" before Wed 10:00
        (TUE_16 - SECOND, [f"sla_warning→{ANNA}"]),
        (TUE_16, [f"sla_warning→{ANNA}"] * 2),  # "4h": Wed 08–10 and Tue 16–18
        (WED_10 - SECOND, [f"sla_warning→{ANNA}"] * 2),
        (WED_10, [f"sla_warning→{ANNA}"] * 2 + [f"sla_breach→{LEAD}"]),
        (WED_10 + timedelta(days=3), [f"sla_warning→{ANNA}"] * 2 + [f"sla_breach→{LEAD}"]),
    ]:
        bot.run(now=moment)
        assert reminders(bot) == expected, moment
    warning = delivered(bot, "sla_warning")[0]
    body = body_of(warning)
    assert "środa, 2 grudnia 2026, 10:00" in body and "Dostawa komponentów" in body
    assert warning["Auto-Submitted"] == "auto-generated"
    assert warning["Message-ID"].startswith("<mb.1.agent.")  # replying to it answers the customer
    [note] = delivered(bot, "agent_new", ANNA)
    assert warning["In-Reply-To"] == note["Message-ID"]  # threads under the notification


def test_warnings_go_to_the_assignee_and_without_topic_to_every_agent(bot: Mailbot) -> None:
    bot.deliver(make_mail(subject="Pytanie o fakturę"), now=MON_10)  # no topic: both agents
    bot.deliver(make_mail(sender="ola@firma.pl", subject="Pytanie o cennik"), now=MON_10)
    agent_says(bot, "#przypisz Tomasz\n#notatka", MON_10 + timedelta(hours=1), ticket_id=2)
    bot.run(now=TUE_10)
    warned = sorted((m["Subject"][:13], m["To"]) for m in delivered(bot, "sla_warning"))
    assert warned == [("[4Dustry #1] ", ANNA), ("[4Dustry #1] ", TOMASZ), ("[4Dustry #2] ", TOMASZ)]


def test_an_answer_stops_every_reminder(bot: Mailbot) -> None:
    bot.deliver(make_mail(subject="Dostawa komponentów"), now=MON_10)
    agent_says(bot, "Dzień dobry, dostawa wyjechała dziś rano.", MON_10 + timedelta(hours=1))
    for day in range(5):
        bot.run(now=MON_10 + timedelta(days=day, hours=8))
    assert reminders(bot) == []
    statuses = {r["status"] for r in bot.ctx.store.rows("timers")}
    assert statuses == {"cancelled"}


def test_an_answer_recorded_by_the_hook_alone_also_stops_reminders(bot: Mailbot) -> None:
    """The contract with the agent-reply code: plan first_response_at, then the hook's decisions."""
    bot.deliver(make_mail(), now=MON_10)
    store, answered = bot.ctx.store, TUE_10 - timedelta(hours=1)
    plan = Plan(answered)
    plan.start(store.tickets.get(1))
    plan.update(first_response_at=answered)
    sla_timers.on_first_response(plan, store, bot.cfg)
    with store.atomic():
        writer.write(bot.ctx, plan)
    bot.run(now=WED_10 + timedelta(days=1))
    assert reminders(bot) == []


def test_pending_pauses_and_the_customers_reply_moves_the_due_time(bot: Mailbot) -> None:
    bot.deliver(make_mail(subject="Dostawa komponentów"), now=MON_10)
    agent_says(bot, "#czeka", warsaw(2026, 11, 30, 12, 0))  # a command alone: nothing sent
    assert bot.tickets()[0]["status"] == "pending"
    for moment in (TUE_10, TUE_16, WED_10):
        bot.run(now=moment)
    assert reminders(bot) == []  # the clock stands while the ticket waits on the customer
    customer_replies(bot, warsaw(2026, 12, 2, 12, 0))
    [ticket] = bot.tickets()
    assert ticket["status"] == "open" and ticket["pending_since"] is None
    # Paused Mon 12:00 → Wed 12:00 = 6 h + 10 h + 4 h of opening hours: Wed 10:00 + 20 h.
    assert due_of(bot) == warsaw(2026, 12, 4, 10, 0)
    bot.run(now=warsaw(2026, 12, 3, 10, 0) - SECOND)
    assert reminders(bot) == []
    bot.run(now=warsaw(2026, 12, 3, 10, 0))
    bot.run(now=warsaw(2026, 12, 3, 16, 0))
    bot.run(now=warsaw(2026, 12, 4, 10, 0))
    assert reminders(bot) == [f"sla_warning→{ANNA}"] * 2 + [f"sla_breach→{LEAD}"]


def test_closed_unanswered_ticket_fires_nothing_and_reopening_resumes_the_clock(
    bot: Mailbot,
) -> None:
    bot.deliver(make_mail(subject="Dostawa komponentów"), now=MON_10)
    agent_says(bot, "#zamknij", warsaw(2026, 11, 30, 11, 0))
    bot.run(now=WED_10 + timedelta(days=1))
    assert reminders(bot) == []
    customer_replies(bot, warsaw(2026, 12, 3, 11, 0))  # reopens: closed Mon 11:00 → Thu 11:00
    assert bot.tickets()[0]["status"] == "open"
    assert due_of(bot) == warsaw(2026, 12, 7, 10, 0)  # 30 h of hours later: Mon 7 Dec
    bot.run(now=warsaw(2026, 12, 7, 10, 0))
    assert f"sla_breach→{LEAD}" in reminders(bot)


# -- restarts and downtime ---------------------------------------------------------------------


def test_restart_between_scheduling_and_firing_sends_each_reminder_once(tmp_path: Path) -> None:
    first = Mailbot(tmp_path)
    first.deliver(make_mail(subject="Dostawa komponentów"), now=MON_10)
    first.close()  # the daemon stops with three timers scheduled
    for moments in ([TUE_10, TUE_10], [TUE_10, TUE_16], [TUE_16, WED_10, WED_10]):
        again = Mailbot(tmp_path)  # a fresh process on the same data directory
        for moment in moments:
            again.run(now=moment)
        again.close()
    final = Mailbot(tmp_path)
    try:
        assert reminders(final) == [f"sla_warning→{ANNA}"] * 2 + [f"sla_breach→{LEAD}"]
        fired = final.ctx.store.rows("timers")
        assert [(r["kind"], r["status"]) for r in fired] == [
            ("sla_warning", "fired"),
            ("sla_warning", "fired"),
            ("sla_breach", "fired"),
        ]
    finally:
        final.close()


def test_overdue_timers_fire_once_when_the_daemon_comes_back(bot: Mailbot) -> None:
    bot.deliver(make_mail(subject="Dostawa komponentów"), now=MON_10)
    bot.run(now=warsaw(2026, 12, 1, 12, 0))  # down from Mon until Tue noon: one warning late
    assert reminders(bot) == [f"sla_warning→{ANNA}"]
    bot.run(now=warsaw(2026, 12, 3, 9, 0))  # down again past the second warning and the due
    bot.run(now=warsaw(2026, 12, 3, 9, 5))
    # The "4h" warning came too late to help: only the breach goes out, once.
    assert reminders(bot) == [f"sla_warning→{ANNA}", f"sla_breach→{LEAD}"]


# -- account managers --------------------------------------------------------------------------


def urgent_mail(sender: str = EWA, subject: str = "PILNE: awaria linii produkcyjnej") -> bytes:
    return make_mail(sender=sender, subject=subject, message_id=make_msgid(domain="przyklad.pl"))


def test_urgent_ticket_pages_the_manager_at_once_without_the_customers_words(
    bot: Mailbot,
) -> None:
    bot.deliver(urgent_mail(), now=MON_10)
    [page] = delivered(bot, "manager_urgent")
    assert page["To"] == MANAGER
    assert page["Subject"] == "[4Dustry #1] Pilne zgłoszenie klienta ewa@przyklad.pl"
    body = body_of(page)
    assert body.startswith("Dzień dobry,\n")  # not "Marta," (a vocative is easy to get wrong)
    assert "zgłoszenie #1, przyjęte w poniedziałek, 30 listopada 2026 r., o 10:00." in body
    assert "Termin pierwszej odpowiedzi: środa, 2 grudnia 2026, 10:00\n" in body
    assert "awaria linii" not in body and "problem z zamówieniem" not in body
    [ack] = delivered(bot, "ack")
    assert "+48 600 100 200" in body_of(ack)  # the ack names the manager for urgent matters


def test_a_page_at_2330_waits_until_0700_next_day(bot: Mailbot) -> None:
    bot.deliver(urgent_mail(), now=warsaw(2026, 11, 30, 23, 30))
    assert delivered(bot, "manager_urgent") == []
    bot.run(now=warsaw(2026, 12, 1, 6, 59, 59))
    assert delivered(bot, "manager_urgent") == []
    bot.run(now=warsaw(2026, 12, 1, 7, 0))
    bot.run(now=warsaw(2026, 12, 1, 7, 30))
    [page] = delivered(bot, "manager_urgent")
    assert page["To"] == MANAGER
    events = [r["kind"] for r in bot.ctx.store.events.of_ticket(1)]
    assert "manager-deferred" in events and "manager-paged" in events


def test_no_night_page_when_the_ticket_was_answered_before_the_window(bot: Mailbot) -> None:
    bot.deliver(urgent_mail(), now=warsaw(2026, 11, 30, 23, 30))
    # "awaria" routes the ticket to the "bugs" topic: Tomasz got the notification.
    agent_says(bot, "Już działamy.", warsaw(2026, 12, 1, 0, 15), agent=TOMASZ)
    bot.run(now=warsaw(2026, 12, 1, 7, 0))
    assert delivered(bot, "manager_urgent") == []


def test_a_page_fired_late_at_night_waits_for_the_window_again(bot: Mailbot) -> None:
    bot.deliver(urgent_mail(), now=warsaw(2026, 11, 30, 23, 30))
    bot.run(now=warsaw(2026, 12, 1, 23, 0))  # the daemon was down all day, back at 23:00
    assert delivered(bot, "manager_urgent") == []
    bot.run(now=warsaw(2026, 12, 2, 7, 0))
    assert len(delivered(bot, "manager_urgent")) == 1


def test_agent_raising_the_priority_pages_the_manager(bot: Mailbot) -> None:
    bot.deliver(make_mail(sender=EWA, subject="Pytanie o fakturę"), now=MON_10)
    assert delivered(bot, "manager_urgent") == []
    agent_says(bot, "#priorytet pilny\n#notatka", MON_10 + timedelta(minutes=5))
    [page] = delivered(bot, "manager_urgent")
    # The agent's name, in a form without the past tense's gender ("podniósł/podniosła").
    assert "Priorytet podniesiony przez: Anna Kowalska (anna@4dustry.com)." in body_of(page)
    assert escalations.counted(bot.ctx.store, "ewa@przyklad.pl", MON_10) == 0  # not the customer's


def test_lowering_the_priority_calls_off_a_deferred_page(bot: Mailbot) -> None:
    bot.deliver(urgent_mail(), now=warsaw(2026, 11, 30, 23, 30))
    agent_says(bot, "#priority normal\n#note", warsaw(2026, 11, 30, 23, 45), agent=TOMASZ)
    bot.run(now=warsaw(2026, 12, 1, 7, 0))
    assert delivered(bot, "manager_urgent") == []


def test_urgent_mail_from_a_customer_without_a_manager_pages_nobody(bot: Mailbot) -> None:
    bot.deliver(urgent_mail(sender="jan@klient.pl"), now=MON_10)
    assert delivered(bot, "manager_urgent") == []
    assert bot.tickets()[0]["priority"] == "urgent"


def test_imported_old_mail_pages_nobody(bot: Mailbot) -> None:
    bot.feed(urgent_mail(), now=MON_10, no_replies=True)
    bot.run(now=MON_10)
    assert delivered(bot, "manager_urgent") == [] and delivered(bot, "ack") == []


# -- abuse guard -------------------------------------------------------------------------------


def test_abuse_warning_then_suspension_then_reset_from_the_cli(tmp_path: Path) -> None:
    bot = Mailbot(tmp_path, settings={"urgent.abuse_warn": "2", "urgent.abuse_limit": "3"})
    try:
        days = [MON_10 + timedelta(days=n) for n in range(6)]
        for n, day in enumerate(days[:5]):
            bot.deliver(urgent_mail(subject=f"Pilne: awaria nr {n + 1}"), now=day)
        pages = delivered(bot, "manager_urgent")
        assert [p["Subject"][:13] for p in pages] == [f"[4Dustry #{n}] " for n in (1, 2, 3)]
        [warning] = delivered(bot, "abuse_warning")
        assert warning["To"] == "ewa@przyklad.pl" and warning["Subject"].startswith("[4Dustry #2]")
        assert "opiekuna" in body_of(warning) and "Marta Wiśniewska" in body_of(warning)
        assert warning["Auto-Submitted"] == "auto-replied"
        [told] = delivered(bot, "abuse_suspended")  # once, at the 4th; not again at the 5th
        assert told["To"] == LEAD and "ewa@przyklad.pl" in told["Subject"]
        assert all(t["status"] == "open" for t in bot.tickets())  # still in the normal queue
        [state] = escalations.summary(bot.ctx.store, bot.cfg, days[4])
        assert (state["customer"], state["count"], state["state"]) == (
            "ewa@przyklad.pl",
            5,
            "suspended",
        )
        config = str(tmp_path / "config.toml")
        assert main(["--config", config, "escalations", "reset", "ewa@przyklad.pl"]) == 0
        assert main(["--config", config, "escalations", "reset", "ewa@przyklad.pl"]) == 1
        bot.deliver(urgent_mail(subject="Pilne: znowu awaria"), now=days[5])
        assert len(delivered(bot, "manager_urgent")) == 4  # the direct line is back
    finally:
        bot.close()


def test_abuse_warning_is_in_the_customers_language(tmp_path: Path) -> None:
    bot = Mailbot(tmp_path, settings={"urgent.abuse_warn": "1"})
    try:
        english = make_mail(
            sender="John Smith <john@przyklad.pl>",
            subject="URGENT: production line down",
            body="Hello, our production line stopped this morning. Please help us quickly.",
        )
        bot.deliver(english, now=MON_10)
        [warning] = delivered(bot, "abuse_warning")
        assert "account manager" in body_of(warning) and "Marta Wiśniewska" in body_of(warning)
    finally:
        bot.close()


def test_escalations_older_than_30_days_no_longer_count(tmp_path: Path) -> None:
    bot = Mailbot(tmp_path, settings={"urgent.abuse_warn": "0", "urgent.abuse_limit": "1"})
    try:
        bot.deliver(urgent_mail(subject="Pilne 1"), now=MON_10)
        bot.deliver(urgent_mail(subject="Pilne 2"), now=MON_10 + timedelta(days=1))
        assert len(delivered(bot, "manager_urgent")) == 1  # the second was past the limit
        bot.deliver(urgent_mail(subject="Pilne 3"), now=MON_10 + timedelta(days=32))
        assert len(delivered(bot, "manager_urgent")) == 2
    finally:
        bot.close()


def test_escalations_command_lists_customers(tmp_path: Path, capsys) -> None:
    now = datetime.now(UTC)  # the command looks at the real last 30 days
    bot = Mailbot(tmp_path)
    try:
        bot.deliver(urgent_mail(), now=now - timedelta(days=1))
    finally:
        bot.close()
    config = str(tmp_path / "config.toml")
    assert main(["--config", config, "escalations", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["customer"], row["manager"], row["count"], row["state"]) == (
        "ewa@przyklad.pl",
        MANAGER,
        1,
        "ok",
    )
    assert main(["--config", config, "escalations"]) == 0
    assert "ewa@przyklad.pl" in capsys.readouterr().out


# -- reload ------------------------------------------------------------------------------------


def test_recompute_after_a_config_change_moves_open_deadlines_only(tmp_path: Path) -> None:
    bot = Mailbot(tmp_path)
    try:
        bot.deliver(make_mail(subject="Dostawa komponentów"), now=MON_10)  # open: recomputed
        bot.deliver(make_mail(sender="ola@firma.pl", subject="Dostawa 2"), now=MON_10)
        agent_says(bot, "Odpowiedź.", MON_10 + timedelta(hours=1), ticket_id=2)  # answered
        bot.deliver(make_mail(sender="ela@firma.pl", subject="Dostawa 3"), now=MON_10)
        agent_says(bot, "#czeka", MON_10 + timedelta(hours=1), ticket_id=3)  # pending
        before = [due_of(bot, n) for n in (1, 2, 3)]
        # 1 Dec becomes a company holiday and warnings come only 2 h before.
        path = write_config(
            tmp_path,
            settings={"hours.extra_holidays": '["2026-12-01"]', "sla.warn_before": '["2h"]'},
        )
        ctx = open_context(config_module.load(path))
        with ctx.store.atomic():
            assert registry.recompute_open(ctx, MON_10 + timedelta(hours=2)) == 1
        ctx.close()
        assert due_of(bot, 1) == warsaw(2026, 12, 3, 10, 0)
        assert [due_of(bot, n) for n in (2, 3)] == before[1:]
        bot.cfg = bot.ctx.cfg = config_module.load(path)
        bot.run(now=warsaw(2026, 12, 3, 8, 0) - SECOND)
        assert reminders(bot) == []
        bot.run(now=warsaw(2026, 12, 3, 8, 0))  # Thu 10:00 − 2 h of opening hours
        assert reminders(bot) == [f"sla_warning→{ANNA}"]
        bot.run(now=warsaw(2026, 12, 3, 10, 0))
        assert reminders(bot) == [f"sla_warning→{ANNA}", f"sla_breach→{LEAD}"]
    finally:
        bot.close()


def test_scheduler_reload_recomputes_deadlines(tmp_path: Path) -> None:
    now = datetime.now(UTC)  # the scheduler runs on the real clock
    bot = Mailbot(tmp_path)
    try:
        bot.deliver(make_mail(), now=now)
        due_before = due_of(bot)
        timers = scheduler.TimerScheduler(bot.cfg, on_fired=lambda: None)
        timers.start()
        try:
            path = write_config(tmp_path, settings={"sla.first_response": '"3 business days"'})
            new = config_module.load(path)
            timers.reload(new)
        finally:
            timers.shutdown()
        expected = new.calendar.first_response_due(
            datetime.fromisoformat(bot.tickets()[0]["created_at"]), new.sla.first_response
        )
        assert due_of(bot) == expected.astimezone(WARSAW) != due_before
        [breach] = bot.ctx.store.rows("timers", kind="sla_breach", status="scheduled")
        assert datetime.fromisoformat(breach["due_at"]) == expected
    finally:
        bot.close()


# -- the scheduler itself ----------------------------------------------------------------------


def test_background_scheduler_fires_a_near_timer_once(bot: Mailbot, monkeypatch) -> None:
    fired: list[int] = []

    def ping(store, cfg, timer, now) -> Plan:
        fired.append(timer["id"])
        return Plan(now, decisions=[Event("ping", "pong")])

    monkeypatch.setitem(registry.HANDLERS, "test_ping", ping)
    now = datetime.now(UTC)
    with bot.ctx.store.atomic():
        timer_id = bot.ctx.store.timers.add(
            kind="test_ping", due=now + timedelta(seconds=0.3), now=now, ticket_id=None
        )
    woken: list[bool] = []
    timers = scheduler.TimerScheduler(bot.cfg, on_fired=lambda: woken.append(True))
    timers.start()
    try:
        wait_until(lambda: woken, 5, "the timer to fire")
        for _ in range(3):
            timers.wake()  # looking at the table again must not fire it twice
        assert not timers.scheduler.get_job(f"timer-{timer_id}")
    finally:
        timers.shutdown()
    assert fired == [timer_id] and woken == [True]
    status = bot.ctx.store.timers.get(timer_id)["status"]
    assert status == "fired"
    assert bot.ctx.store.count("events", kind="ping") == 1


def test_background_scheduler_holds_near_timers_and_drops_cancelled_ones(bot: Mailbot) -> None:
    now = datetime.now(UTC)
    with bot.ctx.store.atomic():
        near = bot.ctx.store.timers.add(
            kind="test_ping", due=now + timedelta(minutes=10), now=now, ticket_id=None
        )
        bot.ctx.store.timers.add(
            kind="test_ping", due=now + timedelta(days=2), now=now, ticket_id=None
        )
    timers = scheduler.TimerScheduler(bot.cfg, on_fired=lambda: None)
    timers.start()
    try:
        jobs = {job.id for job in timers.scheduler.get_jobs()}
        assert jobs == {"sweep", f"timer-{near}"}  # the far one waits in the table
        with bot.ctx.store.atomic():
            bot.ctx.store.update("timers", near, {"status": "cancelled"})
        timers.wake()
        assert [job.id for job in timers.scheduler.get_jobs()] == ["sweep"]
    finally:
        timers.shutdown()


def test_a_failing_handler_is_retried_then_marked_failed(bot: Mailbot, monkeypatch) -> None:
    def broken(store, cfg, timer, now) -> Plan:
        # The event is written first; the template that does not exist fails the whole plan.
        send = Send(template="template missing", to=ANNA, language="pl", purpose="agent")
        return Plan(now, decisions=[Event("half-done", "rolled back"), send])

    monkeypatch.setitem(registry.HANDLERS, "test_broken", broken)
    with bot.ctx.store.atomic():
        bot.ctx.store.timers.add(kind="test_broken", due=MON_10, now=MON_10, ticket_id=None)
    for minute in range(5):
        bot.run(now=MON_10 + timedelta(minutes=minute))
    [row] = bot.ctx.store.rows("timers")
    assert row is not None
    assert (row["status"], row["attempts"]) == ("failed", bot.cfg.mailbot.max_attempts)
    assert "template missing" in row["error"]
    store = bot.ctx.store
    assert store.count("events", kind="half-done") == 0
    assert store.count("events", kind="timer-failed") == 1


# -- through the running daemon ----------------------------------------------------------------


def _to(sink, address: str) -> list[EmailMessage]:
    return [m.message for m in sink.messages if address in m.rcpt_tos]


def test_a_breach_overdue_while_the_daemon_was_down_reaches_the_sink_once(
    tmp_path: Path, smtp_sink
) -> None:
    settings = daemon_settings(smtp_sink)
    bot = Mailbot(tmp_path, settings=settings)
    bot.deliver(
        make_mail(subject="Dostawa komponentów"), now=datetime.now(UTC) - timedelta(days=10)
    )
    bot.close()  # the ticket's warnings and breach are long overdue when the daemon starts
    assert _to(smtp_sink, "jan@klient.pl") and not _to(smtp_sink, LEAD)
    running = InProcessDaemon(tmp_path, settings).start()
    try:
        running.wait_idle()  # the overdue timers fire at start
        [breach] = _to(smtp_sink, LEAD)
    finally:
        running.stop()
    assert breach["Subject"] == "[4Dustry #1] Przekroczony termin pierwszej odpowiedzi"
    assert breach["Auto-Submitted"] == "auto-generated"
    assert not _to(smtp_sink, ANNA)[1:]  # the late warnings were not sent: only the notification
    again = InProcessDaemon(tmp_path, settings).start()  # a restart repeats nothing
    try:
        assert again.count("timers", status="scheduled") == 0
        again.wait_idle()  # a wrongly re-fired timer's mail would have reached the sink now
    finally:
        again.stop()
    assert len(_to(smtp_sink, LEAD)) == 1


def test_urgent_mail_to_the_running_daemon_pages_the_manager(tmp_path: Path, smtp_sink) -> None:
    local = datetime.now(WARSAW)  # manager hours around the real time: paged at once
    hours = f"{local - timedelta(hours=1):%H:%M}-{local + timedelta(hours=1):%H:%M}"
    settings = daemon_settings(smtp_sink, **{"urgent.manager_hours": f'"{hours}"'})
    running = InProcessDaemon(tmp_path, settings).start()
    try:
        with smtplib.SMTP(*running.smtp_address, timeout=10) as smtp:
            smtp.sendmail("ewa@przyklad.pl", ["pomoc@4dustry.com"], urgent_mail())
        running.wait_idle()
        [page] = _to(smtp_sink, MANAGER)
    finally:
        running.stop()
    assert page["Subject"] == "[4Dustry #1] Pilne zgłoszenie klienta ewa@przyklad.pl"


def test_reloading_the_running_daemon_recomputes_deadlines(tmp_path: Path, smtp_sink) -> None:
    settings = daemon_settings(smtp_sink)
    running = InProcessDaemon(tmp_path, settings).start()
    try:
        with smtplib.SMTP(*running.smtp_address, timeout=10) as smtp:
            smtp.sendmail("jan@klient.pl", ["pomoc@4dustry.com"], make_mail())
        wait_until(lambda: running.count("tickets"), 5, "the ticket")
        assert running.store is not None
        before = running.store.tickets.get(1)
        assert before is not None
        write_config(tmp_path, settings=settings | {"sla.first_response": '"3 business days"'})
        running.daemon.reload()  # what SIGHUP does
        after = running.store.tickets.get(1)
        assert after is not None
    finally:
        running.stop()
    cfg = config_module.load(tmp_path / "config.toml")
    expected = cfg.calendar.first_response_due(
        datetime.fromisoformat(before["created_at"]), cfg.sla.first_response
    )
    assert datetime.fromisoformat(after["first_response_due"]) == expected
    assert after["first_response_due"] != before["first_response_due"]
