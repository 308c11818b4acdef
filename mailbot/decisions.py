"""What a message or a timer leads to, as plain values: deciders return them, the writer applies.

A `Plan` is everything that must happen to one ticket because of one inbound message or one
timer: open or change the ticket, keep the message, send a template to someone, schedule or
cancel timers, pause the SLA clock, record events. Deciding code reads the database but never
writes it; `mailbot.writer` applies a plan in order, inside the transaction of the message or
the timer. A plan that replays old mail (`history`: `mailbot import --history`) holds no
outgoing mail and no timer due before the import: `add` turns a `Send` into an event saying it
was not sent and a past `ScheduleTimer` into a `SkipTimer`, so no decider can slip one through.
A plan also answers what the ticket looks like once its decisions so far are applied
(`ticket`, `scheduled`, `open_pause`), so that a later decision in the same plan sees the
effect of an earlier one without anything being written yet.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailbot.store import RowLike, Store, to_db

if TYPE_CHECKING:
    from mailbot.mail.parse import Attachment


@dataclass(frozen=True)
class OpenTicket:
    """A new ticket; the plan's other decisions are about it."""

    subject: str
    priority: str
    language: str
    requester: str
    requester_name: str
    topic: str | None
    created_at: datetime
    first_response_due: datetime
    previous_ticket: int | None = None
    mailbox: str | None = None  # the support address it came in through


@dataclass(frozen=True)
class UpdateTicket:
    """Set columns of the ticket (datetimes are stored as UTC text)."""

    changes: Mapping[str, Any]


@dataclass(frozen=True)
class AddParticipant:
    address: str
    name: str
    role: str  # requester | cc


@dataclass(frozen=True)
class KeepMessage:
    """The inbound message being processed, on the ticket, with its attachments' files."""

    kind: str  # customer | agent | note | system | auto
    text: str
    from_addr: str
    from_name: str
    message_id: str | None
    subject: str
    received_at: datetime
    attachments: tuple[Attachment, ...] = ()
    verified: bool = True
    references: tuple[str, ...] = ()  # its In-Reply-To and References, as received
    direction: str = "in"  # "out": our own answer, as the support mailbox's Sent folder kept it


@dataclass(frozen=True)
class Record:
    """How an outgoing mail is shown among the ticket's messages."""

    kind: str  # system | agent
    text: str
    from_addr: str | None
    from_name: str


@dataclass(frozen=True)
class Send:
    """A template rendered for the ticket as it stands when written, into the outbox."""

    template: str
    to: str
    language: str
    purpose: str  # what the signed Message-ID says the mail is for
    context: Mapping[str, Any] = field(default_factory=dict)  # on top of the ticket's
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    auto_submitted: str | None = "auto-replied"
    from_name: str | None = None
    cc: tuple[str, ...] = ()
    attach_message: bool = False  # carry the attachments of the plan's KeepMessage
    attach_only: tuple[int, ...] | None = None  # only these of them (positions); None: all
    attach_original: bool = False  # the plan's inbound message as it arrived (message/rfc822)
    record: Record | None = None
    importance: str | None = None  # "high": marked important (Importance, X-Priority): pages


@dataclass(frozen=True)
class Event:
    """An audit-trail row: what was decided and why, and by whom."""

    kind: str
    detail: str
    actor: str = "mailbot"
    ticket_id: int | None = None  # recorded on this ticket instead of the plan's (a link)


@dataclass(frozen=True)
class ScheduleTimer:
    kind: str
    due: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SkipTimer:
    """A timer whose moment passed before a history import: kept as `skipped`, never fired.

    It counts as used, like a fired one: the reminder it stands for is not sent later either.
    """

    kind: str
    due: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CancelTimers:
    """Cancel the ticket's scheduled timers of these kinds (all kinds when None)."""

    kinds: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CancelTimer:
    timer_id: int


