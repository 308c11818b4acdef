"""Mail in, tickets out: acknowledgements, threading, follow-ups, automatic mail, quarantine."""

from __future__ import annotations

import bisect
import random
from datetime import datetime, timedelta
from email.utils import make_msgid
from zoneinfo import ZoneInfo

import pytest

from mailbot.store.seed import seed_tickets
from mailbot.store.tickets import RECENT_QUEUE
from tests.helpers import WARSAW_NOON, body_of, make_mail

WARSAW = ZoneInfo("Europe/Warsaw")


def warsaw(*args: int) -> datetime:
    return datetime(*args, tzinfo=WARSAW)


def test_polish_mail_gets_a_polish_ack_with_due_time_hours_and_queue_position(bot) -> None:
    bot.deliver(make_mail(), now=warsaw(2026, 11, 28, 9, 0))  # Saturday morning
    [ticket] = bot.tickets()
    assert ticket["status"] == "open" and ticket["language"] == "pl"
    assert ticket["requester"] == "jan@klient.pl"
    sent = bot.outbox()
    ack = next(m for m in sent if m["To"] == "jan@klient.pl")
    assert ack["Subject"] == f"[4Dustry #{ticket['id']}] Problem z zamówieniem"
    body = body_of(ack)
    # Saturday → Wednesday, same hour; the day name after "w" in the accusative.
    assert "najpóźniej w środę, 2 grudnia 2026 r., do godz. 09:00 czasu polskiego" in body
    assert "poniedziałek–piątek 08:00–18:00" in body
    assert "1. w kolejce" in body
    assert "mam problem z zamówieniem" not in body  # the ack never quotes the customer
    assert ack["Auto-Submitted"] == "auto-replied"


def test_ack_threads_under_the_customer_message(bot) -> None:
    mid = make_msgid(domain="klient.pl")
    bot.deliver(make_mail(message_id=mid))
    ack = next(m for m in bot.outbox() if m["To"] == "jan@klient.pl")
    assert ack["In-Reply-To"] == mid
    assert mid in ack["References"]
    assert ack["Message-ID"].endswith("@4dustry.com>")
    assert ack["X-Auto-Response-Suppress"] == "All"


def test_english_mail_gets_an_english_ack(bot) -> None:
    raw = make_mail(
        sender="John Smith <john@example.com>",
        subject="Delivery of components",
        body="Hello, the delivery of our order has not arrived yet. Could you please check?",
    )
    bot.deliver(raw, now=warsaw(2026, 11, 30, 10, 0))
    [ticket] = bot.tickets()
    assert ticket["language"] == "en"
    ack = next(m for m in bot.outbox() if m["To"] == "john@example.com")
    body = body_of(ack)
    assert "by Wednesday, December 2, 2026, 10:00 (Warsaw time, CET)" in body
    assert "number 1 in the queue" in body
    assert "Monday–Friday 08:00–18:00" in body


def test_ack_names_the_account_manager(bot) -> None:
    bot.deliver(make_mail(sender="Ewa <ewa@przyklad.pl>"))
    ack = next(m for m in bot.outbox() if m["To"] == "ewa@przyklad.pl")
    body = body_of(ack)
    assert "Marta Wiśniewska" in body and "+48 600 100 200" in body
    assert "marta.wisniewska@4dustry.com" in body


def test_queue_position_counts_earlier_unanswered_tickets(bot) -> None:
    for n in range(3):
        bot.deliver(make_mail(sender=f"c{n}@klient{n}.pl"), now=WARSAW_NOON + timedelta(minutes=n))
    ack = next(m for m in bot.outbox() if m["To"] == "c2@klient2.pl")
    assert "3. w kolejce" in body_of(ack)


def test_agents_are_notified_with_the_customer_text_and_a_signed_message_id(bot) -> None:
    bot.deliver(make_mail(subject="Nie działa rejestracja konta"))
    notes = [m for m in bot.outbox() if m["To"].endswith("@4dustry.com")]
    assert [m["To"] for m in notes] == ["tomasz@4dustry.com"]  # topic "registration"
    assert "mam problem z zamówieniem nr 123" in body_of(notes[0])
    assert notes[0]["Message-ID"].startswith("<mb.1.agent.")


