"""mailbot.store.seed: seeded tickets are what the pipeline would have made of them."""

from __future__ import annotations

import random
from datetime import timedelta

from mailbot import timers
from mailbot.store.seed import seed_tickets
from tests.helpers import WARSAW_NOON, make_mail

NOW = WARSAW_NOON + timedelta(days=30)


def test_seeded_tickets_agree_with_the_product(bot) -> None:
    store = bot.ctx.store
    seeded = seed_tickets(bot.ctx, 300, now=NOW, queue=0.05, rng=random.Random(1))
    assert seeded.tickets == range(1, 301) and seeded.rows["tickets"] == 300
    queued = store.count("tickets", status="open", first_response_at=None)
    assert queued >= 15 and store.tickets.queue_length() == queued
    # Due times and timers are the calendar's: recomputing them changes nothing.
    with store.atomic():
        assert timers.recompute_open(bot.ctx, NOW) == 0
    assert store.count("outbox") == store.count("outbox", status="sent")
    overdue = [t for t in store.rows("timers", status="scheduled") if t["due_at"] < NOW.isoformat()]
    assert not overdue
    # Our Message-IDs are signed for each ticket and recipient: replies thread by token.
    ticket = store.tickets.get(300)
    assert ticket is not None and ticket["first_response_at"] is None
    [ack] = store.rows("outbox", ticket_id=300, template="ack")
    mail = make_mail(sender=ticket["requester"], headers={"In-Reply-To": ack["message_id"]})
    bot.deliver(mail, now=NOW)
    notice = store.rows("outbox", ticket_id=300, template="agent_new")[0]
    answer = make_mail(sender=notice["to_addr"], headers={"In-Reply-To": notice["message_id"]})
    bot.deliver(answer, now=NOW)
    events = [r["kind"] for r in store.events.of_ticket(300)]
    assert events[-5:] == ["follow-up", "agent-mail", "replied", "assign", "first-response"]
    assert store.count("tickets") == 300


def test_bulk_seeding_puts_the_settings_and_indexes_back(bot) -> None:
    store = bot.ctx.store

    before = store.schema()
    seed_tickets(bot.ctx, 50, now=NOW, bulk=True)
    assert store.schema() == before
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == 2  # FULL
    assert store.pragma("integrity_check") == "ok"
