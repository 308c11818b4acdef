"""Personal data: a customer's access (export) and erasure (forget), and retention purges.

What is held about an address, and what erasing it means, is decided here; the store's
`personal` queries find and change the rows. The rules:

- A ticket where the address is the only customer (requester, no other customer in copy) is
  the customer's alone: all of its texts, subject, raw mail, files and outgoing mail go (the
  agents' answers quote and address the customer). Its times, language, topic, priority,
  assignee and the agents' addresses on their answers stay, so the SLA report and the ticket
  counts do not change.
- A ticket shared with other customers keeps their data: only the customer's own messages,
  files and mail to them go; mentions of their address and names in what stays are replaced.
- Inbound mail that names the address anywhere (a Cc, a quarantined message) loses its raw
  bytes; the text read from it stays, scrubbed.
- Everywhere, the address becomes a pseudonym `forgotten-<12 hex>@invalid`, an HMAC of the
  address under the install's secret: counts per customer (the abuse guard's escalations,
  tickets) stay right, and forgetting the same address again finds and changes nothing.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import hmac
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from sqlite3 import Row
from typing import Any

from mailbot import attachments as attachments_module
from mailbot.config import Config
from mailbot.context import Context
from mailbot.files import FILE_MODE
from mailbot.outbox import delivery_key
from mailbot.store.personal import ERASED
from mailbot.tokens import load_secret

BATCH = 500  # rows per retention transaction
MIN_NAME = 3  # shorter display names are not searched for in texts ("Jo" is in too many words)


class Refused(Exception):
    """The address is not a customer's: staff and the support address are never erased."""


def staff_addresses(cfg: Config) -> set[str]:
    """Addresses of the company besides the support addresses: agents, managers, leads,
    contact forms (`is_staff` asks `cfg.mailbox_receiving` for the support addresses)."""
    return {
        *(a.email.lower() for a in cfg.agents),
        *(m.email.lower() for m in cfg.managers),
        *(a.lower() for a in cfg.sla.notify),
        *(a.lower() for a in cfg.mailbot.contact_forms),
    }


def is_staff(cfg: Config, address: str) -> bool:
    """Staff, or a support address ([[mailboxes]]), also with a +tag (pomoc+faktury@…)."""
    return cfg.mailbox_receiving(address) is not None or address.lower() in staff_addresses(cfg)


def pseudonym(secret: bytes, address: str) -> str:
    """The stable stand-in for an erased address: the same address, the same pseudonym."""
    digest = hmac.new(secret, b"forget|" + address.lower().encode(), hashlib.sha256)
    return f"forgotten-{digest.hexdigest()[:12]}@invalid"


def is_pseudonym(address: str) -> bool:
    return address.startswith("forgotten-") and address.endswith("@invalid")


@dataclass
class Holdings:
    """Everything held about one address: row ids per table, and how its tickets are shared."""

    address: str
    pseudonym: str
    names: list[str]
    tickets: dict[int, str]  # ticket id → role (requester, cc)
    whole: list[int]  # tickets that are the customer's alone: erased whole
    shared: list[int]  # tickets with other customers: only the customer's part goes
    messages: list[int]  # erased: the customer's own, and all of their whole tickets
    naming: list[int]  # other people's messages in shared tickets that name them: scrubbed
    inbound: list[int]
    attachments: list[Row]
    outbox: list[int]  # mail to them, on their tickets, or naming them
    outbox_erased: list[int]  # of those, the mail whose text goes (to them, or on whole tickets)
    events: list[int]
    escalations: list[int]
    undeliverable: list[Row]
    participants: list[Row] = field(default_factory=list)
    # After `forget`: False when a read by another connection (the running daemon) kept the
    # WAL from being emptied, so old copies may stay in it until the next checkpoint.
    wal_emptied: bool = True

    def counts(self) -> dict[str, int]:
        return {
            "tickets": len(self.whole),
            "shared_tickets": len(self.shared),
            "messages": len(self.messages),
            "messages_naming": len(self.naming),
            "raw_mail": len(self.inbound),
            "attachments": len(self.attachments),
            "outgoing_mail": len(self.outbox),
            "events": len(self.events),
            "escalations": len(self.escalations),
            "undeliverable": len(self.undeliverable),
        }


def normalise(address: str) -> str:
    address = address.strip().lower()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    return address