@pytest.mark.parametrize("prefix", ["Odp:", "RE:", "PD:", "Re: Odp:", "AW:", "Fwd:"])
def test_replies_thread_by_headers(bot, prefix: str) -> None:
    first = make_msgid(domain="klient.pl")
    bot.deliver(make_mail(message_id=first))
    reply = make_mail(
        subject=f"{prefix} Problem z zamówieniem",
        body="Dodatkowe informacje.",
        headers={"In-Reply-To": first, "References": first},
    )
    bot.deliver(reply, now=WARSAW_NOON + timedelta(hours=1))
    assert len(bot.tickets()) == 1
    texts = [r["text"] for r in bot.ctx.store.rows("messages", direction="in")]
    assert texts[-1].strip() == "Dodatkowe informacje."


def test_reply_to_our_ack_threads_by_its_message_id(bot) -> None:
    bot.deliver(make_mail())
    ack = next(m for m in bot.outbox() if m["To"] == "jan@klient.pl")
    reply = make_mail(subject="Odp: whatever", headers={"In-Reply-To": ack["Message-ID"]})
    bot.deliver(reply, now=WARSAW_NOON + timedelta(hours=1))
    assert len(bot.tickets()) == 1


def test_subject_tag_threads_only_for_participants(bot) -> None:
    bot.deliver(make_mail())
    [ticket] = bot.tickets()
    tag = f"[4Dustry #{ticket['id']}]"
    bot.deliver(
        make_mail(subject=f"Re: {tag} Problem", body="Od klienta"),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    assert len(bot.tickets()) == 1
    stranger = make_mail(sender="intruz@zly.pl", subject=f"Re: {tag} Problem", body="Wpuśćcie mnie")
    bot.deliver(stranger, now=WARSAW_NOON + timedelta(hours=2))
    tickets = bot.tickets()
    assert len(tickets) == 2 and tickets[1]["requester"] == "intruz@zly.pl"
    events = bot.ctx.store.events.of_ticket(tickets[1]["id"])
    assert any("does not take part" in e["detail"] for e in events)
    # Nothing of ticket 1 reached the stranger: only their own ack.
    to_stranger = [m for m in bot.outbox() if m["To"] == "intruz@zly.pl"]
    assert len(to_stranger) == 1 and "Od klienta" not in body_of(to_stranger[0])


def test_follow_ups_get_one_queue_notice_and_never_move_the_due_time(bot) -> None:
    bot.deliver(make_mail(), now=warsaw(2026, 11, 30, 10, 0))
    [ticket] = bot.tickets()
    for n in range(1, 4):
        bot.deliver(
            make_mail(subject=f"Re: [4Dustry #{ticket['id']}] x", body=f"Ponaglenie {n}"),
            now=warsaw(2026, 11, 30, 10 + n, 0),
        )
    [after] = bot.tickets()
    assert after["first_response_due"] == ticket["first_response_due"]
    assert after["created_at"] == ticket["created_at"]
    to_customer = [m for m in bot.outbox() if m["To"] == "jan@klient.pl"]
    assert len(to_customer) == 2  # the ack and one queue notice
    assert "nie zmieniają miejsca w kolejce" in body_of(to_customer[1])


def test_follow_ups_do_not_jump_the_queue(bot) -> None:
    bot.deliver(make_mail(sender="a@firma-a.pl"), now=WARSAW_NOON)
    bot.deliver(make_mail(sender="b@firma-b.pl"), now=WARSAW_NOON + timedelta(minutes=5))
    bot.deliver(
        make_mail(sender="a@firma-a.pl", subject="Re: [4Dustry #1] x", body="Halo?"),
        now=WARSAW_NOON + timedelta(minutes=10),
    )
    order = [t["requester"] for t in bot.tickets() if t["status"] == "open"]
    created = [t["created_at"] for t in bot.tickets()]
    assert order == ["a@firma-a.pl", "b@firma-b.pl"] and created == sorted(created)


def test_queue_position_counts_right_in_a_long_queue(bot) -> None:
    # Tickets over an afternoon (to the second, so some arrive together), some answered,
    # pending or closed. Each one's position is 1 + the queued tickets that arrived before it,
    # for the recent ones (counted from the back) as for the older ones (from the front).
    store = bot.ctx.store
    seed_tickets(
        bot.ctx,
        5 * RECENT_QUEUE,
        since=WARSAW_NOON,
        now=WARSAW_NOON + timedelta(hours=4),
        queue=0,
        mix={"queued": 6, "answered": 2, "pending": 1, "closed": 1},
        rng=random.Random(7),
    )
    tickets = store.rows("tickets")
    queued = sorted(
        t["created_at"] for t in tickets if t["status"] == "open" and not t["first_response_at"]
    )
    assert len(queued) > 2 * RECENT_QUEUE
    assert store.tickets.queue_length() == len(queued)  # a new ticket's place is one more
    for ticket in tickets:
        ahead = bisect.bisect_left(queued, ticket["created_at"])
        assert store.tickets.queue_position(ticket["created_at"]) == ahead + 1


def test_contact_form_mail_is_attributed_to_its_reply_to(bot) -> None:
    raw = make_mail(
        sender="Formularz 4Dustry <formularz@4dustry.com>",
        subject="Formularz kontaktowy: rejestracja",
        headers={"Reply-To": "Karolina Zielińska <karolina@sklep.pl>"},
    )
    bot.deliver(raw)
    [ticket] = bot.tickets()
    assert ticket["requester"] == "karolina@sklep.pl"
    assert any(m["To"] == "karolina@sklep.pl" for m in bot.outbox())
    assert not any(m["To"] == "formularz@4dustry.com" for m in bot.outbox())


@pytest.mark.parametrize(
    ("subject", "headers"),
    [
        ("PILNE: awaria linii", {}),
        ("Zamówienie", {"Importance": "High"}),
        ("Zamówienie", {"X-Priority": "1 (Highest)"}),
        ("Urgent!", {}),
    ],
)
def test_urgent_priority(bot, subject: str, headers: dict) -> None:
    bot.deliver(make_mail(subject=subject, headers=headers))
    assert bot.tickets()[0]["priority"] == "urgent"


def test_normal_priority_for_ordinary_mail(bot) -> None:
    bot.deliver(make_mail(subject="Pytanie o fakturę", headers={"X-Priority": "3"}))
    assert bot.tickets()[0]["priority"] == "normal"


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"List-Id": "<news.klient.pl>"},
        {"Return-Path": "<>"},
    ],
)
def test_automatic_mail_is_stored_and_marked_but_never_answered(bot, headers: dict) -> None:
    inbound_id = bot.deliver(make_mail(headers=headers))
    assert bot.tickets() == []
    assert bot.outbox(expected=0) == []
    row = bot.inbound(inbound_id)
    assert row["status"] == "ignored" and row["reason"]


