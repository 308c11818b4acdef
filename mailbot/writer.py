"""The one place that writes what was decided: applies a `Plan` inside the caller's transaction.

Deciding code (the pipeline's decide step, timer handlers) returns plans; this module turns each
decision into rows through the store's named queries, in the plan's order. It renders templates
for the ticket as it stands at that point of the plan, fixes every outgoing Message-ID at
enqueue time, and keeps attachment files under content-addressed names. Each decision type maps
to a small fixed set of statements, so plans of many messages could later be written with one
`executemany` per table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from sqlite3 import Row
from typing import Any

from mailbot import attachments, notices, references, tokens
from mailbot.context import Context
from mailbot.decisions import (
    AddParticipant,
    CancelTimer,
    CancelTimers,
    Event,
    KeepMessage,
    MarkPaged,
    MarkUndeliverable,
    OpenTicket,
    PauseClock,
    Plan,
    RecordEscalation,
    ResumeClock,
    ScheduleTimer,
    Send,
    SkipTimer,
    UpdateTicket,
    new_ticket_columns,
    stored,
)
from mailbot.store import to_db
from mailbot.templates import Rendered


class _Writing:
    """One plan being written: the ticket it is about and what earlier decisions created."""

    def __init__(self, ctx: Context, plan: Plan) -> None:
        self.ctx, self.plan = ctx, plan
        self.ticket_id = plan.ticket_id
        self.message_row: int | None = None
        self.kept_attachments: list[int] = []  # ids of the kept message's attachments, in order
        self._ticket: Row | None = None  # read when a template needs it, dropped on change
        self._contexts: dict[str, dict[str, Any]] = {}  # notices.context per language, likewise
        # The last rendering and what it was made from: the notices of one message to ten
        # agents differ only in their recipients, so they share one subject and body.
        self._last: tuple[tuple[object, ...], object, Mapping[str, Any], Rendered] | None = None

    def ticket(self) -> Row:
        if self._ticket is None:
            assert self.ticket_id is not None
            self._contexts.clear()
            self._ticket = self.ctx.store.tickets.get(self.ticket_id)
            assert self._ticket is not None
        return self._ticket

    def apply(self, decision: object) -> None:
        store, now, ticket_id = self.ctx.store, self.plan.now, self.ticket_id
        match decision:
            case OpenTicket():
                self.ticket_id = store.tickets.insert(
                    {**new_ticket_columns(decision, now), "token_key": tokens.new_ticket_key()}
                )
                self._ticket = None
                store.tally.add("tickets_opened")
            case UpdateTicket(changes=changes):
                assert ticket_id is not None
                store.tickets.update(ticket_id, stored(changes))
                self._ticket = None
                if changes.get("status") == "closed":
                    store.tally.add("tickets_closed")
            case AddParticipant(address=address, name=name, role=role):
                assert ticket_id is not None
                store.participants.add(ticket_id, address, name, role)
            case KeepMessage():
                self.message_row, self.kept_attachments = self._keep(decision)
            case Send():
                self._send(decision)
            case Event(kind=kind, detail=detail, actor=actor):
                store.events.add(
                    kind,
                    detail,
                    at=now,
                    ticket_id=decision.ticket_id or ticket_id,
                    inbound_id=self.plan.inbound_id,
                    actor=actor,
                )
            case ScheduleTimer(kind=kind, due=due, payload=payload):
                store.timers.add(
                    kind=kind, due=due, now=now, ticket_id=ticket_id, payload=dict(payload)
                )
            case SkipTimer(kind=kind, due=due, payload=payload):
                store.timers.add(
                    kind=kind,
                    due=due,
                    now=now,
                    ticket_id=ticket_id,
                    payload=dict(payload),
                    status="skipped",
                )
            case CancelTimers(kinds=kinds):
                assert ticket_id is not None
                store.timers.cancel(ticket_id, kinds)
            case CancelTimer(timer_id=timer_id):
                store.timers.cancel_one(timer_id)
            case PauseClock(reason=reason):
                assert ticket_id is not None
                store.pauses.start(ticket_id, reason, now)
            case ResumeClock(pause_id=pause_id):
                store.pauses.end(pause_id, now)
            case MarkUndeliverable(address=address, until=until, reason=reason):
                store.addresses.mark_undeliverable(address, until, reason, now)
            case RecordEscalation():
                store.escalations.insert(
                    {
                        "customer": decision.customer,
                        "ticket_id": ticket_id,
                        "manager": decision.manager,
                        "source": decision.source,
                        "outcome": decision.outcome,
                        "at": to_db(now),
                        "paged_at": to_db(now) if decision.outcome == "paged" else None,
                    }
                )
            case MarkPaged():
                assert ticket_id is not None
                store.escalations.mark_paged(ticket_id, now)
            case _:
                raise TypeError(f"not a decision: {decision!r}")

    def _keep(self, message: KeepMessage) -> tuple[int, list[int]]:
        """The inbound message on the ticket, and its attachments under generated names:
        (the message's row id, its attachments' ids)."""
        store = self.ctx.store
        row_id = store.messages.insert(
            {
                "ticket_id": self.ticket_id,
                "inbound_id": self.plan.inbound_id,
                "direction": message.direction,
                "kind": message.kind,
                "from_addr": message.from_addr,
                "from_name": message.from_name,
                "message_id": message.message_id,
                "subject": message.subject,
                "text": message.text,
                "verified": int(message.verified),
                "created_at": to_db(message.received_at),
                "refs": " ".join(references.bounded(message.references)) or None,
            }
        )
        kept = []
        for att in message.attachments:
            rel, digest = attachments.save(self.ctx.data_dir, att.data)
            kept.append(
                store.attachments.insert(
                    {
                        "message_row": row_id,
                        "filename": attachments.safe_filename(att.filename),
                        "content_type": att.content_type
                        if "/" in att.content_type
                        else "application/octet-stream",
                        "size": len(att.data),
                        "sha256": digest,
                        "path": rel,
                    }
                )
            )
        return row_id, kept

    def _send(self, send: Send) -> None:
        """Render the template into an outbox row with its final Message-ID."""
        ctx, store, now = self.ctx, self.ctx.store, self.plan.now
        context: dict[str, Any] = {}
        ticket_key = None
        box = ctx.cfg.mailboxes[0]  # mail about no ticket (a digest) goes from the default
        base: dict[str, Any] | None = None
        if self.ticket_id:
            ticket = self.ticket()
            ticket_key = ticket["token_key"]
            box = notices.mailbox(ctx.cfg, ticket)  # where the ticket came in
            if send.language not in self._contexts:  # an ack and two notifications share it
                self._contexts[send.language] = notices.context(
                    ctx.cfg, ticket, send.language, store, now
                )
            base = self._contexts[send.language]
            context = dict(base)
        attached: list[int] = []
        if send.attach_message and self.message_row is not None:
            kept = self.kept_attachments
            context["attachment_ids"] = kept  # so the text can name them
            only = send.attach_only
            attached = kept if only is None else [kept[i] for i in only if i < len(kept)]
        rendered = self._render(send, base, context)
        message_id = ctx.signer.message_id(
            self.ticket_id or 0, send.purpose, send.to, box.domain, ticket_key
        )
        row_id = store.outbox.insert(
            {
                "ticket_id": self.ticket_id,
                "template": send.template,
                "to_addr": send.to,
                "cc": json.dumps(list(send.cc)),
                "from_addr": box.address,
                "from_name": send.from_name or box.name,
                "subject": rendered.subject,
                "body": rendered.body,
                "message_id": message_id,
                "in_reply_to": send.in_reply_to,
                # bounded: some threads grow long
                "refs": " ".join(references.bounded(send.references)) or None,
                "auto_submitted": send.auto_submitted,
                "importance": send.importance,
                "attachments": json.dumps(attached),
                "original_inbound": self.plan.inbound_id if send.attach_original else None,
                "next_attempt_at": to_db(now),
                "created_at": to_db(now),
            }
        )
        if send.record is not None:
            store.messages.insert(
                {
                    "ticket_id": self.ticket_id,
                    "outbox_id": row_id,
                    "direction": "out",
                    "kind": send.record.kind,
                    "from_addr": send.record.from_addr,
                    "from_name": send.record.from_name,
                    "message_id": message_id,
                    "subject": None,
                    "text": send.record.text,
                    "created_at": to_db(now),
                }
            )

    def _render(self, send: Send, base: object, context: dict[str, Any]) -> Rendered:
        """The template with the ticket's `context` and the Send's own, rendered once for
        Sends that differ only in whom they go to (the ticket's context unchanged between)."""
        key = (send.template, send.language, context.get("attachment_ids"))
        last = self._last
        # `base` (the ticket's context) is compared by identity: when the ticket changed it
        # was made anew; the Send's own values compare equal when they are the same objects.
        if last and last[0] == key and last[1] is base and last[2] == send.context:
            return last[3]
        rendered = self.ctx.templates.render(
            send.template, send.language, **{**context, **send.context}
        )
        self._last = (key, base, send.context, rendered)
        return rendered


def write(ctx: Context, plan: Plan) -> int | None:
    """Apply every decision of the plan in order; returns the ticket's id (new or existing)."""
    writing = _Writing(ctx, plan)
    for decision in plan.decisions:
        writing.apply(decision)
    plan.ticket_id = writing.ticket_id
    return writing.ticket_id