@dataclass(frozen=True)
class PauseClock:
    """The SLA clock stands still from now on (#pending, or closed unanswered)."""

    reason: str


@dataclass(frozen=True)
class ResumeClock:
    """The open pause of the clock ends now."""

    pause_id: int
    started_at: str  # as stored, so the plan can tell the pause's length before it is written


@dataclass(frozen=True)
class MarkUndeliverable:
    """No automatic mail to the address until `until` (a hard bounce)."""

    address: str
    until: datetime
    reason: str


@dataclass(frozen=True)
class RecordEscalation:
    customer: str
    manager: str
    source: str  # customer | agent
    outcome: str  # paged | deferred | suspended


@dataclass(frozen=True)
class MarkPaged:
    """A deferred page to the manager went out now."""


Decision = (
    OpenTicket
    | UpdateTicket
    | AddParticipant
    | KeepMessage
    | Send
    | Event
    | ScheduleTimer
    | SkipTimer
    | CancelTimers
    | CancelTimer
    | PauseClock
    | ResumeClock
    | MarkUndeliverable
    | RecordEscalation
    | MarkPaged
)


@dataclass
class Plan:
    """The decisions about one ticket, in the order they are to be applied."""

    now: datetime
    ticket_id: int | None = None  # None until written when the plan opens a ticket
    inbound_id: int | None = None
    decisions: list[Decision] = field(default_factory=list)
    acted: bool = True  # False: a timer found nothing left to do (its plan may still log why)
    # Replaying old mail: the real time of the import (`now` is then the mail's own time).
    history: datetime | None = None
    _ticket: dict[str, Any] = field(default_factory=dict)

    def add(self, *decisions: Decision) -> None:
        for decision in decisions:
            if self.history is not None:
                decision = self._replayed(decision)
            self.decisions.append(decision)
            if isinstance(decision, OpenTicket):
                self._ticket = _opened(decision, self.now)
            elif isinstance(decision, UpdateTicket):
                self._ticket.update(stored(decision.changes))

    def _replayed(self, decision: Decision) -> Decision:
        """A decision in a plan about old mail: nothing goes out, nothing in the past fires."""
        assert self.history is not None
        if isinstance(decision, Send):
            return Event("not-sent", f"{decision.template} to {decision.to}: history import")
        if isinstance(decision, ScheduleTimer) and decision.due <= self.history:
            return SkipTimer(decision.kind, decision.due, decision.payload)
        return decision

    def cancel(self, timer: Mapping[str, Any]) -> None:
        """Cancel one scheduled timer: a stored one, or one this plan was going to add."""
        if timer["id"] is None:
            self.decisions.remove(timer["decision"])
        else:
            self.add(CancelTimer(timer["id"]))

    def event(self, kind: str, detail: str, actor: str = "mailbot") -> None:
        self.add(Event(kind, detail, actor))

    def update(self, **changes: Any) -> None:
        self.add(UpdateTicket(changes))

    # -- the ticket as the decisions so far leave it --------------------------------------------

    def start(self, ticket: RowLike) -> None:
        """Plan about an existing ticket, as read from the store."""
        self.ticket_id = ticket["id"]
        self._ticket = dict(ticket)

    @property
    def ticket(self) -> dict[str, Any]:
        """The ticket's columns (stored form) with this plan's changes applied."""
        return self._ticket

    def scheduled(self, store: Store, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
        """The ticket's scheduled timers of these kinds once this plan's changes are applied.

        Timers the plan adds have no id yet (`id` None).
        """
        rows = (
            [dict(r) for r in store.timers.of_ticket(self.ticket_id, kinds)]
            if self.ticket_id
            else []
        )
        timers = [r for r in rows if r["status"] == "scheduled"]
        for decision in self.decisions:
            if isinstance(decision, CancelTimers):
                timers = [t for t in timers if decision.kinds and t["kind"] not in decision.kinds]
            elif isinstance(decision, CancelTimer):
                timers = [t for t in timers if t["id"] != decision.timer_id]
            elif isinstance(decision, ScheduleTimer) and decision.kind in kinds:
                timers.append(_planned_timer(decision))
        return timers

    def used_slots(self, store: Store, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
        """The ticket's timers of these kinds that fired, failed, or were skipped (history)."""
        stored = store.timers.of_ticket(self.ticket_id, kinds) if self.ticket_id else []
        return [dict(r) for r in stored if r["status"] in ("fired", "failed", "skipped")] + [
            {**_planned_timer(d), "status": "skipped"}
            for d in self.decisions
            if isinstance(d, SkipTimer) and d.kind in kinds
        ]

    def finished_pauses(self, store: Store) -> list[dict[str, Any]]:
        """(started_at, ended_at) of the clock's pauses that ended, this plan's included."""
        pauses = [dict(p) for p in store.pauses.finished(self.ticket_id)] if self.ticket_id else []
        pauses += [
            {"started_at": d.started_at, "ended_at": to_db(self.now)}
            for d in self.decisions
            if isinstance(d, ResumeClock)
        ]
        return sorted(pauses, key=lambda p: p["started_at"])

    def open_pause(self, store: Store) -> dict[str, Any] | None:
        """The pause of the ticket's clock that has not ended, once this plan is applied."""
        row = store.pauses.open(self.ticket_id) if self.ticket_id else None
        pause = dict(row) if row else None
        for decision in self.decisions:
            if isinstance(decision, PauseClock):
                pause = {"id": None, "reason": decision.reason, "started_at": to_db(self.now)}
            elif isinstance(decision, ResumeClock):
                pause = None
        return pause

    def first_customer_message_id(self, store: Store) -> str | None:
        """The Message-ID of the customer's first message on the ticket, this plan's included."""
        stored_first = (
            store.messages.first_customer_message_id(self.ticket_id) if self.ticket_id else None
        )
        return stored_first or next(
            (
                d.message_id
                for d in self.decisions
                if isinstance(d, KeepMessage) and d.kind == "customer" and d.message_id
            ),
            None,
        )

    def automatic_answers_to(self, address: str) -> int:
        """Automatic answers to `address` this plan sends (not yet counted by the store)."""
        return sum(
            1
            for d in self.decisions
            if isinstance(d, Send) and d.to == address and d.auto_submitted is not None
        )


def stored(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Column values as the store keeps them: datetimes as UTC text."""
    return {k: to_db(v) if isinstance(v, datetime) else v for k, v in changes.items()}


def _opened(ticket: OpenTicket, now: datetime) -> dict[str, Any]:
    """The columns a new ticket is written with (the writer and the plan agree on them)."""
    return {
        "id": None,
        "subject": ticket.subject,
        "status": "open",
        "priority": ticket.priority,
        "language": ticket.language,
        "requester": ticket.requester,
        "requester_name": ticket.requester_name,
        "topic": ticket.topic,
        "assignee": None,
        "created_at": to_db(ticket.created_at),
        "updated_at": to_db(now),
        "first_response_due": to_db(ticket.first_response_due),
        "first_response_at": None,
        "pending_since": None,
        "closed_at": None,
        "queued_notice_at": None,
        "previous_ticket": ticket.previous_ticket,
        "mailbox": ticket.mailbox,
    }


def _planned_timer(timer: ScheduleTimer | SkipTimer) -> dict[str, Any]:
    return {
        "id": None,
        "decision": timer,
        "kind": timer.kind,
        "due_at": to_db(timer.due),
        "status": "scheduled",
        "payload": json.dumps(dict(timer.payload)),
    }


def new_ticket_columns(ticket: OpenTicket, now: datetime) -> dict[str, Any]:
    """The row the writer inserts for an OpenTicket (without its id)."""
    columns = _opened(ticket, now)
    del columns["id"]
    return columns
