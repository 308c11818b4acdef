"""Loop protection in one place: robots in, robots out, and how often we may answer one address.

Inbound: `automatic()` says whether mail was sent by a machine (RFC 3834 headers, lists, DSNs,
out-of-office subjects in Polish and English, mailer-daemon/noreply senders, our own mail
coming back); such mail never gets an automatic answer.
Outbound: every automatic message we send carries `Auto-Submitted`, `X-Auto-Response-Suppress`
and an `X-Loop` naming us (automatic answers `Precedence: auto_reply` too, staff notices no
`Precedence`), and leaves with a dedicated envelope sender, so that robots don't answer it and
their bounces come back to us recognisably. Pages are marked important.
Rate limits: at most `[limits] auto_replies_per_10min` / `auto_replies_per_day` automatic
answers to one address, and none to an address whose mail bounced recently.
Floods (`flood_guard`): a robot answering from a new address each time (`robot+N@`) meets
`auto_replies_per_domain_per_10min` for its domain (public mail services excepted); mail from
many domains at once meets `auto_replies_per_minute`, the circuit breaker: past it no
automatic answer goes to any customer until a whole `auto_replies_calm_minutes` passes below
the limit. Mail is still stored and ticketed and agents are still notified; the leads hear of
each trip once. The breaker keeps no state of its own: its events (`flood-*`) are it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message

from mailbot.config import Config
from mailbot.mail.automatic import Automatic, detect_automatic
from mailbot.store import Store


def own_addresses(cfg: Config) -> set[str]:
    """Every support address ([[mailboxes]]) and the envelope senders of our mail from it."""
    own = set()
    for box in cfg.mailboxes:
        own |= {box.address, auto_envelope_from(cfg, box.address) or box.address}
    return own


def automatic(msg: Message, cfg: Config, envelope_from: str | None = None) -> Automatic | None:
    """Why this inbound message was sent by a machine, or None for a person's mail.

    `envelope_from`: the SMTP/LMTP envelope sender as the listener stored it ("<>" or "" for
    `MAIL FROM:<>`; None when mail came another way). A null reverse path marks bounces and
    auto-replies (RFC 3834 §3.2, RFC 5321 §4.5.5) just as `Return-Path: <>` does when a mail
    server delivered the mail to a mailbox; the listener adds no Return-Path of its own.
    """
    found = detect_automatic(
        msg,
        own_domains=tuple(dict.fromkeys(box.domain for box in cfg.mailboxes)),
        own_addresses=own_addresses(cfg),
    )
    if found is None and envelope_from is not None and envelope_from.strip("<> ") == "":
        return Automatic("auto-generated", "null envelope sender (MAIL FROM:<>)")
    return found


def auto_envelope_from(cfg: Config, address: str | None = None) -> str:
    """Envelope sender of our automatic mail from `address` (a mailbox; the [mailbot] address
    when None): '' (null) or a dedicated bounce address."""
    configured = cfg.outbound.auto_envelope_from
    if configured == "<>":
        return ""
    if configured:
        return configured
    local, _, domain = (address or cfg.mailbot.address).partition("@")
    return f"{local}+bounces@{domain}"


def envelope_from(cfg: Config, auto_submitted: str | None, address: str | None = None) -> str:
    """Envelope sender of a mail from the mailbox `address` (None: the [mailbot] address)."""
    if auto_submitted:
        return auto_envelope_from(cfg, address)
    return cfg.outbound.envelope_from or address or cfg.mailbot.address


def outbound_headers(
    cfg: Config,
    auto_submitted: str | None,
    importance: str | None = None,
    address: str | None = None,
) -> dict[str, str]:
    """Headers that keep robots from answering our automatic mail (RFC 3834 and practice).

    `Precedence` goes only on automatic answers (`auto-replied`: acks, notices, an agent's
    command errors), as `auto_reply`. Notices to staff (`auto-generated`: new tickets,
    follow-ups, SLA reminders, pages) are one-to-one mail someone must act on: `Precedence:
    bulk` would have Gmail, Outlook and Thunderbird filters file them away with newsletters.
    Their responders stay quiet through `Auto-Submitted` (RFC 3834: Sieve vacation, Gmail,
    Exchange) and `X-Auto-Response-Suppress` (Exchange/Outlook). `importance="high"` (a
    manager's page) adds the three headers clients show as important: Importance (Outlook,
    Exchange), X-Priority (Thunderbird, Apple Mail) and Priority (RFC 2156).
    """
    headers: dict[str, str] = {}
    if auto_submitted:
        headers["Auto-Submitted"] = auto_submitted
        headers["X-Auto-Response-Suppress"] = "All"  # Exchange/Outlook: no OOO, no receipts
        if auto_submitted == "auto-replied":
            headers["Precedence"] = "auto_reply"
        headers["X-Loop"] = address or cfg.mailbot.address  # the mailbox it goes out from
    if importance == "high":
        headers.update({"Importance": "high", "X-Priority": "1 (Highest)", "Priority": "urgent"})
    return headers


def answer_refused(
    store: Store, cfg: Config, address: str, now: datetime, planned: int = 0
) -> str | None:
    """Why no automatic answer may go to `address` now, or None when one may.

    `planned`: automatic answers to the address decided already but not written yet.
    """
    limits = cfg.limits
    recent, today = store.outbox.automatic_since(
        address, now - timedelta(minutes=10), now - timedelta(days=1)
    )
    recent, today = recent + planned, today + planned
    if recent >= limits.auto_replies_per_10min:
        return f"{recent} automatic answers to {address} in 10 minutes"
    if today >= limits.auto_replies_per_day:
        return f"{today} automatic answers to {address} in a day"
    held = store.addresses.undeliverable(address, now)
    return f"{held['reason']} (until {held['until']})" if held else None


HELD = "flood-held"  # an automatic answer the breaker held
HELD_HOT = "flood-held-hot"  # ...while answers were still coming faster than the limit
TRIPPED = "flood-tripped"  # the answer that tripped it (the leads are told in the same plan)


@dataclass(frozen=True)
class Flood:
    """What the flood limits say about one more automatic answer: `refused` why it may not
    go (None: it may), `event` the breaker's event kind to record for it, if any."""

    refused: str | None = None
    event: str | None = None
    pace: int = 0  # automatic answers wanted in the last minute, this one included

    @property
    def tripped(self) -> bool:
        return self.event == TRIPPED


