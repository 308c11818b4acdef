"""History import: a mailbox's old mail stored at its own time, then replayed in time order.

`mailbot import --history [--sent PATH…] PATH…` moves a support mailbox that was answered by
hand into mailbot. Each message is stored in the inbound table with the time it was received
(`mail_time`) and the source `history` (`history-sent` for the Sent folders), and the pipeline
replays them oldest first: nothing is sent, no timer due before the import is scheduled, and
the support address's answers are the tickets' first responses (`mailbot.pipeline.history`).

Paths are mbox files, Maildir folders, folders of .eml files, or `imap:FOLDER`: a folder of
the configured IMAP mailbox, read with the daemon's sign-in, never changed on the server.
A run can be interrupted and run again: stored mail is recognised by its content hash and not
stored twice, an IMAP folder is read on from the last UID stored (per folder and
UIDVALIDITY, in `imap_state` under `history:FOLDER`), and what was stored but not processed
is processed by the next run.
"""

from __future__ import annotations

import email.utils
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from email.parser import BytesHeaderParser
from pathlib import Path

from mailbot import sla_timers, writer
from mailbot.context import Context, database_path
from mailbot.decisions import Plan
from mailbot.intake import accept
from mailbot.mail.limits import HEADER_END_RE
from mailbot.sources.files import messages as file_messages
from mailbot.store import Store, from_db
from mailbot.worker import HISTORY_SOURCES, process_pending

IMAP_PREFIX = "imap:"
COMMIT_EVERY = 200  # messages stored per transaction: one fsync per group, not per message
HEADER_MAX = 256 * 1024
RECEIVED_DATE_RE = re.compile(r";\s*([^;]+?)\s*$", re.S)

Progress = Callable[[str, int, int], None]  # (phase, done, total)


# -- the time a message was received --------------------------------------------------------------


def _header_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else None


def mail_time(raw: bytes, fallback: datetime | None, now: datetime) -> datetime:
    """When the message was received: the date of its topmost Received header (the one our
    own MTA added), else its Date, else `fallback` (the file's time), else `now`.

    Never later than `now`: a sender's clock in the future must not date a ticket there.
    """
    end = HEADER_END_RE.search(raw, 0, HEADER_MAX)
    headers = BytesHeaderParser().parsebytes(raw[: end.end() if end else HEADER_MAX])
    received = headers.get("received")
    moment = None
    if received:
        found = RECEIVED_DATE_RE.search(str(received))
        moment = _header_date(found.group(1)) if found else None
    moment = moment or _header_date(headers.get("date")) or fallback or now
    return min(moment.astimezone(UTC), now)


# -- where old mail comes from ------------------------------------------------------------------


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def file_mail(path: Path) -> Iterator[tuple[str, bytes, datetime]]:
    """(source reference, raw bytes, file time) of every message under a path."""
    if path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir():  # Maildir
        for sub in ("cur", "new"):
            for child in sorted((path / sub).iterdir()):
                if child.is_file() and not child.name.startswith("."):
                    yield f"{path}#{child.name}", child.read_bytes(), _mtime(child)
    elif path.is_dir():
        for child in sorted(path.iterdir()):
            if not child.name.startswith("."):
                yield from file_mail(child)
    elif path.is_file():
        when = _mtime(path)  # an mbox: its messages' own headers date them
        for ref, raw in file_messages(path):
            yield ref, raw, when


@dataclass
class Stored:
    new: int = 0
    known: int = 0


def store_files(
    store: Store, path: Path, source: str, now: datetime, stored: Stored, progress: Progress
) -> None:
    """Every message under `path` into the inbound table, at its own time."""
    mail = file_mail(path)
    while True:
        with store.atomic():
            group = 0
            for ref, raw, when in mail:
                _, is_new = accept(
                    store, raw, source=source, now=mail_time(raw, when, now), source_ref=ref
                )
                stored.new += is_new
                stored.known += not is_new
                group += 1
                if group == COMMIT_EVERY:
                    break
        progress("storing", stored.new + stored.known, 0)
        if group < COMMIT_EVERY:
            return


