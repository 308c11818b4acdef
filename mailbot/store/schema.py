"""The database schema: sqlite-utils migrations, applied in order when a store opens."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("mailbot")


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


@migrations()
def m006_message_ids_as_received(db: Database) -> None:
    """Message-IDs kept as they came, matched ignoring case; what each message referenced.

    A msg-id is case-sensitive, so ids are stored and sent back exactly as received. Lookups
    (threading, duplicates) still ignore case: rows written before this migration hold
    lower-cased ids, and some MTAs change the case of the ids they pass on. The index is in
    the collation the lookups use, so they stay index searches. `refs` keeps the In-Reply-To
    and References of an inbound message: the customer's chain our answers continue.
    """
    db.execute("DROP INDEX messages_message_id")
    db.execute(
        "CREATE INDEX messages_message_id"
        " ON messages(message_id COLLATE NOCASE, ticket_id, from_addr)"
    )
    db.execute("ALTER TABLE messages ADD COLUMN refs TEXT")


@migrations()
def m007_outbox_original(db: Database) -> None:
    """An outbox row may carry an inbound message's raw bytes as a message/rfc822 part.

    Agents' follow-up notifications show the customer's new text only; the whole message as
    it arrived goes with them, for when the quote stripping cut too much.
    """
    db.execute("ALTER TABLE outbox ADD COLUMN original_inbound INTEGER REFERENCES inbound(id)")


@migrations()
def m008_unattached_timers(db: Database) -> None:
    """Timers of no ticket (the agents' daily digest) found without reading every SLA timer.

    Partial: SLA timers, one or more per ticket, are not in it and cost nothing more to add.
    """
    db.execute("CREATE INDEX timers_unattached ON timers(kind, due_at) WHERE ticket_id IS NULL")


@migrations()
def m009_outbox_importance(db: Database) -> None:
    """Outgoing mail marked important ("high": a manager's page) gets Importance headers."""
    db.execute("ALTER TABLE outbox ADD COLUMN importance TEXT")


@migrations()
def m010_mailboxes(db: Database) -> None:
    """Several support addresses: the one a ticket came in through answers its customer.

    `tickets.mailbox` is that address (NULL for tickets from before: the default mailbox);
    `outbox.from_addr` the address a row goes out from, fixed when it is enqueued like its
    Message-ID (NULL: the [mailbot] address).
    """
    db.execute("ALTER TABLE tickets ADD COLUMN mailbox TEXT")
    db.execute("ALTER TABLE outbox ADD COLUMN from_addr TEXT")


@migrations()
def m011_metrics_indexes(db: Database) -> None:
    """Figures for the metrics endpoint and `mailbot stats` read from indexes alone.

    inbound_status gains the source: counting mail by status and source reads the index, not
    every stored message. It replaces the old index, so intake maintains no more than before.
    outbox_failed is partial: rows are written pending, so only a final failure touches it.
    """
    db.execute("DROP INDEX inbound_status")
    db.execute("CREATE INDEX inbound_status ON inbound(status, source)")
    db.execute("CREATE INDEX outbox_failed ON outbox(status) WHERE status = 'failed'")


@migrations()
def m012_outbox_delivery(db: Database) -> None:
    """Outgoing mail: the attempt in flight, requeues by an admin, and failing-episode state.

    `sending_since` is set, in its own commit, just before a row is handed to the SMTP relay
    and cleared with the outcome: a row still carrying it was in flight when mailbot stopped,
    and is backed off instead of being sent again at once. `requeued_at` (set by `outbox retry`)
    restarts the row's queue lifetime. The `outbox_failing` counter is 1 while outgoing mail
    fails for good and the leads were told, until a delivery succeeds again.
    """
    for statement in (
        "ALTER TABLE outbox ADD COLUMN sending_since TEXT",
        "ALTER TABLE outbox ADD COLUMN requeued_at TEXT",
        "INSERT OR IGNORE INTO counters (name, value) VALUES ('outbox_failing', 0)",
    ):
        db.execute(statement)


@migrations()
def m013_token_binding(db: Database) -> None:
    """Tokens bound to their database and ticket: an install id, and a random key per ticket.

    The install id is made once, with the database, and stays with it through backups. Tickets
    from before keep no key (NULL): the tokens issued for them stay valid (`mailbot.tokens`).
    """
    db.execute(
        "CREATE TABLE install (id INTEGER PRIMARY KEY CHECK (id = 1), install_id TEXT NOT NULL,"
        " created_at TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO install (id, install_id, created_at)"
        " VALUES (1, lower(hex(randomblob(16))), strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'))"
    )
    db.execute("ALTER TABLE tickets ADD COLUMN token_key TEXT")


@migrations()
def m014_personal_data(db: Database) -> None:
    """What retention and erasure removed, and when.

    An attachment's file is gone when its row has `purged_at`; a ticket with `erased_at` keeps
    only what the SLA report counts. An inbound message whose raw bytes were removed has an
    empty `raw` (its `size` and SHA-256 stay: the same mail polled again is still recognised,
    and a hash reveals nothing of the text); no column marks it, since a column after `raw`
    costs every read of it a walk through the raw bytes' overflow pages.
    """
    for statement in (
        "ALTER TABLE attachments ADD COLUMN purged_at TEXT",
        "ALTER TABLE tickets ADD COLUMN erased_at TEXT",
    ):
        db.execute(statement)


@migrations()
def m015_flood_guard(db: Database) -> None:
    """Floods of automatic mail counted from indexes alone (`mailbot.loops`, `pipeline.agents`).

    outbox_automatic holds only automatic answers (`auto-replied`): the ones sent in the last
    minute overall, or in the last 10 minutes to one domain, are a short range of it.
    events_guard holds only the circuit breaker's events (tripped, answers held) and the
    warnings about forged agent mail, so it costs the writing of every other event nothing but
    the check of its kind.
    """
    for statement in (
        "CREATE INDEX outbox_automatic ON outbox(created_at, to_addr)"
        " WHERE auto_submitted = 'auto-replied'",
        "CREATE INDEX events_guard ON events(kind, at)"
        " WHERE kind IN ('flood-tripped', 'flood-held', 'flood-held-hot', 'unverified-warned')",
    ):
        db.execute(statement)
