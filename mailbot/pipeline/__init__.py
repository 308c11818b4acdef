"""Processing steps that turn stored mail into ticket decisions, and the outcomes that stop them.

A `Job` is one inbound message on its way through the steps declared in `mailbot.worker.STEPS`
(parse → classify → thread → decide). Each step reads what the earlier ones found and adds its
own finding; the last, `decide`, leaves the `Plan` that the worker has `mailbot.writer` write.
No step writes. Outcomes that end processing early are exceptions: `Ignore` (stored and marked,
nothing more) and `Quarantine` (cannot be processed; kept with the reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from mailbot.decisions import KeepMessage, Plan

if TYPE_CHECKING:
    from mailbot.config import Agent, Mailbox
    from mailbot.context import Context
    from mailbot.mail.automatic import Automatic
    from mailbot.mail.parse import ParsedMessage


class Ignore(Exception):
    """The message is stored and marked with this reason; nothing else happens."""

    status = "ignored"


class Duplicate(Ignore):
    """The same message (Message-ID and sender) was already processed."""

    status = "duplicate"


class Loop(Ignore):
    """Our own mail came back to us."""


class Quarantine(Exception):
    """The message cannot be processed; an admin can look at it and retry."""


@dataclass(frozen=True)
class Sender:
    """Who wrote the message, as far as mailbot is concerned."""

    kind: str  # customer | agent | unverified-agent | automatic | support (history: ours)
    address: str
    name: str
    reason: str
    agent: Agent | None = None
    automatic: Automatic | None = None
    via_form: bool = False
    token_ticket: int | None = None  # the ticket a verified agent token was issued for


@dataclass(frozen=True)
class Step:
    """One processing step: a function of the job that adds its finding to it.

    `reads_store`: whether it looks at the database. Steps that do not run before the write
    lock is taken, so parsing a large message never holds up the SMTP listener.
    """

    name: str
    run: Callable[[Job], None]
    reads_store: bool


@dataclass(frozen=True)
class ThreadMatch:
    ticket_id: int | None
    reason: str
    # How: "token" (a reply token of ours for the sender), "message-id" (a stored Message-ID
    # only: anyone who saw the mail can quote it), "agent-token" (an agent address presenting
    # a token that does not verify), "tag" (subject tag, sender takes part or is an agent).
    by: str = ""


@dataclass
class Job:
    """One inbound message in flight through the steps."""

    ctx: Context
    inbound_id: int
    raw: bytes
    received_at: datetime
    now: datetime
    source: str = "import"
    no_replies: bool = False
    envelope_from: str | None = None
    envelope_to: tuple[str, ...] = ()
    folder: str | None = None  # the IMAP folder it was read from
    mailbox: Mailbox | None = None  # the support address it came in through (classify)
    # Replaying old mail (`import --history`): the real time now; `now` is the mail's own time.
    history: datetime | None = None
    sent_by_us: bool = False  # history: from the support mailbox's Sent folder
    parsed: ParsedMessage | None = None
    sender: Sender | None = None
    language: str = ""
    priority: str = "normal"
    priority_reason: str = ""
    match: ThreadMatch | None = None
    notes: list[str] = field(default_factory=list)
    plan: Plan | None = None

    def new_plan(self, ticket_id: int | None = None) -> Plan:
        """A plan about this message (one that replays old mail when the job does)."""
        return Plan(self.now, ticket_id=ticket_id, inbound_id=self.inbound_id, history=self.history)

    def kept(
        self, kind: str, text: str | None = None, *, verified: bool = True, keep_inline: bool = True
    ) -> KeepMessage:
        """This message as it is kept on its ticket (`text` instead of the parsed text).

        `keep_inline=False` leaves out images shown in the body (an agent's signature logo).
        """
        parsed, sender = self.parsed, self.sender
        assert parsed is not None and sender is not None
        return KeepMessage(
            kind=kind,
            text=parsed.text if text is None else text,
            from_addr=sender.address,
            from_name=sender.name,
            message_id=parsed.message_id,
            subject=parsed.subject,
            received_at=self.received_at,
            attachments=tuple(a for a in parsed.attachments if keep_inline or not a.inline),
            verified=verified,
            references=tuple(dict.fromkeys((*parsed.references, *parsed.in_reply_to))),
        )
