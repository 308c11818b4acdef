"""Queries of a ticket's messages (in and out) and of the attachments they carried."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from sqlite3 import Row
from typing import Any

from mailbot.store.base import Queries


class Messages(Queries):
    def insert(self, row: dict[str, Any]) -> int:
        return self.store.insert("messages", row)

    def has(self, message_id: str, from_addr: str) -> bool:
        """Whether this Message-ID from this sender is stored already (a duplicate)."""
        return bool(
            self.store.scalar(
                "SELECT 1 FROM messages WHERE message_id = ? AND from_addr = ? LIMIT 1",
                (message_id, from_addr),
            )
        )

    def ticket_by_message_ids(self, message_ids: Iterable[str]) -> tuple[int, str] | None:
        """The ticket holding any of these Message-IDs (ours or a customer's), latest first."""
        for mid in message_ids:
            row = self.store.one(
                "SELECT ticket_id FROM messages WHERE message_id = ? ORDER BY id DESC LIMIT 1",
                (mid,),
            ) or self.store.one(
                "SELECT ticket_id FROM outbox WHERE message_id = ? AND ticket_id IS NOT NULL",
                (mid,),
            )
            if row:
                return int(row[0]), mid
        return None

    def first_customer_message_id(self, ticket_id: int) -> str | None:
        return self.store.scalar(
            "SELECT message_id FROM messages WHERE ticket_id = ? AND kind = 'customer'"
            " AND message_id IS NOT NULL ORDER BY id LIMIT 1",
            (ticket_id,),
        )

    def conversation(self, ticket_id: int) -> list[Row]:
        """(direction, kind, message_id) of the mail the customer sees, oldest first."""
        return self.store.all(
            "SELECT direction, kind, message_id FROM messages WHERE ticket_id = ?"
            " AND message_id IS NOT NULL AND kind IN ('customer', 'agent', 'system') ORDER BY id",
            (ticket_id,),
        )

    def of_ticket(self, ticket_id: int) -> list[Row]:
        return self.store.all(
            "SELECT * FROM messages WHERE ticket_id = ? ORDER BY id", (ticket_id,)
        )

    def first_answer(self, ticket_id: int) -> Row | None:
        """The first agent answer that went to the ticket's customer (from_addr, from_name)."""
        return self.store.one(
            "SELECT from_addr, from_name, created_at FROM messages WHERE ticket_id = ?"
            " AND direction = 'out' AND kind = 'agent' ORDER BY id LIMIT 1",
            (ticket_id,),
        )

    def first_answerers(self) -> dict[int, str]:
        """ticket id → the agent whose answer reached its customer first."""
        return {
            row["ticket_id"]: row["from_addr"]
            for row in self.store.all(
                "SELECT ticket_id, from_addr FROM messages"
                " WHERE direction = 'out' AND kind = 'agent'"
                " ORDER BY id DESC"  # the dict keeps the last written: the first message wins
            )
        }


class Attachments(Queries):
    def insert(self, row: dict[str, Any]) -> int:
        return self.store.insert("attachments", row)

    def of_message(self, message_row: int) -> list[Row]:
        return self.store.all(
            "SELECT * FROM attachments WHERE message_row = ? ORDER BY id", (message_row,)
        )

    def get(self, attachment_id: int) -> Row | None:
        return self.store.one("SELECT * FROM attachments WHERE id = ?", (attachment_id,))

    def of_ticket(self, ticket_id: int) -> list[Row]:
        """Every attachment of the ticket's inbound messages, with its sender, oldest first."""
        return self.store.all(
            "SELECT a.*, m.kind, m.from_addr FROM attachments a"
            " JOIN messages m ON m.id = a.message_row"
            " WHERE m.ticket_id = ? AND m.direction = 'in' ORDER BY a.id",
            (ticket_id,),
        )

    def by_ids(self, ids: Sequence[int]) -> list[Row]:
        if not ids:
            return []
        return self.store.all(
            f"SELECT * FROM attachments WHERE id IN ({','.join('?' * len(ids))})", tuple(ids)
        )
