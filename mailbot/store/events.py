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

    # The circuit breaker's events (`mailbot.loops`) and warnings about forged agent mail, as
    # indexed by events_guard: a query names them all to read that index.
    GUARD_KINDS = "kind IN ('flood-tripped', 'flood-held', 'flood-held-hot', 'unverified-warned')"

    def flood(self, held_since: datetime, hot_since: datetime) -> tuple[int, datetime | None]:
        """Automatic answers the breaker held since `held_since`, and the last time since
        `hot_since` it tripped or held one while answers came faster than the limit."""
        row = self.store.one(
            "SELECT count(*) FILTER (WHERE kind IN ('flood-held', 'flood-held-hot') AND at > ?),"
            " max(at) FILTER (WHERE kind IN ('flood-tripped', 'flood-held-hot'))"
            f" FROM events WHERE {self.GUARD_KINDS} AND at > ?",
            (to_db(held_since), to_db(min(held_since, hot_since))),
        )
        assert row is not None
        return int(row[0]), datetime.fromisoformat(row[1]) if row[1] else None

    def warned_about(self, address: str, since: datetime) -> bool:
        """Whether agents were warned since `since` about forged mail claiming `address`."""
        return bool(
            self.store.scalar(
                f"SELECT 1 FROM events WHERE {self.GUARD_KINDS} AND kind = 'unverified-warned'"
                " AND at > ? AND detail = ? LIMIT 1",
                (to_db(since), address),
            )
        )