def find(ctx: Context, address: str) -> Holdings:
    """What mailbot holds about `address`; Refused for staff and the support address."""
    address = normalise(address)
    if "@" not in address:
        raise Refused(f"{address!r} is not an email address")
    if is_staff(ctx.cfg, address):
        raise Refused(f"{address} is an address of the company (support, agent, manager or lead)")
    personal = ctx.store.personal
    tickets = personal.tickets_of(address)
    participants = personal.participants(list(tickets))
    others: dict[int, set[str]] = {t: set() for t in tickets}
    for row in participants:
        if row["address"] != address and not is_staff(ctx.cfg, row["address"]):
            others[row["ticket_id"]].add(row["address"])
    whole = [t for t in sorted(tickets) if not others[t]]
    shared = [t for t in sorted(tickets) if others[t]]
    names = sorted(n for n in personal.names_of(address) if len(n) >= MIN_NAME)
    needles = [address, *(n.lower() for n in names)]
    messages = personal.message_ids(whole, address)
    # The address is searched for everywhere, names only on their tickets: elsewhere a
    # "Jan Kowalski" is likely someone else.
    outbox = sorted(
        {*personal.outbox_ids(whole, [address]), *personal.outbox_naming(list(tickets), names)}
    )
    in_whole = set(personal.outbox_ids(whole, []))
    to_them = set(personal.outbox_to(address))
    return Holdings(
        address=address,
        pseudonym=pseudonym(_secret(ctx), address),
        names=names,
        tickets=tickets,
        whole=whole,
        shared=shared,
        messages=messages,
        naming=[m for m in personal.messages_naming(shared, needles) if m not in messages],
        inbound=sorted(
            {
                *personal.inbound_ids(messages, whole, address),
                *personal.inbound_naming(names, list(tickets)),
            }
        ),
        attachments=personal.attachments_of(messages),
        outbox=outbox,
        outbox_erased=sorted(in_whole | to_them),
        events=personal.event_ids(list(tickets), [address]),
        escalations=personal.escalation_ids(address),
        undeliverable=personal.undeliverable(address),
        participants=[
            p for p in participants if p["ticket_id"] in whole or p["address"] == address
        ],
    )


def _secret(ctx: Context) -> bytes:
    return load_secret(ctx.data_dir)


# -- access -------------------------------------------------------------------------------------


def _plain(row: Row) -> dict[str, Any]:
    return dict(row)


def export(ctx: Context, address: str, out: Path, now: datetime) -> dict[str, int]:
    """Write one ZIP archive with everything held about `address`; returns the counts.

    `customer.json` holds every row (per table, as stored); `mail/inbound-ID.eml` each raw
    message; `attachments/ID-NAME` each file. The archive is created with mode 0600.
    """
    held = find(ctx, address)
    personal = ctx.store.personal
    columns = [c for c, _ in ctx.store.schema_tables()["inbound"] if c != "raw"]
    inbound = personal.by_ids("inbound", held.inbound, ", ".join(columns))  # raw bytes as files
    tables: dict[str, list[dict[str, Any]]] = {
        "tickets": [_plain(r) for r in personal.by_ids("tickets", list(held.tickets))],
        "participants": [_plain(r) for r in held.participants],
        "messages": [
            _plain(r) for r in personal.by_ids("messages", sorted(held.messages + held.naming))
        ],
        "attachments": [_plain(r) for r in held.attachments],
        "inbound": [
            {**_plain(r), "file": f"mail/inbound-{r['id']}.eml"} for r in inbound
        ],
        "outbox": [_plain(r) for r in personal.by_ids("outbox", held.outbox)],
        "events": [_plain(r) for r in personal.by_ids("events", held.events)],
        "escalations": [_plain(r) for r in personal.by_ids("escalations", held.escalations)],
        "undeliverable": [_plain(r) for r in held.undeliverable],
    }
    document = {
        "address": held.address,
        "names": held.names,
        "generated_at": now.astimezone(ctx.cfg.tz).isoformat(timespec="seconds"),
        "tickets_shared_with_others": held.shared,
        "tables": tables,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=FILE_MODE)
    out.chmod(FILE_MODE)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "customer.json", json.dumps(document, ensure_ascii=False, indent=2, default=str)
        )
        for row in inbound:
            archive.writestr(f"mail/inbound-{row['id']}.eml", ctx.store.inbound.raw(row["id"]))
        for att in held.attachments:
            path = ctx.data_dir / att["path"]
            if att["purged_at"] is None and path.is_file():
                name = attachments_module.safe_filename(att["filename"])
                archive.write(path, f"attachments/{att['id']}-{name}")
    return held.counts()


# -- erasure ------------------------------------------------------------------------------------


