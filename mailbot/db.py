"""The SQLite store: schema migrations, connection settings and the queries the daemon uses."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("mailbot")


def to_db(moment: datetime) -> str:
    """UTC ISO 8601 text: sorts as time sorts, so SQL can compare it."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def from_db(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE inbound (
            id INTEGER PRIMARY KEY,
            received_at TEXT NOT NULL,
            source TEXT NOT NULL,              -- smtp, lmtp, imap, import
            source_ref TEXT,                   -- e.g. IMAP folder/uidvalidity/uid, or file path
            envelope_from TEXT,
            envelope_to TEXT,
            sha256 TEXT NOT NULL UNIQUE,
            message_id TEXT,
            size INTEGER NOT NULL,
            -- pending processed duplicate ignored quarantined
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            reason TEXT,                       -- why it was ignored / quarantined
            error TEXT,                        -- traceback of the last failure
            no_replies INTEGER NOT NULL DEFAULT 0,
            ticket_id INTEGER,
            processed_at TEXT,
            raw BLOB NOT NULL                  -- byte-identical copy of what arrived; last column
        );
        CREATE INDEX inbound_pending ON inbound(id) WHERE status = 'pending';
        CREATE INDEX inbound_status ON inbound(status);

        CREATE TABLE tickets (
            id INTEGER PRIMARY KEY,
            subject TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'open',       -- open pending closed
            priority TEXT NOT NULL DEFAULT 'normal',   -- normal urgent
            language TEXT NOT NULL,
            requester TEXT NOT NULL,
            requester_name TEXT,
            topic TEXT,
            assignee TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            first_response_due TEXT,
            first_response_at TEXT,
            pending_since TEXT,
            closed_at TEXT,
            queued_notice_at TEXT,
            previous_ticket INTEGER REFERENCES tickets(id)
        );
        CREATE INDEX tickets_status ON tickets(status, created_at);
        CREATE INDEX tickets_requester ON tickets(requester);
        -- queue position: unanswered open tickets in order of arrival
        CREATE INDEX tickets_queue ON tickets(created_at)
            WHERE status = 'open' AND first_response_at IS NULL;

        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            ticket_id INTEGER NOT NULL REFERENCES tickets(id),
            inbound_id INTEGER REFERENCES inbound(id),
            outbox_id INTEGER,
            direction TEXT NOT NULL,           -- in out
            kind TEXT NOT NULL,                -- customer agent note system auto
            from_addr TEXT,
            from_name TEXT,
            message_id TEXT,
            subject TEXT,
            text TEXT NOT NULL,
            verified INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL
        );
        CREATE INDEX messages_ticket ON messages(ticket_id, id);
        CREATE INDEX messages_message_id ON messages(message_id);

        CREATE TABLE participants (
            ticket_id INTEGER NOT NULL REFERENCES tickets(id),
            address TEXT NOT NULL,
            name TEXT,
            role TEXT NOT NULL,                -- requester cc
            PRIMARY KEY (ticket_id, address)
        ) WITHOUT ROWID;

        CREATE TABLE attachments (
            id INTEGER PRIMARY KEY,
            message_row INTEGER NOT NULL REFERENCES messages(id),
            filename TEXT NOT NULL,            -- sanitised display name, never a path
            content_type TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL                 -- generated, relative to the data dir
        );
        CREATE INDEX attachments_message ON attachments(message_row);

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            ticket_id INTEGER,
            inbound_id INTEGER,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,               -- mailbot, an agent address, admin
            kind TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        CREATE INDEX events_ticket ON events(ticket_id, id);

        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            ticket_id INTEGER,
            template TEXT NOT NULL,
            to_addr TEXT NOT NULL,
            cc TEXT NOT NULL DEFAULT '[]',     -- JSON list
            from_name TEXT NOT NULL,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            message_id TEXT NOT NULL UNIQUE,
            in_reply_to TEXT,
            refs TEXT,                         -- References header value
            auto_submitted TEXT,               -- auto-replied, auto-generated or NULL (human reply)
            attachments TEXT NOT NULL DEFAULT '[]',  -- JSON list of attachments.id
            status TEXT NOT NULL DEFAULT 'pending',  -- pending sent failed
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT
        );
        CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE status = 'pending';
        CREATE INDEX outbox_ticket ON outbox(ticket_id);
        -- rate limits on automatic answers count recent rows per recipient
        CREATE INDEX outbox_recipient ON outbox(to_addr, created_at);

        CREATE TABLE timers (
            id INTEGER PRIMARY KEY,
            ticket_id INTEGER,
            kind TEXT NOT NULL,
            due_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'scheduled',  -- scheduled fired cancelled
            payload TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            fired_at TEXT
        );
        CREATE INDEX timers_due ON timers(due_at) WHERE status = 'scheduled';
        CREATE INDEX timers_ticket ON timers(ticket_id);

        CREATE TABLE imap_state (
            folder TEXT PRIMARY KEY,
            uidvalidity INTEGER NOT NULL,
            last_uid INTEGER NOT NULL
        );
        """
    )


@migrations()
def m002_escalations(db: Database) -> None:
    """Urgent escalations (abuse guard), SLA pauses, and failure counts on timers."""
    # One statement at a time: executescript() would commit midway and break atomicity.
    for statement in (
        """
        CREATE TABLE escalations (
            id INTEGER PRIMARY KEY,
            customer TEXT NOT NULL,            -- the requester's address, lower case
            ticket_id INTEGER NOT NULL REFERENCES tickets(id),
            manager TEXT NOT NULL,             -- the manager's email at the time
            source TEXT NOT NULL,              -- customer (keyword/header) or agent (#priority)
            outcome TEXT NOT NULL,             -- paged deferred suspended
            at TEXT NOT NULL,
            paged_at TEXT,                     -- when the manager's page was enqueued
            reset_at TEXT                      -- an admin reset the customer: no longer counted
        )
        """,
        "CREATE INDEX escalations_customer ON escalations(customer, at)",
        "CREATE INDEX escalations_ticket ON escalations(ticket_id)",
        # The SLA clock stood still (#pending, or closed unanswered) from started_at to
        # ended_at (NULL while it still stands): a due time is arrival + SLA + these pauses.
        """
        CREATE TABLE sla_pauses (
            id INTEGER PRIMARY KEY,
            ticket_id INTEGER NOT NULL REFERENCES tickets(id),
            reason TEXT NOT NULL,              -- pending closed
            started_at TEXT NOT NULL,
            ended_at TEXT
        )
        """,
        "CREATE INDEX sla_pauses_ticket ON sla_pauses(ticket_id)",
        # A timer whose handler keeps failing is retried a few times, then marked failed.
        "ALTER TABLE timers ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE timers ADD COLUMN error TEXT",
    ):
        db.execute(statement)


@migrations()
def m003_undeliverable(db: Database) -> None:
    """Addresses whose mail bounced hard: no automatic mail to them for a while."""
    db.execute(
        """
        CREATE TABLE undeliverable (
            address TEXT PRIMARY KEY,
            until TEXT NOT NULL,
            reason TEXT NOT NULL,
            marked_at TEXT NOT NULL
        )
        """
    )


@migrations()
def m004_queue_counter(db: Database) -> None:
    """The length of the queue (open, unanswered tickets), kept by triggers.

    A new ticket's place in the queue is that length; counting the queue instead cost a scan
    of every unanswered ticket per acknowledgement (6.8 ms with 10,000 of them).
    """
    for statement in (
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO counters (name, value) SELECT 'queue', count(*) FROM tickets"
        " WHERE status = 'open' AND first_response_at IS NULL",
        """
        CREATE TRIGGER queue_insert AFTER INSERT ON tickets
        WHEN NEW.status = 'open' AND NEW.first_response_at IS NULL
        BEGIN UPDATE counters SET value = value + 1 WHERE name = 'queue'; END
        """,
        """
        CREATE TRIGGER queue_delete AFTER DELETE ON tickets
        WHEN OLD.status = 'open' AND OLD.first_response_at IS NULL
        BEGIN UPDATE counters SET value = value - 1 WHERE name = 'queue'; END
        """,
        """
        CREATE TRIGGER queue_update AFTER UPDATE OF status, first_response_at ON tickets
        WHEN (OLD.status = 'open' AND OLD.first_response_at IS NULL)
          != (NEW.status = 'open' AND NEW.first_response_at IS NULL)
        BEGIN
            UPDATE counters SET value = value
                + CASE WHEN NEW.status = 'open' AND NEW.first_response_at IS NULL THEN 1 ELSE -1 END
            WHERE name = 'queue';
        END
        """,
        # Covering: counting the tickets ahead of an older one reads the index alone.
        "DROP INDEX tickets_queue",
        "CREATE INDEX tickets_queue ON tickets(created_at, status, first_response_at)"
        " WHERE status = 'open' AND first_response_at IS NULL",
    ):
        db.execute(statement)


@migrations()
def m005_covering_message_ids(db: Database) -> None:
    """Threading and duplicate checks answer from the Message-ID index alone."""
    db.execute("DROP INDEX messages_message_id")
    db.execute("CREATE INDEX messages_message_id ON messages(message_id, ticket_id, from_addr)")


# The queue: unanswered open tickets. Named: without statistics the planner prefers
# tickets_status and reads the rows.
QUEUED = (
    "FROM tickets INDEXED BY tickets_queue WHERE status = 'open' AND first_response_at IS NULL"
)
RECENT_QUEUE = 500  # queue_position counts up to this many later tickets before earlier ones


class Store:
    """One connection to the mailbot database; one per thread."""

    def __init__(self, path: Path | str, *, migrate: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; every write runs in atomic().
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        self._depth = 0  # savepoint nesting inside the current transaction
        self.db = Database(conn, execute_plugins=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, so a committed message survives power loss.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        if migrate:
            migrations.apply(self.db)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def atomic(self) -> Iterator[Store]:
        """A transaction (or a savepoint when nested): all or nothing.

        The outermost level is BEGIN IMMEDIATE: it takes the write lock up front, waiting up to
        busy_timeout for it. A deferred BEGIN that reads first fails at once with "database is
        locked" when another connection wrote meanwhile, and busy_timeout never helps it.
        """
        conn = self.conn
        if conn.in_transaction:
            name = f"sp{self._depth}"
            self._depth += 1
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield self
            except BaseException:
                if conn.in_transaction:  # some errors end the whole transaction
                    conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    conn.execute(f"RELEASE SAVEPOINT {name}")
                raise
            else:
                conn.execute(f"RELEASE SAVEPOINT {name}")
            finally:
                self._depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def execute(self, sql: str, params: Iterable[Any] | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: Iterable[Any] | dict = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: Iterable[Any] | dict = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Iterable[Any] | dict = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def insert(self, table: str, row: dict[str, Any]) -> int:
        # Plain SQL rather than Table.insert(): no per-call schema introspection on the hot path.
        columns = ", ".join(row)
        marks = ", ".join("?" * len(row))
        cursor = self.conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values())
        )
        return int(cursor.lastrowid or 0)

    def update(self, table: str, row_id: int, values: dict[str, Any]) -> None:
        sets = ", ".join(f"{key} = ?" for key in values)
        self.conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", (*values.values(), row_id))

    # -- inbound ------------------------------------------------------------------------------

    def store_inbound(
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
        existing = self.scalar("SELECT id FROM inbound WHERE sha256 = ?", (digest,))
        if existing:
            return existing, False
        row_id = self.insert(
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

    def add_event(
        self,
        kind: str,
        detail: str,
        *,
        at: datetime,
        ticket_id: int | None = None,
        inbound_id: int | None = None,
        actor: str = "mailbot",
    ) -> None:
        self.insert(
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

    # -- lookups used by threading ------------------------------------------------------------

    def ticket_by_message_ids(self, message_ids: Iterable[str]) -> tuple[int, str] | None:
        """The ticket holding any of these Message-IDs (ours or a customer's), latest first."""
        for mid in message_ids:
            row = self.one(
                "SELECT ticket_id FROM messages WHERE message_id = ? ORDER BY id DESC LIMIT 1",
                (mid,),
            ) or self.one(
                "SELECT ticket_id FROM outbox WHERE message_id = ? AND ticket_id IS NOT NULL",
                (mid,),
            )
            if row:
                return int(row[0]), mid
        return None

    def is_participant(self, ticket_id: int, address: str) -> bool:
        return bool(
            self.scalar(
                "SELECT 1 FROM participants WHERE ticket_id = ? AND address = ?",
                (ticket_id, address.lower()),
            )
        )

    def has_message(self, message_id: str, from_addr: str) -> bool:
        return bool(
            self.scalar(
                "SELECT 1 FROM messages WHERE message_id = ? AND from_addr = ? LIMIT 1",
                (message_id, from_addr),
            )
        )

    def ticket(self, ticket_id: int) -> sqlite3.Row | None:
        return self.one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))

    def queue_position(self, created_at: str, newest: bool = False) -> int:
        """1 + unanswered open tickets that arrived earlier: requests are handled in order.

        The queue's length is kept by triggers (m004). `newest`: the ticket was just opened,
        so the whole queue is ahead of it. Otherwise counting reads an index entry per ticket.
        A customer mostly writes again soon after writing first, when few tickets came since:
        those are counted first, up to RECENT_QUEUE, and the queue less them is what is ahead.
        Only for an older ticket are the tickets ahead of it counted.
        """
        queued = int(self.scalar("SELECT value FROM counters WHERE name = 'queue'"))
        if newest:
            return max(1, queued)
        since = self.scalar(
            f"SELECT count(*) FROM (SELECT 1 {QUEUED} AND created_at >= ? LIMIT ?)",
            (created_at, RECENT_QUEUE),
        )
        if since < RECENT_QUEUE:
            return max(1, queued - since + 1)
        ahead = self.scalar(f"SELECT count(*) {QUEUED} AND created_at < ?", (created_at,))
        return int(ahead) + 1
