"""The store's foundation: the connection, its transactions, and the base of the query modules."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from mailbot.files import private_dir
from mailbot.store.schema import migrations
from mailbot.tally import Tally

WAL_FILES = ("-wal", "-shm", "-journal")
BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for another's transaction
CHECKPOINT_WAIT_MS = 5_000  # erase_freed waits this long for readers to let the WAL go

# A row as read (sqlite3.Row) or as planned (a dict of the same columns).
RowLike = sqlite3.Row | Mapping[str, Any]


def to_db(moment: datetime) -> str:
    """UTC ISO 8601 text: sorts as time sorts, so SQL can compare it."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def from_db(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class Connection:
    """One connection to the mailbot database, its transactions and plain statements."""

    def __init__(self, path: Path | str, *, migrate: bool = True, wal: bool = True) -> None:
        """`wal=False` leaves the journal mode as the file has it (a backup copy keeps its own)."""
        self.path = Path(path)
        private_dir(self.path.parent)
        # isolation_level=None: no implicit transactions; every write runs in atomic().
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        # Customers' mail: readable by mailbot alone, whatever the umask. SQLite gives the WAL
        # and shared-memory files the database file's mode when it creates them.
        for path in (self.path, *(self.path.with_name(self.path.name + s) for s in WAL_FILES)):
            with contextlib.suppress(FileNotFoundError):
                path.chmod(0o600)
        conn.row_factory = sqlite3.Row
        self._depth = 0  # savepoint nesting inside the current transaction
        self.tally = Tally()  # figures for the metrics, handed on when a transaction commits
        self.db = Database(conn, execute_plugins=False)
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, so a committed message survives power loss.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if migrate:
            migrations.apply(self.db)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def atomic(self) -> Iterator[Connection]:
        """A transaction (or a savepoint when nested): all or nothing.

        The outermost level is BEGIN IMMEDIATE: it takes the write lock up front, waiting up to
        busy_timeout for it. A deferred BEGIN that reads first fails at once with "database is
        locked" when another connection wrote meanwhile, and busy_timeout never helps it.
        """
        conn = self.conn
        if conn.in_transaction:
            name = f"sp{self._depth}"
            self._depth += 1
            mark = self.tally.mark()
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield self
            except BaseException:
                if conn.in_transaction:  # some errors end the whole transaction
                    conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    conn.execute(f"RELEASE SAVEPOINT {name}")
                self.tally.rollback(mark)
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
            self.tally.rollback()
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            self.tally.rollback()
            raise
        self.tally.commit()

    # -- for the query modules of the store package --------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
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

    # -- for tests and admin checks: plain rows of a table, filtered by equal columns ---------

    def rows(self, table: str, order: str = "id", **where: Any) -> list[sqlite3.Row]:
        """Every row of `table` whose columns equal `where` (None matches NULL), by `order`."""
        sql, params = _where(where)
        return self.all(f"SELECT * FROM {table}{sql} ORDER BY {order}", params)

    def pragma(self, name: str) -> Any:
        """The value of a PRAGMA, e.g. "journal_mode" or "integrity_check"."""
        return self.scalar(f"PRAGMA {name}")

    def integrity_problems(self) -> list[str]:
        """What `PRAGMA integrity_check` and `foreign_key_check` find; empty when sound."""
        problems = [r[0] for r in self.all("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [
            f"{r['table']} row {r['rowid']}: no {r['parent']} it refers to"
            for r in self.all("PRAGMA foreign_key_check")
        ]
        return problems

    def backup_to(self, target: Path) -> None:
        """A consistent copy of the whole database in `target` (SQLite's online backup).

        One step: the copy is the snapshot of one read transaction, and in WAL mode that
        blocks no writer meanwhile. The copy is a single file (rollback journal, not WAL).
        """
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            self.conn.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()

    def schema(self) -> list[tuple[str, str | None]]:
        """(name, SQL) of every table, index and trigger, by name."""
        return [tuple(r) for r in self.all("SELECT name, sql FROM sqlite_master ORDER BY name")]

    def schema_tables(self) -> dict[str, list[tuple[str, str]]]:
        """Every table of ours with its (column, declared type) pairs, by table name."""
        names = [
            row[0]
            for row in self.all(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' AND name != '_migrations' ORDER BY name"
            )
        ]
        return {
            name: [(col["name"], col["type"].upper()) for col in self.all(
                "SELECT name, type FROM pragma_table_info(?) ORDER BY cid", (name,)
            )]
            for name in names
        }

    def secure_delete(self, on: bool = True) -> None:
        """Zero what this connection's later statements delete or overwrite, in the pages."""
        self.conn.execute(f"PRAGMA secure_delete = {'ON' if on else 'OFF'}")

    def erase_freed(self, *, vacuum: bool = True) -> bool:
        """Leave no copy of deleted or overwritten data in the database files.

        After writes made with `secure_delete()` on: VACUUM rewrites the file from the live
        rows only, and a TRUNCATE checkpoint copies the WAL into it and empties the WAL, which
        held the old pages. False when another connection's open read kept the WAL from being
        emptied (the copies go at the next checkpoint; run it again when the daemon is idle).
        """
        conn = self.conn
        # A TRUNCATE checkpoint waits for readers up to busy_timeout; the daemon's reads take
        # milliseconds, so a few seconds tell a held read from a passing one.
        conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if vacuum:
                conn.execute("VACUUM")
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return not busy

    def count(self, table: str, **where: Any) -> int:
        sql, params = _where(where)
        return int(self.scalar(f"SELECT count(*) FROM {table}{sql}", params))


def _where(where: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, value in where.items():
        if value is None:
            clauses.append(f"{column} IS NULL")
        else:
            clauses.append(f"{column} = ?")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class Queries:
    """Base of the per-table query namespaces: they share the store's connection."""

    def __init__(self, conn: Connection) -> None:
        self.store = conn
