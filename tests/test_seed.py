"""mailbot.seed: seeded tickets are what the pipeline would have made of them."""

from __future__ import annotations

import random
from datetime import timedelta

from mailbot import sla_timers
from mailbot.seed import seed_tickets
from tests.helpers import WARSAW_NOON, make_mail

NOW = WARSAW_NOON + timedelta(days=30)


def test_seeded_tickets_agree_with_the_product(bot) -> None:
    store = bot.ctx.store
    seeded = seed_tickets(bot.ctx, 300, now=NOW, queue=0.05, rng=random.Random(1))
    assert seeded.tickets == range(1, 301) and seeded.rows["tickets"] == 300
    queued = store.scalar(
        "SELECT count(*) FROM tickets WHERE status = 'open' AND first_response_at IS NULL"
    )
    assert queued >= 15 and store.scalar("SELECT value FROM counters") == queued
    # Due times and timers are the calendar's: recomputing them changes nothing.
    assert sla_timers.recompute_open(bot.ctx, NOW) == 0
    assert store.scalar("SELECT count(*) FROM outbox WHERE status != 'sent'") == 0
    assert not store.scalar("SELECT count(*) FROM timers WHERE status = 'scheduled' AND due_at < ?",
                            (NOW.isoformat(),))  # fmt: skip
    # Our Message-IDs are signed for each ticket and recipient: replies thread by token.
    ticket = store.ticket(300)
    assert ticket is not None and ticket["first_response_at"] is None
    ack = store.scalar("SELECT message_id FROM outbox WHERE ticket_id = 300 AND template = 'ack'")
    bot.deliver(make_mail(sender=ticket["requester"], headers={"In-Reply-To": ack}), now=NOW)
    notice = store.one("SELECT to_addr, message_id FROM outbox WHERE ticket_id = 300"
                       " AND template = 'agent_new' ORDER BY id LIMIT 1")  # fmt: skip
    assert notice is not None
    answer = make_mail(sender=notice["to_addr"], headers={"In-Reply-To": notice["message_id"]})
    bot.deliver(answer, now=NOW)
    events = [r["kind"] for r in store.all("SELECT kind FROM events WHERE ticket_id = 300")]
    assert events[-5:] == ["follow-up", "agent-mail", "replied", "assign", "first-response"]
    assert store.scalar("SELECT count(*) FROM tickets") == 300


def test_bulk_seeding_puts_the_settings_and_indexes_back(bot) -> None:
    store = bot.ctx.store

    def indexes() -> list[tuple]:
        return [tuple(r) for r in store.all("SELECT name, sql FROM sqlite_master ORDER BY name")]

    before = indexes()
    seed_tickets(bot.ctx, 50, now=NOW, bulk=True)
    assert indexes() == before
    assert store.scalar("PRAGMA journal_mode") == "wal"
    assert store.scalar("PRAGMA synchronous") == 2  # FULL
    assert store.scalar("PRAGMA integrity_check") == "ok"
