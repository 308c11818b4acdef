"""Queries of the durable inbox (`inbound`) and of the IMAP poller's place in each folder."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from sqlite3 import Row
from typing import Any

from mailbot.store.base import Queries, to_db

LISTED = (
    "id, received_at, source, source_ref, envelope_from, message_id, size, status,"
    " attempts, reason, error, ticket_id, processed_at"
)


class Inbound(Queries):
    def add(
        self,
        raw: bytes,
        *,
        source: str,
        received_at: datetime,
        source_ref: str | None = None,
        envelope_from: str | None = None,
        envelope_to: Iterable[str] = (),
        message_id: str | None = None,
        no_replies: bool = False,
    ) -> tuple[int, bool]:
        """Keep the raw bytes: (id, True) when new, (existing id, False) when seen before."""
        digest = hashlib.sha256(raw).hexdigest()
        existing = self.store.scalar("SELECT id FROM inbound WHERE sha256 = ?", (digest,))
        if existing:
            return existing, False
        row_id = self.store.insert(
            "inbound",
            {
                "received_at": to_db(received_at),
                "source": source,
                "source_ref": source_ref,
                "envelope_from": envelope_from,
                "envelope_to": json.dumps(list(envelope_to)),
                "sha256": digest,
                "message_id": message_id,
                "size": len(raw),
                "no_replies": int(no_replies),
                "raw": raw,
            },
        )
        return row_id, True

    def get(self, inbound_id: int) -> Row | None:
        """The row without its raw bytes."""
        return self.store.one(
            f"SELECT {LISTED}, no_replies FROM inbound WHERE id = ?", (inbound_id,)
        )

    def raw(self, inbound_id: int) -> bytes:
        """Fetched one at a time: a batch of large messages must not sit in memory together."""
        return self.store.scalar("SELECT raw FROM inbound WHERE id = ?", (inbound_id,))

    def pending(self, limit: int, *, by_time: bool = False) -> list[Row]:
        """The oldest messages waiting for the pipeline (without their raw bytes).

        In order of storing, or `by_time` of their received_at (a history import's).
        """
        return self.store.all(
            "SELECT id, received_at, source, source_ref, envelope_from, envelope_to, no_replies,"
            " attempts, size"
            " FROM inbound WHERE status = 'pending'"
            f" ORDER BY {'received_at, id' if by_time else 'id'} LIMIT ?",
            (limit,),
        )

    def hashes(self, after_id: int, limit: int) -> list[Row]:
        """(id, sha256, size) of stored messages with ids above `after_id`, in id order."""
        return self.store.all(
            "SELECT id, sha256, size FROM inbound WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )

    def history_summary(self, sources: tuple[str, ...]) -> dict[str, int]:
        """What became of the mail of these sources: count per status, and per ignore reason
        kind ("automatic": machine-sent mail nobody answers)."""
        marks = ", ".join("?" * len(sources))
        row = self.store.one(
            "SELECT count(*) AS messages,"
            " count(*) FILTER (WHERE status = 'processed') AS processed,"
            " count(*) FILTER (WHERE status = 'pending') AS pending,"
            " count(*) FILTER (WHERE status = 'quarantined') AS quarantined,"
            " count(*) FILTER (WHERE status = 'ignored' AND reason LIKE 'automatic mail%')"
            " AS automatic,"
            " count(*) FILTER (WHERE status IN ('ignored', 'duplicate')"
            " AND reason NOT LIKE 'automatic mail%') AS ignored"
            f" FROM inbound WHERE source IN ({marks})",
            sources,
        )
        assert row is not None
        return dict(row)

    def history_tickets(self, sources: tuple[str, ...]) -> dict[str, int]:
        """Tickets the mail of these sources is on: how many, answered, unanswered."""
        marks = ", ".join("?" * len(sources))
        row = self.store.one(
            "SELECT count(*) AS tickets,"
            " count(*) FILTER (WHERE first_response_at IS NOT NULL) AS answered,"
            " count(*) FILTER (WHERE first_response_at IS NULL) AS unanswered"
            " FROM tickets WHERE id IN (SELECT ticket_id FROM inbound"
            f" WHERE source IN ({marks}) AND ticket_id IS NOT NULL)",
            sources,
        )
        assert row is not None
        return dict(row)

    def update(self, inbound_id: int, values: dict[str, Any]) -> None:
        self.store.update("inbound", inbound_id, values)

    def listing(self, status: str | None = None) -> list[Row]:
        if status:
            return self.store.all(
                f"SELECT {LISTED} FROM inbound WHERE status = ? ORDER BY id", (status,)
            )
        return self.store.all(f"SELECT {LISTED} FROM inbound ORDER BY id")


class ImapState(Queries):
    def get(self, folder: str) -> Row | None:
        """(uidvalidity, last_uid) stored for the folder, or None."""
        return self.store.one(
            "SELECT uidvalidity, last_uid FROM imap_state WHERE folder = ?", (folder,)
        )

    def set(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        self.store.execute(
            "INSERT INTO imap_state (folder, uidvalidity, last_uid) VALUES (?, ?, ?)"
            " ON CONFLICT (folder) DO UPDATE SET uidvalidity = excluded.uidvalidity,"
            " last_uid = excluded.last_uid",
            (folder, uidvalidity, last_uid),
        )
