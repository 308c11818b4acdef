"""Floods and loops: robots answering from new addresses, mail storms, null senders, forgeries."""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime, timedelta

from mailbot import stats
from mailbot.worker import process_pending
from tests.daemon_helpers import InProcessDaemon, daemon_settings
from tests.helpers import WARSAW_NOON, Mailbot, body_of, make_mail
from tests.test_agents import ANNA, SPOOF_TEXT, customer_mail

LEAD = "kierownik@4dustry.com"  # [sla] notify in the shipped config


def robot_answer(n: int, address: str) -> bytes:
    """A helpdesk robot's answer as careless ones write it: a new address (and request number)
    each time, no Auto-Submitted, no Precedence, no In-Reply-To."""
    return make_mail(
        sender=f"Helpdesk <{address}>",
        subject=f"[Request #{4000 + n}] Thank you for contacting us",
        body=(
            f"Dear customer,\n\nyour request #{4000 + n} was registered. Our team will answer"
            " within 2 business days.\n\nKind regards,\nRobot Helpdesk"
        ),
        message_id=f"<{4000 + n}.1764496800@robot.example>",
    )


def flood(bot: Mailbot, mails: list[bytes], start: datetime = WARSAW_NOON) -> None:
    """The mails arrive over a minute; mailbot takes them in as they come, ten at a time.

    Only the pipeline runs: what it decides to send is read from the outbox (`queued`),
    without writing hundreds of agents' notifications to disk.
    """
    for n, raw in enumerate(mails):
        now = start + timedelta(seconds=n * 60 / len(mails))
        bot.feed(raw, now=now)
        if n % 10 == 9 or n == len(mails) - 1:
            process_pending(bot.ctx, now)


def queued(bot: Mailbot, suffix: str, template: str | None = None) -> list[dict]:
    """Outgoing mail queued to addresses ending in `suffix` (of one template)."""
    rows = bot.ctx.store.rows("outbox", **({"template": template} if template else {}))
    return [dict(r) for r in rows if r["to_addr"].endswith(suffix)]


def acks_to(bot: Mailbot, suffix: str) -> list[dict]:
    return queued(bot, suffix, "ack")


def test_robot_answering_from_new_addresses_is_held_at_its_domain_limit(bot) -> None:
    """robot+N@ gets 10 acks in 10 minutes, not 100; its mail is all kept; people still get
    theirs."""
    robot = [robot_answer(n, f"robot+{n}@robot.example") for n in range(100)]
    flood(bot, [*robot[:50], make_mail(), *robot[50:]])  # a customer writes meanwhile
    assert len(acks_to(bot, "@robot.example")) == 10  # [limits] auto_replies_per_domain_per_10min
    assert len(acks_to(bot, "jan@klient.pl")) == 1
    store = bot.ctx.store
    assert store.count("inbound") == 101
    assert len(bot.tickets()) == 101  # every robot mail ticketed, nothing lost
    refused = store.rows("events", kind="no-answer")
    assert len(refused) == 90
    assert all("automatic answers to @robot.example in 10 minutes" in e["detail"] for e in refused)
    assert store.count("events", kind="flood-tripped") == 0  # one robot does not stop everyone


def test_storm_from_many_domains_trips_the_breaker_once_and_it_resets(tmp_path, caplog) -> None:
    """Mail from 100 domains in a minute: 30 acks, then the breaker holds automatic answers,
    the lead hears of it once, and after 10 calm minutes acks go out again."""
    bot = Mailbot(tmp_path)
    try:
        with caplog.at_level(logging.ERROR, logger="mailbot.loops"):
            flood(bot, [robot_answer(n, f"helpdesk@shop{n}.example") for n in range(100)])
        assert len(acks_to(bot, ".example")) == 30  # [limits] auto_replies_per_minute
        [notice] = queued(bot, LEAD)
        assert notice["subject"] == "[4Dustry #31] Wstrzymano automatyczne odpowiedzi dla klientów"
        text = notice["body"]
        assert "31 automatycznych odpowiedzi\n(limit: 30 na minutę)" in text
        assert "gdy przez 10 minut\nich liczba nie przekroczy limitu" in text
        assert [r.levelname for r in caplog.records if "flood" in r.getMessage()] == ["ERROR"]
        store = bot.ctx.store
        assert store.count("inbound") == 100 and len(bot.tickets()) == 100
        assert store.count("events", kind="flood-tripped") == 1
        # Agents still hear of every ticket: real requests may be among them.
        assert len(queued(bot, "anna@4dustry.com", "agent_new")) == 100

        # Five minutes later it is quiet, but not for long enough: no ack yet, and why.
        flood(bot, [make_mail()], WARSAW_NOON + timedelta(minutes=5))
        assert acks_to(bot, "jan@klient.pl") == []
        [held] = store.rows("events", kind="no-answer", ticket_id=101)
        assert "automatic answers paused" in held["detail"]

        # Ten calm minutes after the flood: acks again, and no second notice to the lead.
        ewa = make_mail(sender="Ewa Nowak <ewa@przyklad.pl>", subject="Faktura")
        flood(bot, [ewa], WARSAW_NOON + timedelta(minutes=12))
        assert len(acks_to(bot, "ewa@przyklad.pl")) == 1
        assert len(queued(bot, LEAD)) == 1
    finally:
        bot.close()