def test_out_of_office_reply_to_our_ack_is_kept_on_the_ticket_without_answer(bot) -> None:
    bot.deliver(make_mail())
    ack = next(m for m in bot.outbox() if m["To"] == "jan@klient.pl")
    ooo = make_mail(
        subject="Automatyczna odpowiedź: Problem",
        body="Jestem na urlopie do 5 grudnia.",
        headers={"In-Reply-To": ack["Message-ID"], "Auto-Submitted": "auto-replied"},
    )
    count = len(bot.outbox())
    bot.deliver(ooo, now=WARSAW_NOON + timedelta(minutes=1))
    assert len(bot.outbox()) == count
    kinds = [r["kind"] for r in bot.ctx.store.rows("messages", direction="in")]
    assert kinds == ["customer", "auto"]


def test_mail_from_our_own_address_is_a_loop(bot) -> None:
    inbound_id = bot.deliver(make_mail(sender="pomoc@4dustry.com"))
    assert bot.inbound(inbound_id)["status"] == "ignored"
    assert bot.tickets() == [] and bot.outbox(expected=0) == []


def test_same_message_twice_is_one_message(bot) -> None:
    raw = make_mail()
    first = bot.deliver(raw)
    assert bot.feed(raw) == first  # byte-identical: recognised at intake
    resent = raw.replace(b"To: pomoc", b"X-Resent: yes\r\nTo: pomoc")  # same Message-ID, new bytes
    second = bot.deliver(resent)
    assert bot.inbound(second)["status"] == "duplicate"
    assert len(bot.tickets()) == 1
    assert bot.ctx.store.count("messages", direction="in") == 1


