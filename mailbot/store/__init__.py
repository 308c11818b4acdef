"""The SQLite store: one connection, its transactions, and the named queries of every table.

All SQL of mailbot lives in this package: `schema` holds the migrations, `base` the connection
and its transactions, and one module per table or concern holds its queries as methods
(`store.tickets.get(7)`, `store.outbox.due(now, limit)`). The rest of mailbot calls those
names, never SQL; a second database backend would plug in here.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from mailbot.store import (
    addresses,
    escalations,
    events,
    inbound,
    install,
    messages,
    outbox,
    personal,
    stats,
    tickets,
    timers,
)
from mailbot.store.base import Connection, RowLike, from_db, to_db

__all__ = ["RowLike", "Store", "from_db", "to_db"]


class Store(Connection):
    """One connection to the mailbot database with every table's queries; one per thread."""

    def __init__(self, path: Path | str, *, migrate: bool = True, wal: bool = True) -> None:
        super().__init__(path, migrate=migrate, wal=wal)
        self.inbound = inbound.Inbound(self)
        self.imap = inbound.ImapState(self)
        self.tickets = tickets.Tickets(self)
        self.participants = tickets.Participants(self)
        self.pauses = tickets.Pauses(self)
        self.messages = messages.Messages(self)
        self.attachments = messages.Attachments(self)
        self.events = events.Events(self)
        self.outbox = outbox.Outbox(self)
        self.timers = timers.Timers(self)
        self.escalations = escalations.Escalations(self)
        self.addresses = addresses.Addresses(self)
        self.install = install.Install(self)
        self.stats = stats.Stats(self)
        self.personal = personal.Personal(self)

    def pending_work(self, now: datetime) -> dict[str, int]:
        """What is left for the daemon to do at `now`; all zero means it is idle.

        Counts stored mail the worker has not taken through the pipeline, outbox rows due for
        delivery and timers due to fire. Each stays counted until the transaction that carries
        it out commits, and an outbox row is marked sent only after the relay accepted it, so
        once all three are zero every effect of the mail stored so far has happened (tests wait
        for this instead of sleeping). One statement, so one snapshot: counted one by one, a
        timer could fire between the outbox count and the timers count and be missed by both.
        Mail still on the IMAP server is not counted: nobody fetched it yet.
        """
        row = self.one(
            "SELECT (SELECT count(*) FROM inbound WHERE status = 'pending') AS inbound,"
            " (SELECT count(*) FROM outbox INDEXED BY outbox_due"
            "  WHERE status = 'pending' AND next_attempt_at <= :due) AS outbox,"
            " (SELECT count(*) FROM timers WHERE status = 'scheduled' AND due_at <= :due)"
            " AS timers",
            {"due": to_db(now)},
        )
        assert row is not None
        return dict(row)
