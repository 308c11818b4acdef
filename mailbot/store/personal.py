"""Queries of personal data: what is held about an address, erasing it, and retention purges.

`mailbot.privacy` decides what goes; these methods find and change the rows. Addresses are
compared in lower case, as mailbot stores them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from sqlite3 import Row
from typing import Any

from mailbot.store.base import Queries, to_db

EMAIL_RE = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
ADDRESS_COLUMNS = {"from_addr", "requester", "to_addr", "cc", "actor"}
ERASED = "[erased]"  # what stands for erased text that may not be empty (subjects, file names)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


class Personal(Queries):
    # -- finding ---------------------------------------------------------------------------

    def tickets_of(self, address: str) -> dict[int, str]:
        """ticket id → the address's role in it (requester, cc), wherever it takes part."""
        roles = {
            row["id"]: "requester"
            for row in self.store.all("SELECT id FROM tickets WHERE requester = ?", (address,))
        }
        for row in self.store.all(
            "SELECT ticket_id, role FROM participants WHERE address = ?", (address,)
        ):
            roles.setdefault(row["ticket_id"], row["role"])
        return roles

    def participants(self, ticket_ids: Sequence[int]) -> list[Row]:
        return self.store.all(
            f"SELECT * FROM participants WHERE ticket_id IN ({_marks(ticket_ids)})"
            " ORDER BY ticket_id, address",
            tuple(ticket_ids),
        )

    def names_of(self, address: str) -> set[str]:
        """The display names the address came with (participants, tickets, messages)."""
        rows = self.store.all(
            "SELECT name FROM participants WHERE address = ?"
            " UNION SELECT requester_name FROM tickets WHERE requester = ?"
            " UNION SELECT from_name FROM messages WHERE from_addr = ?",
            (address, address, address),
        )
        return {row[0].strip() for row in rows if row[0] and row[0].strip()}

    def message_ids(self, ticket_ids: Sequence[int], address: str) -> list[int]:
        """Messages of these tickets, and the address's own messages anywhere."""
        return [
            row[0]
            for row in self.store.all(
                f"SELECT id FROM messages WHERE ticket_id IN ({_marks(ticket_ids)})"
                " OR from_addr = ? ORDER BY id",
                (*ticket_ids, address),
            )
        ]

    def messages_naming(self, ticket_ids: Sequence[int], needles: Sequence[str]) -> list[int]:
        """Messages of these tickets whose text or subject holds any of `needles` (lower)."""
        if not needles:
            return []
        naming = " OR ".join(
            "instr(lower(text || ' ' || coalesce(subject, '')), ?) > 0" for _ in needles
        )
        return [
            row[0]
            for row in self.store.all(
                f"SELECT id FROM messages WHERE ticket_id IN ({_marks(ticket_ids)})"
                f" AND ({naming}) ORDER BY id",
                (*ticket_ids, *needles),
            )
        ]

    def inbound_ids(
        self, message_ids: Sequence[int], ticket_ids: Sequence[int], address: str | None
    ) -> list[int]:
        """Inbound mail of these messages or tickets, and (with `address`) from it or naming it.

        Naming reads every stored message (quarantined and ignored mail too): erasure is
        rare, and a copy of the address in someone else's Cc must not be missed.
        """
        naming = ""
        params: tuple[Any, ...] = (*message_ids, *ticket_ids, *ticket_ids)
        if address:
            naming = " OR lower(envelope_from) = ? OR instr(lower(CAST(raw AS TEXT)), ?) > 0"
            params += (address, address)
        return [
            row[0]
            for row in self.store.all(
                "SELECT id FROM inbound WHERE"
                f" id IN (SELECT inbound_id FROM messages WHERE id IN ({_marks(message_ids)}))"
                f" OR id IN (SELECT original_inbound FROM outbox"
                f"  WHERE ticket_id IN ({_marks(ticket_ids)}))"
                f" OR ticket_id IN ({_marks(ticket_ids)}){naming} ORDER BY id",
                params,
            )
        ]

    def inbound_naming(self, names: Sequence[str], ticket_ids: Sequence[int]) -> list[int]:
        """Inbound mail of these tickets whose raw bytes hold any of `names` (as written, or
        in ASCII lower case): an agent's answer quoting someone who named the customer."""
        if not names:
            return []
        naming = " OR ".join(
            "instr(CAST(raw AS TEXT), ?) > 0 OR instr(lower(CAST(raw AS TEXT)), ?) > 0"
            for _ in names
        )
        return [
            row[0]
            for row in self.store.all(
                f"SELECT id FROM inbound WHERE ticket_id IN ({_marks(ticket_ids)})"
                f" AND ({naming}) ORDER BY id",
                (*ticket_ids, *(v for n in names for v in (n, n.lower()))),
            )
        ]

    def attachments_of(self, message_ids: Sequence[int]) -> list[Row]:
        return self.store.all(
            f"SELECT * FROM attachments WHERE message_row IN ({_marks(message_ids)}) ORDER BY id",
            tuple(message_ids),
        )

    def outbox_ids(self, ticket_ids: Sequence[int], needles: Sequence[str]) -> list[int]:
        """Outgoing mail of these tickets, or to or naming any of `needles` (lower case)."""
        naming = " OR ".join(
            "instr(lower(to_addr || ' ' || cc || ' ' || subject || ' ' || body), ?) > 0"
            for _ in needles
        )
        return [
            row[0]
            for row in self.store.all(
                f"SELECT id FROM outbox WHERE ticket_id IN ({_marks(ticket_ids)})"
                + (f" OR {naming}" if naming else "")
                + " ORDER BY id",
                (*ticket_ids, *needles),
            )
        ]

    def outbox_naming(self, ticket_ids: Sequence[int], names: Sequence[str]) -> list[int]:
        """Outgoing mail of these tickets whose subject or body holds any of `names`."""
        if not names or not ticket_ids:
            return []
        naming = " OR ".join("instr(lower(subject || ' ' || body), ?) > 0" for _ in names)
        return [
            row[0]
            for row in self.store.all(
                f"SELECT id FROM outbox WHERE ticket_id IN ({_marks(ticket_ids)})"
                f" AND ({naming}) ORDER BY id",
                (*ticket_ids, *(n.lower() for n in names)),
            )
        ]

    def event_ids(self, ticket_ids: Sequence[int], needles: Sequence[str]) -> list[int]:
        naming = " OR ".join("instr(lower(actor || ' ' || detail), ?) > 0" for _ in needles)
        return [
            row[0]
            for row in self.store.all(
                f"SELECT id FROM events WHERE ticket_id IN ({_marks(ticket_ids)})"
                + (f" OR {naming}" if naming else "")
                + " ORDER BY id",
                (*ticket_ids, *needles),
            )
        ]

    def escalation_ids(self, address: str) -> list[int]:
        return [
            row[0]
            for row in self.store.all(
                "SELECT id FROM escalations WHERE customer = ? ORDER BY id", (address,)
            )
        ]

    def outbox_to(self, address: str) -> list[int]:
        return [
            row[0]
            for row in self.store.all(
                "SELECT id FROM outbox WHERE to_addr = ? ORDER BY id", (address,)
            )
        ]

    def by_ids(self, table: str, ids: Sequence[int], columns: str = "*") -> list[Row]:
        """Rows of `table` by id, in id order (for the export)."""
        return self.store.all(
            f"SELECT {columns} FROM {table} WHERE id IN ({_marks(ids)}) ORDER BY id", tuple(ids)
        )

    def undeliverable(self, address: str) -> list[Row]:
        return self.store.all("SELECT * FROM undeliverable WHERE address = ?", (address,))

    # -- erasing ---------------------------------------------------------------------------

    def blank_messages(self, ids: Sequence[int]) -> int:
        """Texts, subjects and the customer's chain of ids of these messages, gone."""
        return self.store.execute(
            f"UPDATE messages SET text = '', subject = NULL, refs = NULL,"
            f" message_id = CASE WHEN direction = 'in' THEN NULL ELSE message_id END"
            f" WHERE id IN ({_marks(ids)})",
            tuple(ids),
        ).rowcount

    def blank_tickets(self, ids: Sequence[int], now: datetime) -> int:
        return self.store.execute(
            f"UPDATE tickets SET subject = ?, requester_name = NULL, erased_at = ?"
            f" WHERE id IN ({_marks(ids)})",
            (ERASED, to_db(now), *ids),
        ).rowcount

    def blank_outbox(self, ids: Sequence[int], from_name: str) -> int:
        """Bodies and subjects gone, the sender's name `from_name` ("Jan Kowalski via 4Dustry"
        names the customer); mail not sent yet will not be (it would be empty)."""
        self.store.execute(
            f"UPDATE outbox SET status = 'failed', last_error = 'erased before it was sent'"
            f" WHERE status = 'pending' AND id IN ({_marks(ids)})",
            tuple(ids),
        )
        return self.store.execute(
            f"UPDATE outbox SET subject = ?, body = '', from_name = ?, in_reply_to = NULL,"
            f" refs = NULL, original_inbound = NULL WHERE id IN ({_marks(ids)})",
            (ERASED, from_name, *ids),
        ).rowcount

    def purge_raw(self, ids: Sequence[int], *, keep_reason: bool = False) -> int:
        """The raw bytes and sender of inbound mail gone; size and SHA-256 stay.

        `keep_reason` keeps why mail was ignored or quarantined ("auto-reply", "too large"),
        which retention may; erasure drops it, since it may quote the sender.
        """
        self.store.execute(
            f"UPDATE outbox SET original_inbound = NULL WHERE original_inbound IN ({_marks(ids)})",
            tuple(ids),
        )
        return self.store.execute(
            f"UPDATE inbound SET raw = x'', envelope_from = NULL, envelope_to = '[]',"
            f" source_ref = NULL, message_id = NULL, error = NULL"
            f"{'' if keep_reason else ', reason = NULL'}"
            f" WHERE id IN ({_marks(ids)}) AND (length(raw) > 0 OR envelope_from IS NOT NULL)",
            tuple(ids),
        ).rowcount

    def purge_attachments(self, ids: Sequence[int], now: datetime) -> list[str]:
        """Rows marked purged; returns the files no attachment still kept refers to."""
        if not ids:
            return []
        paths = [
            row[0]
            for row in self.store.all(
                f"SELECT DISTINCT path FROM attachments WHERE id IN ({_marks(ids)})", tuple(ids)
            )
        ]
        self.store.execute(
            f"UPDATE attachments SET filename = ?, purged_at = ?"
            f" WHERE id IN ({_marks(ids)}) AND purged_at IS NULL",
            (ERASED, to_db(now), *ids),
        )
        still = {
            row[0]
            for row in self.store.all(
                f"SELECT path FROM attachments WHERE purged_at IS NULL"
                f" AND path IN ({_marks(paths)})",
                tuple(paths),
            )
        }
        return [p for p in paths if p not in still]

    def replace_address(self, old: str, new: str, ticket_ids: Sequence[int] | None = None) -> int:
        """The address `old` becomes `new` in every column that holds an address.

        With `ticket_ids`, only in rows of those tickets (retention); otherwise everywhere.
        """
        params: tuple[int, ...] = ()
        scope = ""
        if ticket_ids is not None:
            scope, params = f" AND ticket_id IN ({_marks(ticket_ids)})", tuple(ticket_ids)
        in_tickets = scope.replace("ticket_id", "id")
        changed = 0
        for sql, args in (
            (
                "UPDATE OR REPLACE participants SET address = ?, name = NULL WHERE address = ?",
                (new, old),
            ),
            (
                "UPDATE tickets SET requester = ?, requester_name = NULL WHERE requester = ?",
                (new, old),
            ),
            ("UPDATE messages SET from_addr = ?, from_name = NULL WHERE from_addr = ?", (new, old)),
            ("UPDATE outbox SET to_addr = ? WHERE to_addr = ?", (new, old)),
            ("UPDATE escalations SET customer = ? WHERE customer = ?", (new, old)),
            ("UPDATE events SET actor = ? WHERE actor = ?", (new, old)),
        ):
            where = in_tickets if sql.startswith("UPDATE tickets") else scope
            changed += self.store.execute(sql + where, (*args, *params)).rowcount
        return changed

    def scrub_texts(
        self,
        needles: Iterable[str],
        replacement: str,
        ticket_ids: Sequence[int] | None = None,
        *,
        words: bool = False,
    ) -> int:
        """Every mention of `needles` (any case) in kept texts becomes `replacement`.

        `words`: only as whole words (names: "Jan" is not to go from "Janina" or "planu"),
        and not in columns of addresses (jan.nowak@… is someone else).
        """
        patterns = [n for n in needles if n]
        if not patterns:
            return 0
        alternatives = "|".join(map(re.escape, patterns))
        pattern = re.compile(rf"\b(?:{alternatives})\b" if words else alternatives, re.I)
        params: tuple[int, ...] = ()
        scope = ""
        if ticket_ids is not None:
            scope, params = f" AND ticket_id IN ({_marks(ticket_ids)})", tuple(ticket_ids)
        changed = 0
        for table, columns in (
            ("messages", ("text", "subject", "from_name", "from_addr")),
            ("outbox", ("subject", "body", "cc", "to_addr", "from_name")),
            ("events", ("detail", "actor")),
            ("tickets", ("subject", "requester_name", "requester")),
        ):
            where = scope.replace("ticket_id", "id") if table == "tickets" else scope
            for column in columns:
                if words and column in ADDRESS_COLUMNS:
                    continue
                naming = " OR ".join(f"instr(lower({column}), ?) > 0" for _ in patterns)
                rows = self.store.all(
                    f"SELECT id, {column} FROM {table} WHERE ({naming}){where}",
                    (*(p.lower() for p in patterns), *params),
                )
                for row in rows:
                    self.store.execute(
                        f"UPDATE {table} SET {column} = ? WHERE id = ?",
                        (pattern.sub(replacement, row[1]), row[0]),
                    )
                changed += len(rows)
        return changed

    def pseudonymise_tickets(
        self, ticket_ids: Sequence[int], stand_in: Callable[[str], str]
    ) -> None:
        """Every address in rows of these tickets becomes `stand_in(address)`, set-wise.

        `stand_in` returns staff addresses (and pseudonyms) unchanged; addresses inside the
        events' texts and the outbox Cc lists are found by shape. For retention, where a
        ticket batch holds hundreds of customers: one statement per column, not per address.
        """
        if not ticket_ids:
            return

        def replace(address: str | None) -> str | None:
            return stand_in(address.lower()) if address else address

        def scrub(text: str | None) -> str | None:
            return EMAIL_RE.sub(lambda m: stand_in(m.group(0).lower()), text) if text else text

        conn = self.store.conn
        conn.create_function("mb_stand_in", 1, replace, deterministic=True)
        conn.create_function("mb_scrub", 1, scrub, deterministic=True)
        marks, ids = _marks(ticket_ids), tuple(ticket_ids)
        for sql in (
            "UPDATE OR REPLACE participants SET address = mb_stand_in(address), name = NULL"
            f" WHERE ticket_id IN ({marks})",
            "UPDATE tickets SET requester = mb_stand_in(requester), requester_name = NULL"
            f" WHERE id IN ({marks})",
            "UPDATE messages SET from_addr = mb_stand_in(from_addr),"
            " from_name = CASE WHEN mb_stand_in(from_addr) = from_addr THEN from_name END"
            f" WHERE ticket_id IN ({marks})",
            "UPDATE outbox SET to_addr = mb_stand_in(to_addr), cc = mb_scrub(cc)"
            f" WHERE ticket_id IN ({marks})",
            f"UPDATE escalations SET customer = mb_stand_in(customer) WHERE ticket_id IN ({marks})",
            "UPDATE events SET actor = mb_stand_in(actor), detail = mb_scrub(detail)"
            f" WHERE ticket_id IN ({marks})",
        ):
            self.store.execute(sql, ids)

    def forget_undeliverable(self, address: str) -> int:
        return self.store.execute(
            "DELETE FROM undeliverable WHERE address = ?", (address,)
        ).rowcount

    # -- retention -------------------------------------------------------------------------

    def raw_before(self, cutoff: datetime) -> list[int]:
        """Processed inbound mail received before `cutoff` that still has its raw bytes."""
        return [
            row[0]
            for row in self.store.all(
                "SELECT id FROM inbound WHERE received_at < ? AND status != 'pending'"
                " AND length(raw) > 0 ORDER BY id",
                (to_db(cutoff),),
            )
        ]

    def attachments_before(self, cutoff: datetime) -> list[int]:
        """Kept attachments of messages received before `cutoff`."""
        return [
            row[0]
            for row in self.store.all(
                "SELECT a.id FROM attachments a JOIN messages m ON m.id = a.message_row"
                " WHERE a.purged_at IS NULL AND m.created_at < ? ORDER BY a.id",
                (to_db(cutoff),),
            )
        ]

    def closed_before(self, cutoff: datetime) -> list[int]:
        """Tickets closed before `cutoff` whose content is still there."""
        return [
            row[0]
            for row in self.store.all(
                "SELECT id FROM tickets WHERE status = 'closed' AND closed_at < ?"
                " AND erased_at IS NULL ORDER BY id",
                (to_db(cutoff),),
            )
        ]