def test_a_second_storm_is_a_second_trip(tmp_path) -> None:
    """The lead hears of each trip once; the notice is plain staff mail no robot answers."""
    bot = Mailbot(tmp_path, settings={"limits.auto_replies_per_minute": "5"})
    try:
        for storm in range(2):
            start = WARSAW_NOON + timedelta(hours=storm)
            mails = [robot_answer(100 * storm + n, f"helpdesk@shop{n}.example") for n in range(10)]
            flood(bot, mails, start)
        bot.run(WARSAW_NOON + timedelta(hours=1, minutes=1))
        assert len([m for m in bot.outbox() if m["To"].endswith(".example")]) == 10
        notices = [m for m in bot.outbox() if m["To"] == LEAD]
        assert [n["Subject"] for n in notices] == [
            "[4Dustry #6] Wstrzymano automatyczne odpowiedzi dla klientów",
            "[4Dustry #16] Wstrzymano automatyczne odpowiedzi dla klientów",
        ]
        for notice in notices:
            assert notice["Auto-Submitted"] == "auto-generated"
            assert notice["X-Auto-Response-Suppress"] == "All"
            assert notice["Precedence"] is None  # staff mail, not filed away as bulk
            assert "6 automatycznych odpowiedzi\n(limit: 5 na minutę)" in body_of(notice)
        # `mailbot stats` shows it to the admin.
        doc = stats.build(bot.ctx.store, WARSAW_NOON + timedelta(hours=2))
        assert doc["flood_breaker"]["trips"] == 2
        assert doc["flood_breaker"]["last_tripped"].startswith("2026-11-30T11:00:")
        assert "flood breaker: tripped 2 times, last at 2026-11-30T11:00:" in stats.render(doc)
    finally:
        bot.close()


def test_null_envelope_sender_gets_no_answer_over_smtp(tmp_path, smtp_sink) -> None:
    """`MAIL FROM:<>` marks bounces and autoresponders (RFC 3834, RFC 5321) even when the
    message itself carries no sign of it: no Return-Path, no Auto-Submitted."""
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink)).start()
    responder = "piotr@hurtownia.pl"
    try:
        vacation = make_mail(
            sender=f"Piotr Nowak <{responder}>",
            subject="Dziękuję za wiadomość",
            body="Wracam 7 grudnia. W pilnych sprawach proszę dzwonić pod numer 22 123 45 67.",
        )
        with smtplib.SMTP(*running.smtp_address) as smtp:
            smtp.sendmail("", ["pomoc@4dustry.com"], vacation)  # MAIL FROM:<>
            smtp.sendmail("jan@klient.pl", ["pomoc@4dustry.com"], make_mail())
        running.wait_idle()
        stored = running.count("inbound")
        null_envelope = running.count("inbound", envelope_from="<>")
    finally:
        running.stop()
    recipients = [rcpt for d in smtp_sink.messages for rcpt in d.rcpt_tos]
    assert "jan@klient.pl" in recipients  # the same listener answers a person
    assert responder not in recipients
    assert stored == 2 and null_envelope == 1  # kept, as it came


def test_forged_agent_mail_warns_the_agents_once_an_hour(tmp_path) -> None:
    """Someone sending mail as Anna again and again: each is kept as an unverified note, but
    the agents are warned once an hour, not once a forgery."""
    bot = Mailbot(tmp_path, settings={"mailbot.trusted_authserv_ids": '["mx.4dustry.com"]'})
    try:
        customer_mail(bot, sender="b@firma-b.pl", subject="Pytanie B")

        def forge(minutes: int) -> None:
            bot.deliver(
                make_mail(sender=ANNA, subject="Re: [4Dustry #1] Pytanie B", body=SPOOF_TEXT),
                now=WARSAW_NOON + timedelta(minutes=minutes),
            )

        def warnings() -> list:
            return [m for m in bot.outbox() if "UWAGA" in m["Subject"]]

        for minutes in range(0, 50, 10):
            forge(minutes)
        assert sorted(m["To"] for m in warnings()) == ["anna@4dustry.com", "tomasz@4dustry.com"]
        assert len(bot.ctx.store.rows("messages", verified=0)) == 5  # every forgery kept
        forge(70)  # more than an hour after the warning: warned again
        assert len(warnings()) == 4
    finally:
        bot.close()