def flood_guard(
    store: Store,
    cfg: Config,
    address: str,
    now: datetime,
    planned: int = 0,
    planned_domain: int = 0,
) -> Flood:
    """Whether one more automatic answer to `address` would feed a flood.

    `planned` / `planned_domain`: automatic answers decided already but not written yet (to
    anyone / to `address`'s domain). Answers the breaker holds count as wanted; answers the
    domain limit refuses do not (that robot is contained already; every other customer
    should not lose their ack because of it).
    """
    limits = cfg.limits
    domain = address.rpartition("@")[2].lower()
    per_domain = (
        0 if domain in limits.public_mail_domains else limits.auto_replies_per_domain_per_10min
    )
    per_minute = limits.auto_replies_per_minute
    if not per_domain and not per_minute:
        return Flood()  # both limits off: nothing to count
    minute_ago = now - timedelta(minutes=1)
    sent, to_domain = store.outbox.automatic_answers(
        minute_ago, domain, now - timedelta(minutes=10)
    )
    sent, to_domain = sent + planned, to_domain + planned_domain
    if per_domain and to_domain >= per_domain:
        return Flood(f"{to_domain} automatic answers to @{domain} in 10 minutes")
    if not per_minute:
        return Flood()
    calm = timedelta(minutes=limits.auto_replies_calm_minutes)
    held, last_hot = store.events.flood(minute_ago, now - calm)
    pace = sent + held + 1
    hot = pace > per_minute
    why = f"{pace} automatic answers wanted in a minute (limit {per_minute})"
    if last_hot is not None:  # tripped, and not yet calm for long enough
        return Flood(
            f"automatic answers paused by a flood ({why}); they resume after"
            f" {limits.auto_replies_calm_minutes} calm minutes",
            HELD_HOT if hot else HELD,
            pace,
        )
    if hot:
        return Flood(f"automatic answers paused: {why}", TRIPPED, pace)
    return Flood(pace=pace)
