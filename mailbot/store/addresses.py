"""Queries of addresses that get no automatic mail for a while (hard bounces)."""

from __future__ import annotations

from datetime import datetime
from sqlite3 import Row

from mailbot.store.base import Queries, to_db


class Addresses(Queries):
    def undeliverable(self, address: str, now: datetime) -> Row | None:
        """(until, reason) while mail to `address` is held back, else None."""
        return self.store.one(
            "SELECT until, reason FROM undeliverable WHERE address = ? AND until > ?",
            (address.lower(), to_db(now)),
        )

    def mark_undeliverable(self, address: str, until: datetime, reason: str, now: datetime) -> None:
        """Held back until `until`, or longer when it already was."""
        self.store.execute(
            "INSERT INTO undeliverable (address, until, reason, marked_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (address) DO UPDATE SET until = max(until, excluded.until),"
            " reason = excluded.reason, marked_at = excluded.marked_at",
            (address.lower(), to_db(until), reason[:500], to_db(now)),
        )
