"""The SQLite store: one connection, its transactions, and the named queries of every table.

All SQL of mailbot lives in this package: `schema` holds the migrations, `base` the connection
and its transactions, and one module per table or concern holds its queries as methods
(`store.tickets.get(7)`, `store.outbox.due(now, limit)`). The rest of mailbot calls those
names, never SQL; a second database backend would plug in here.
"""

from __future__ import annotations

from pathlib import Path

from mailbot.store import (
    addresses,
    escalations,
    events,
    inbound,
    messages,
    outbox,
    tickets,
    timers,
)
from mailbot.store.base import Connection, RowLike, from_db, to_db

__all__ = ["RowLike", "Store", "from_db", "to_db"]


class Store(Connection):
    """One connection to the mailbot database with every table's queries; one per thread."""

    def __init__(self, path: Path | str, *, migrate: bool = True) -> None:
        super().__init__(path, migrate=migrate)
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