def store_imap(
    ctx: Context, folder: str, source: str, now: datetime, stored: Stored, progress: Progress
) -> None:
    """A folder of the configured IMAP mailbox, from the UID after the last one stored.

    Signs in as the daemon does (`ImapSource.connect`), reads the folder read-only and only
    fetches (BODY.PEEK): the server's mail keeps its flags and place.
    """
    from mailbot.sources.imap import ImapSource, _batches, _close

    source_imap = ImapSource(ctx.cfg, database_path(ctx.cfg), lambda: None, threading.Event())
    client = source_imap.connect()
    key = f"history:{folder}"
    try:
        info = client.select_folder(folder, readonly=True)
        uidvalidity = int(info[b"UIDVALIDITY"])
        state = ctx.store.imap.get(key)
        last = int(state["last_uid"]) if state and state["uidvalidity"] == uidvalidity else 0
        uids = sorted(uid for uid in client.search(["UID", f"{last + 1}:*"]) if uid > last)
        if not uids:
            return
        sizes = client.fetch(uids, ["RFC822.SIZE"])
        total = len(uids)
        for batch in _batches(
            uids, {uid: int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0)) for uid in uids}
        ):
            fetched = client.fetch(batch, ["BODY.PEEK[]", "INTERNALDATE"])
            with ctx.store.atomic():
                for uid in batch:
                    item = fetched.get(uid, {})
                    raw = item.get(b"BODY[]")
                    if raw is None:  # expunged meanwhile
                        continue
                    internal = item.get(b"INTERNALDATE")
                    if isinstance(internal, datetime) and internal.tzinfo is None:
                        internal = internal.astimezone()  # imapclient gives server-local time
                    _, is_new = accept(
                        ctx.store,
                        bytes(raw),
                        source=source,
                        now=mail_time(bytes(raw), internal, now),
                        source_ref=f"{folder};{uidvalidity};{uid}",
                    )
                    stored.new += is_new
                    stored.known += not is_new
                ctx.store.imap.set(key, uidvalidity, max(batch))
            progress("storing", stored.new + stored.known, total)
    finally:
        _close(client)


# -- the import as a whole ------------------------------------------------------------------------


@dataclass
class Summary:
    new: int
    known: int
    messages: int
    tickets: int
    answered: int
    unanswered: int
    automatic: int
    ignored: int
    quarantined: int
    closed: int

    def line(self) -> str:
        return (
            f"history: {self.messages} messages ({self.new} new, {self.known} already stored);"
            f" {self.tickets} tickets, {self.answered} answered, {self.unanswered} unanswered"
            f"{f', {self.closed} closed as old' if self.closed else ''};"
            f" {self.automatic} skipped as automatic, {self.ignored} ignored,"
            f" {self.quarantined} quarantined; nothing sent, no timers in the past"
        )


def import_history(
    ctx: Context,
    paths: list[Path],
    sent: list[Path],
    *,
    now: datetime | None = None,
    close_before: date | None = None,
    progress: Progress = lambda phase, done, total: None,
) -> Summary:
    """Store the mailbox's old mail, replay it oldest first, and say what came of it."""
    now = now or datetime.now(UTC)
    stored = Stored()
    for paths_of, source in ((paths, "history"), (sent, "history-sent")):
        for path in paths_of:
            text = str(path)
            if text.startswith(IMAP_PREFIX):
                store_imap(ctx, text[len(IMAP_PREFIX) :], source, now, stored, progress)
            else:
                store_files(ctx.store, path, source, now, stored, progress)
    total = ctx.store.count("inbound", status="pending")
    left = total

    def processed() -> None:
        nonlocal left
        left = ctx.store.count("inbound", status="pending")
        progress("processing", total - left, total)

    process_pending(ctx, now, by_time=True, batch=200, on_commit=processed)
    closed = close_old(ctx, close_before, now) if close_before else 0
    counts = ctx.store.inbound.history_summary(HISTORY_SOURCES)
    tickets = ctx.store.inbound.history_tickets(HISTORY_SOURCES)
    return Summary(
        new=stored.new,
        known=stored.known,
        messages=counts["messages"],
        tickets=tickets["tickets"],
        answered=tickets["answered"],
        unanswered=tickets["unanswered"],
        automatic=counts["automatic"],
        ignored=counts["ignored"],
        quarantined=counts["quarantined"],
        closed=closed,
    )


def close_old(ctx: Context, before: date, now: datetime) -> int:
    """Close the imported tickets still open or pending whose latest mail came before `before`.

    Closed as of their latest mail (`closed_at`): a customer writing again after the reopen
    window gets a new ticket linked to the old one. An unanswered one's SLA clock stops there.
    """
    store, cfg = ctx.store, ctx.cfg
    cutoff = datetime.combine(before, time(0), tzinfo=cfg.tz)
    closed = 0
    with store.atomic():
        for ticket in store.tickets.unclosed_from(HISTORY_SOURCES, cutoff):
            last = from_db(ticket["updated_at"])
            assert last is not None
            plan = Plan(last, history=now)
            plan.start(ticket)
            plan.update(status="closed", closed_at=last, pending_since=None)
            plan.event("close", f"history import: no mail since before {before}", "admin")
            sla_timers.on_closed(plan, store, cfg)
            writer.write(ctx, plan)
            closed += 1
    return closed
