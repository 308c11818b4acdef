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

    def pending(self, limit: int) -> list[Row]:
        """The oldest messages waiting for the pipeline (without their raw bytes)."""
        return self.store.all(
            "SELECT id, received_at, source, source_ref, envelope_from, envelope_to, no_replies,"
            " attempts, size"
            " FROM inbound WHERE status = 'pending' ORDER BY id LIMIT ?",
            (limit,),
        )

    def hashes(self, after_id: int, limit: int) -> list[Row]:
        """(id, sha256, size) of stored messages with ids above `after_id`, in id order."""
        return self.store.all(
            "SELECT id, sha256, size FROM inbound WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )

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