def test_raw_bytes_are_kept_byte_identical(bot) -> None:
    raw = make_mail() + b"\r\n\xff\xfe binary tail"
    inbound_id = bot.deliver(raw)
    assert bot.inbound(inbound_id)["raw"] == raw


def test_unparseable_mail_is_quarantined_and_can_be_retried(bot) -> None:
    inbound_id = bot.deliver(b"Subject: no sender at all\r\n\r\nhello")
    row = bot.inbound(inbound_id)
    assert row["status"] == "quarantined" and "no sender" in row["reason"]
    assert bot.tickets() == []


def test_no_replies_import_creates_tickets_without_acks(bot) -> None:
    bot.feed(make_mail(), no_replies=True)
    bot.run()
    assert len(bot.tickets()) == 1
    assert not any(m["To"] == "jan@klient.pl" for m in bot.outbox())


def test_ack_rate_limit_per_address(bot) -> None:
    for n in range(5):
        bot.deliver(make_mail(subject=f"Sprawa {n}"), now=WARSAW_NOON + timedelta(minutes=n))
    acks = [m for m in bot.outbox() if m["To"] == "jan@klient.pl"]
    assert len(acks) == 3 and len(bot.tickets()) == 5


@pytest.mark.parametrize(
    ("arrival", "due"),
    [
        ((2026, 11, 28, 9, 0), (2026, 12, 2, 9, 0)),
        ((2026, 11, 30, 10, 0), (2026, 12, 2, 10, 0)),
        ((2026, 11, 27, 17, 0), (2026, 12, 1, 17, 0)),
        ((2026, 12, 23, 10, 0), (2026, 12, 29, 10, 0)),
    ],
)
def test_first_response_due_follows_the_business_calendar(bot, arrival, due) -> None:
    bot.deliver(make_mail(), now=warsaw(*arrival))
    stored = datetime.fromisoformat(bot.tickets()[0]["first_response_due"])
    assert stored == warsaw(*due)
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)  # stored in UTC


def test_attachments_are_stored_under_generated_names(bot) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "jan@klient.pl", "pomoc@4dustry.com", "Zdjęcie"
    msg.set_content("W załączniku zdjęcie.")
    msg.add_attachment(
        b"\x89PNG fake", maintype="image", subtype="png", filename="../../etc/passwd"
    )
    bot.deliver(msg.as_bytes())
    [att] = [dict(r) for r in bot.ctx.store.rows("attachments")]
    assert att["filename"] == "passwd"
    assert att["path"].startswith("attachments/") and "passwd" not in att["path"]
    assert (bot.cfg.mailbot.data_dir / att["path"]).read_bytes() == b"\x89PNG fake"


def test_template_syntax_in_customer_mail_stays_literal(bot) -> None:
    bot.deliver(make_mail(subject="{{7*7}} {% raise %}", body="{{ config }} {{7*7}}"))
    ack = next(m for m in bot.outbox() if m["To"] == "jan@klient.pl")
    assert "{{7*7}}" in ack["Subject"] and "49" not in ack["Subject"]
    note = next(m for m in bot.outbox() if m["To"].endswith("@4dustry.com"))
    assert "{{ config }} {{7*7}}" in body_of(note)


def test_outbox_delivery_is_exactly_once_even_if_marking_failed(bot) -> None:
    bot.deliver(make_mail())
    before = len(bot.outbox())
    for row in bot.ctx.store.rows("outbox"):  # as if a crash hit mid-pass
        bot.ctx.store.outbox.update(row["id"], {"status": "pending"})
    # An hour later: the rows are due again, and no SLA reminder is yet (the mail came at
    # WARSAW_NOON; a run on the real clock would see its breach notice from 2026-12-02 on).
    bot.run(now=WARSAW_NOON + timedelta(hours=1))
    assert len(bot.outbox()) == before
