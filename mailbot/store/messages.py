"""Queries of a ticket's messages (in and out) and of the attachments they carried."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from sqlite3 import Row
from typing import Any

from mailbot.store.base import Queries

# Message-IDs are stored as received and compared ignoring case (ASCII, as SQLite's NOCASE
# folds): rows from before m006 hold lower-cased ids, and some MTAs change the case. The
# messages_message_id index is in that collation, so each lookup is an index search.
HAS_SQL = "SELECT 1 FROM messages WHERE message_id = ? COLLATE NOCASE AND from_addr = ? LIMIT 1"
TICKET_BY_ID_SQL = (
    "SELECT ticket_id FROM messages WHERE message_id = ? COLLATE NOCASE ORDER BY id DESC LIMIT 1"
)
# Our own ids are lower case by construction (tokens.Signer), so a lower-cased probe of the
# outbox's unique index also finds one whose case an MTA changed.
OUTBOX_TICKET_BY_ID_SQL = (
    "SELECT ticket_id FROM outbox WHERE message_id = ? AND ticket_id IS NOT NULL"
)
# Kept on a ticket but not a customer's mail: an agent's own mail, notes, automatic mail.
KEPT_INTERNAL_SQL = (
    "SELECT message_id FROM messages WHERE message_id COLLATE NOCASE IN ({marks})"
    " AND direction = 'in' AND kind != 'customer'"
)
# Sent by us but never recorded as sent to a customer: notifications to staff.
SENT_TO_STAFF_SQL = (
    "SELECT message_id FROM outbox WHERE message_id IN ({marks}) AND NOT EXISTS"
    " (SELECT 1 FROM messages m WHERE m.message_id = outbox.message_id COLLATE NOCASE"
    " AND m.direction = 'out')"
)


class Messages(Queries):
    def insert(self, row: dict[str, Any]) -> int:
        return self.store.insert("messages", row)

    def has(self, message_id: str, from_addr: str) -> bool:
        """Whether this Message-ID (in any case) from this sender is stored already."""
        return bool(self.store.scalar(HAS_SQL, (message_id, from_addr)))

    def ticket_by_message_ids(self, message_ids: Iterable[str]) -> tuple[int, str] | None:
        """The ticket holding any of these Message-IDs (ours or a customer's), latest first."""
        for mid in message_ids:
            row = self.store.one(TICKET_BY_ID_SQL, (mid,)) or self.store.one(
                OUTBOX_TICKET_BY_ID_SQL, (mid.lower(),)
            )
            if row:
                return int(row[0]), mid
        return None

    def internal_ids(self, message_ids: Sequence[str]) -> set[str]:
        """Those of these ids (lower-cased) a customer must never see in References.

        Mail kept on a ticket that is not a customer's (an agent's own mail as it reached us,
        notes, automatic mail) and mail we sent that was not recorded as sent to the customer
        (notifications to agents, managers, leads).
        """
        if not message_ids:
            return set()
        lowered = tuple(dict.fromkeys(m.lower() for m in message_ids))
        marks = ", ".join("?" * len(lowered))
        kept = self.store.all(KEPT_INTERNAL_SQL.format(marks=marks), lowered)
        staff = self.store.all(SENT_TO_STAFF_SQL.format(marks=marks), lowered)
        return {row[0].lower() for row in (*kept, *staff)}

    def lookup_plans(self) -> dict[str, list[str]]:
        """How SQLite answers each Message-ID lookup (EXPLAIN QUERY PLAN), by method name."""
        one = ("<x@example.com>",)
        statements = {
            "has": (HAS_SQL, (*one, "x@example.com")),
            "ticket_by_message_ids": (TICKET_BY_ID_SQL, one),
            "ticket_by_message_ids (outbox)": (OUTBOX_TICKET_BY_ID_SQL, one),
            "internal_ids (kept)": (KEPT_INTERNAL_SQL.format(marks="?, ?"), one * 2),
            "internal_ids (staff)": (SENT_TO_STAFF_SQL.format(marks="?, ?"), one * 2),
        }
        return {
            name: [row["detail"] for row in self.store.all(f"EXPLAIN QUERY PLAN {sql}", params)]
            for name, (sql, params) in statements.items()
        }

    def first_customer_message_id(self, ticket_id: int) -> str | None:
        return self.store.scalar(
            "SELECT message_id FROM messages WHERE ticket_id = ? AND kind = 'customer'"
            " AND message_id IS NOT NULL ORDER BY id LIMIT 1",
            (ticket_id,),
        )

    def conversation(self, ticket_id: int) -> list[Row]:
        """(direction, kind, message_id, refs) of the mail the customer sees, oldest first.

        The customers' own mail (with the ids it referenced) and what we sent them; never an
        agent's mail as it reached us, a note, or automatic mail (bounces, auto-replies).
        """
        return self.store.all(
            "SELECT direction, kind, message_id, refs FROM messages WHERE ticket_id = ?"
            " AND message_id IS NOT NULL AND (direction = 'out' OR kind = 'customer')"
            " ORDER BY id",
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

    def files(self) -> list[Row]:
        """(path, sha256, size) of every stored attachment file, once per file; files that
        retention or `customer forget` removed (`purged_at`) are not stored any more."""
        return self.store.all(
            "SELECT path, min(sha256) AS sha256, min(size) AS size FROM attachments"
            " WHERE purged_at IS NULL GROUP BY path ORDER BY path"
        )

    def by_ids(self, ids: Sequence[int]) -> list[Row]:
        if not ids:
            return []
        return self.store.all(
            f"SELECT * FROM attachments WHERE id IN ({','.join('?' * len(ids))})", tuple(ids)
        )
