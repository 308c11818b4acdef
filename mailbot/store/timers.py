"""Queries of the `timers` table: the source of truth for everything that happens later."""

from __future__ import annotations

import json
from datetime import datetime
from sqlite3 import Row
from typing import Any

from mailbot.store.base import Queries, to_db


class Timers(Queries):
    def add(
        self,
        *,
        kind: str,
        due: datetime,
        now: datetime,
        ticket_id: int | None,
        payload: dict[str, Any] | None = None,
        status: str = "scheduled",
    ) -> int:
        """A timer row; `status` "skipped": its moment passed before a history import."""
        return self.store.insert(
            "timers",
            {
                "ticket_id": ticket_id,
                "kind": kind,
                "due_at": to_db(due),
                "payload": json.dumps(payload or {}),
                "created_at": to_db(now),
                "status": status,
            },
        )

    def get(self, timer_id: int) -> Row | None:
        return self.store.one("SELECT * FROM timers WHERE id = ?", (timer_id,))

    def of_ticket(self, ticket_id: int, kinds: tuple[str, ...]) -> list[Row]:
        return self.store.all(
            f"SELECT * FROM timers WHERE ticket_id = ? AND kind IN ({','.join('?' * len(kinds))})"
            " ORDER BY id",
            (ticket_id, *kinds),
        )

    def cancel(self, ticket_id: int, kinds: tuple[str, ...] | None = None) -> int:
        """Cancel the ticket's scheduled timers (of these kinds); returns how many."""
        sql = "UPDATE timers SET status = 'cancelled' WHERE ticket_id = ? AND status = 'scheduled'"
        params: list[Any] = [ticket_id]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params.extend(kinds)
        return self.store.execute(sql, params).rowcount

    def cancel_one(self, timer_id: int) -> None:
        self.store.update("timers", timer_id, {"status": "cancelled"})

    def claim(self, timer_id: int, now: datetime) -> bool:
        """scheduled → fired; False when it fired or was cancelled already (at most once)."""
        return bool(
            self.store.execute(
                "UPDATE timers SET status = 'fired', fired_at = ?"
                " WHERE id = ? AND status = 'scheduled'",
                (to_db(now), timer_id),
            ).rowcount
        )

    def record_failure(self, timer_id: int, attempts: int, error: str, final: bool) -> None:
        values: dict[str, Any] = {"attempts": attempts, "error": error}
        if final:
            values["status"] = "failed"
        self.store.update("timers", timer_id, values)

    def due_ids(self, now: datetime) -> list[int]:
        """Scheduled timers due by `now`, oldest first."""
        return [
            row["id"]
            for row in self.store.all(
                "SELECT id FROM timers WHERE status = 'scheduled' AND due_at <= ?"
                " ORDER BY due_at, id",
                (to_db(now),),
            )
        ]

    def scheduled_until(self, moment: datetime) -> list[Row]:
        """(id, due_at) of scheduled timers due by `moment`."""
        return self.store.all(
            "SELECT id, due_at FROM timers WHERE status = 'scheduled' AND due_at <= ?",
            (to_db(moment),),
        )

    def unattached(self, kind: str, status: str, limit: int = 10) -> list[Row]:
        """Timers of `kind` about no ticket (e.g. the daily digest) in `status`, latest first."""
        return self.store.all(
            "SELECT * FROM timers WHERE ticket_id IS NULL AND kind = ? AND status = ?"
            " ORDER BY due_at DESC, id DESC LIMIT ?",
            (kind, status, limit),
        )