def forget(ctx: Context, address: str, now: datetime, *, dry_run: bool = False) -> Holdings:
    """Erase what is held about `address` (see the module's rules); returns what was found.

    One transaction, then the files (attachments no longer kept, sent-mail copies) and a
    rewrite of the database files so no freed page keeps a copy. Records a `forgotten`
    event naming the admin, the pseudonym and the counts, nothing personal.
    """
    held = find(ctx, address)
    if dry_run:
        return held
    store, personal = ctx.store, ctx.store.personal
    store.secure_delete()
    try:
        with store.atomic():
            personal.blank_messages(held.messages)
            personal.blank_tickets(held.whole, now)
            personal.blank_outbox(held.outbox_erased, ctx.cfg.mailbot.name)
            personal.purge_raw(held.inbound)
            gone = personal.purge_attachments([a["id"] for a in held.attachments], now)
            personal.replace_address(held.address, held.pseudonym)
            personal.scrub_texts([held.address], held.pseudonym)
            # Names only where the customer took part: elsewhere "Jan" is someone else.
            personal.scrub_texts(held.names, ERASED, list(held.tickets), words=True)
            personal.forget_undeliverable(held.address)
            counts = ", ".join(f"{k} {v}" for k, v in held.counts().items())
            store.events.add(
                "forgotten",
                f"personal data of {held.pseudonym} erased on request: {counts}",
                at=now,
                actor=f"admin ({_who()})",
            )
        _remove_files(ctx, gone, held.outbox)
        held.wal_emptied = store.erase_freed()
    finally:
        store.secure_delete(False)
    return held


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container: still an admin's act
        return "unknown user"


def _remove_files(ctx: Context, attachment_paths: Iterable[str], outbox_ids: list[int]) -> None:
    """Attachment files no longer referred to, and the Maildir copies of erased outgoing mail."""
    for rel in attachment_paths:
        (ctx.data_dir / rel).unlink(missing_ok=True)
    sent = ctx.cfg.outbound.path
    if not outbox_ids or not sent.is_dir():
        return
    for row in ctx.store.personal.by_ids("outbox", outbox_ids, "id, message_id"):
        key = delivery_key(row["id"], row["message_id"])
        for folder in ("new", "cur", "tmp"):
            for path in (sent / folder).glob(f"{key}.mailbot*"):
                path.unlink(missing_ok=True)


# -- retention ----------------------------------------------------------------------------------


@dataclass
class Purge:
    """What retention removes at one moment: ids per category."""

    raw_mail: list[int]
    attachments: list[int]
    closed_tickets: list[int]

    def counts(self) -> dict[str, int]:
        return {
            "raw_mail": len(self.raw_mail),
            "attachments": len(self.attachments),
            "closed_tickets": len(self.closed_tickets),
        }

    @property
    def empty(self) -> bool:
        return not (self.raw_mail or self.attachments or self.closed_tickets)


def due_for_purge(ctx: Context, now: datetime) -> Purge:
    """What is past `[retention]` at `now`: older than the period, not exactly as old."""
    keep, personal = ctx.cfg.retention, ctx.store.personal
    return Purge(
        raw_mail=personal.raw_before(keep.raw_mail.before(now)) if keep.raw_mail else [],
        attachments=(
            personal.attachments_before(keep.attachments.before(now)) if keep.attachments else []
        ),
        closed_tickets=(
            personal.closed_before(keep.closed_tickets.before(now)) if keep.closed_tickets else []
        ),
    )


def purge(ctx: Context, now: datetime, *, dry_run: bool = False) -> Purge:
    """Remove what is past retention (see config.toml [retention]); returns what went."""
    due = due_for_purge(ctx, now)
    if dry_run or due.empty:
        return due
    store, personal = ctx.store, ctx.store.personal
    secret = _secret(ctx)

    @functools.cache
    def stand_in(address: str) -> str:
        if is_staff(ctx.cfg, address) or is_pseudonym(address):
            return address
        return pseudonym(secret, address)

    store.secure_delete()
    try:
        # In batches: short transactions (the daemon keeps working meanwhile), short IN lists.
        for closed in _batches(due.closed_tickets):
            with store.atomic():
                messages = personal.message_ids(closed, "")
                outbox = personal.outbox_ids(closed, [])
                personal.blank_messages(messages)
                personal.blank_tickets(closed, now)
                personal.blank_outbox(outbox, ctx.cfg.mailbot.name)
                personal.purge_raw(personal.inbound_ids(messages, closed, None))
                gone = personal.purge_attachments(
                    [a["id"] for a in personal.attachments_of(messages)], now
                )
                personal.pseudonymise_tickets(closed, stand_in)
            _remove_files(ctx, gone, outbox)
        for raw in _batches(due.raw_mail):
            with store.atomic():
                personal.purge_raw(raw, keep_reason=True)
        for files in _batches(due.attachments):
            with store.atomic():
                gone = personal.purge_attachments(files, now)
            _remove_files(ctx, gone, [])
        with store.atomic():
            counts = ", ".join(f"{k} {v}" for k, v in due.counts().items())
            store.events.add("retention", f"past [retention] removed: {counts}", at=now)
        store.erase_freed(vacuum=False)
    finally:
        store.secure_delete(False)
    return due


def _batches(ids: list[int], size: int = BATCH) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]

