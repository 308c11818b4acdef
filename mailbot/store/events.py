"""Queries of the audit trail: what was decided about a ticket or message, why and by whom."""

from __future__ import annotations

from datetime import datetime
from sqlite3 import Row

from mailbot.store.base import Queries, to_db


class Events(Queries):
    def add(
        self,
        kind: str,
        detail: str,
        *,
        at: datetime,
        ticket_id: int | None = None,
        inbound_id: int | None = None,
        actor: str = "mailbot",
    ) -> None:
        self.store.insert(
            "events",
            {
                "ticket_id": ticket_id,
                "inbound_id": inbound_id,
                "at": to_db(at),
                "actor": actor,
                "kind": kind,
                "detail": detail,
            },
        )

    def of_ticket(self, ticket_id: int) -> list[Row]:
        return self.store.all("SELECT * FROM events WHERE ticket_id = ? ORDER BY id", (ticket_id,))
