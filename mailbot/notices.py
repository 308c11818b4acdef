"""Who hears about a ticket, and the `Send` decisions that tell them: staff notices, customer mail.

Mail to staff who are not agents (leads, account managers) names the ticket and the customer's
address but never carries the customer's words: inbound content reaches agents only (DESIGN §2).
Templates are rendered by the writer with `context()` of the ticket as it then stands.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mailbot import loops, references
from mailbot.attachments import safe_filename
from mailbot.config import Config, Mailbox
from mailbot.decisions import Plan, Record, Send
from mailbot.mail.charsets import fold
from mailbot.store import RowLike, Store, from_db
from mailbot.templates import format_hours, format_when, when_phrase, zone_phrase

# Ticket fields as staff read them in each language (a value not listed shows as stored).
PRIORITY_TEXT = {"pl": {"urgent": "pilny", "normal": "normalny"}}
STATUS_TEXT = {
    "pl": {"open": "otwarte", "pending": "czeka na klienta", "closed": "zamknięte"},
    "en": {"pending": "waiting on the customer"},
}

# The subject words an acknowledgement suggests for urgent matters, per language, when they
# are among [urgent] keywords: one or two natural ones, not the whole list.
URGENT_WORDS = {"pl": ("pilne", "awaria"), "en": ("urgent",)}

if TYPE_CHECKING:
    from mailbot.mail.parse import Attachment

log = logging.getLogger("mailbot.loops")

# An inline image smaller than this is taken for a logo or icon of an HTML signature: it is
# kept on the ticket, but not carried to agents nor listed. Pasted screenshots are larger.
SIGNATURE_IMAGE_MAX = 20_000


def when(cfg: Config, value: str | None, language: str) -> str:
    """A stored UTC time as people read it, in the configured zone ('' when unset)."""
    return _told(value, cfg.tz, language, "when") if value else ""


def phrase(cfg: Config, value: str | None, language: str, *, deadline: bool = False) -> str:
    """A stored UTC time as it stands in a sentence: 'w środę, 2 grudnia 2026 r., o 09:20'."""
    return _told(value, cfg.tz, language, "deadline" if deadline else "phrase") if value else ""


def zone(cfg: Config, value: str | None, language: str) -> str:
    """The clock a stored time is told on: 'czasu polskiego', 'Warsaw time, CET'."""
    return _told(value, cfg.tz, language, "zone") if value else ""


# A ticket's due and created times are told several ways in every mail about it, and recur
# in all of its mails: each stored value is parsed and converted to the zone once.
@lru_cache(maxsize=4096)
def _local(value: str, tz: tzinfo) -> datetime:
    return datetime.fromisoformat(value).astimezone(tz)


@lru_cache(maxsize=8192)
def _told(value: str, tz: tzinfo, language: str, how: str) -> str:
    moment = _local(value, tz)
    if how == "when":
        return format_when(moment, language)
    if how == "zone":
        return zone_phrase(moment, language)
    return when_phrase(moment, language, deadline=how == "deadline")


@lru_cache(maxsize=16)
def urgent_words(keywords: tuple[str, ...], language: str) -> tuple[str, ...]:
    """The subject words to suggest for urgent matters ('PILNE', 'AWARIA'); () when none."""
    configured = [k for k in keywords if k.strip()]
    folded = {fold(k) for k in configured}
    words = tuple(w.upper() for w in URGENT_WORDS.get(language, ()) if fold(w) in folded)
    if not configured:
        return ()
    return words or (configured[0].upper(),)


def staff_name(cfg: Config, address: str) -> str:
    """An agent as a colleague reads them: 'Anna Kowalska (anna@4dustry.com)'."""
    agent = cfg.agent(address)
    return f"{agent.name} ({agent.email})" if agent else address


def iso(cfg: Config, value: str | None) -> str:
    """A stored UTC time in the configured zone, ISO 8601 with offset, for events and logs."""
    moment = from_db(value)
    return moment.astimezone(cfg.tz).isoformat() if moment else "-"


def tag(cfg: Config, ticket_id: int) -> str:
    """The subject tag that names a ticket, e.g. '[4Dustry #123]'."""
    return f"[{cfg.mailbot.name} #{ticket_id}]"


def mailbox(cfg: Config, ticket: RowLike) -> Mailbox:
    """The support address a ticket came in through: mail about it goes out from there."""
    try:
        address = ticket["mailbox"]
    except (KeyError, IndexError):  # a ticket row from before m010
        address = None
    return cfg.mailbox(address)


def agent_name(cfg: Config, address: str | None) -> str:
    """An agent's configured name, else the address as given ('' for nobody)."""
    agent = cfg.agent(address) if address else None
    return agent.name if agent else address or ""


def first_response(
    cfg: Config,
    ticket: RowLike,
    language: str,
    store: Store | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """Where the ticket's first response stands now, for staff notices.

    `state`: "sent" (with `at` and `by`: when and who), "paused" (pending on the customer),
    "closed" (closed unanswered), "overdue" or "due" (with `at`: the due time).
    """
    if ticket["first_response_at"]:
        answer = store.messages.first_answer(ticket["id"]) if store and ticket["id"] else None
        by = (answer["from_name"] or agent_name(cfg, answer["from_addr"])) if answer else ""
        return {"state": "sent", "at": when(cfg, ticket["first_response_at"], language), "by": by}
    due = when(cfg, ticket["first_response_due"], language)
    if ticket["status"] == "pending":
        return {"state": "paused", "at": due, "by": ""}
    if ticket["status"] == "closed":
        return {"state": "closed", "at": due, "by": ""}
    moment = from_db(ticket["first_response_due"])
    overdue = bool(now and moment and moment <= now)
    return {"state": "overdue" if overdue else "due", "at": due, "by": ""}


def context(
    cfg: Config,
    ticket: RowLike,
    language: str,
    store: Store | None = None,
    now: datetime | None = None,
) -> dict[str, object]:
    """What every template about a ticket may use (`store` and `now` make the SLA state true)."""
    box = mailbox(cfg, ticket)
    return {
        "company": cfg.mailbot.name,
        "address": box.address,  # the customer's support address
        "mailbox": box.address if len(cfg.mailboxes) > 1 else "",  # for staff, when several
        "tag": tag(cfg, ticket["id"]),
        "ticket": dict(ticket),
        "subject": ticket["subject"],
        "requester": ticket["requester"],
        "customer_name": ticket["requester_name"] or "",
        "due_text": when(cfg, ticket["first_response_due"], language),
        "created_text": when(cfg, ticket["created_at"], language),
        "due_phrase": phrase(cfg, ticket["first_response_due"], language, deadline=True),
        "due_zone": zone(cfg, ticket["first_response_due"], language),
        "created_phrase": phrase(cfg, ticket["created_at"], language),
        "due_at_phrase": phrase(cfg, ticket["first_response_due"], language),
        "priority_text": _translated(PRIORITY_TEXT, language, ticket["priority"]),
        "status_text": _translated(STATUS_TEXT, language, ticket["status"]),
        "created_zone": zone(cfg, ticket["created_at"], language),
        "urgent_route": cfg.urgent.route_text.get(language, ""),
        "urgent_words": urgent_words(cfg.urgent.keywords, language),
        "hours_text": format_hours(cfg.hours.days, cfg.hours.opens, cfg.hours.closes, language),
        "timezone": str(cfg.tz),
        "manager": cfg.manager_for(ticket["requester"]),
        "topic_text": cfg.topic_name(ticket["topic"], language),  # in the reader's language
        "assignee_name": agent_name(cfg, ticket["assignee"]),
        "first_response": first_response(cfg, ticket, language, store, now),
    }


def _translated(table: dict[str, dict[str, str]], language: str, value: str) -> str:
    return table.get(language, {}).get(value, value)


def ticket_agents(cfg: Config, ticket: RowLike) -> list[str]:
    """Who hears about a ticket: its assignee, else its topic's agents, else every agent."""
    if ticket["assignee"]:
        return [ticket["assignee"]]
    topic = next((t for t in cfg.topics if t.name == ticket["topic"]), None)
    if topic and topic.agents:
        return list(topic.agents)
    return [agent.email for agent in cfg.agents]


def leads(cfg: Config) -> list[str]:
    """Who hears about breaches and suspended customers: [sla] notify, else every agent."""
    return list(cfg.sla.notify) or [agent.email for agent in cfg.agents]


def to_staff(
    cfg: Config,
    *,
    template: str,
    to: str,
    purpose: str = "agent",
    in_reply_to: str | None = None,
    references: Sequence[str] | None = None,
    from_name: str | None = None,
    auto_submitted: str = "auto-generated",
    importance: str | None = None,
    attach: tuple[int, ...] | None = None,
    attach_original: bool = False,
    **extra: object,
) -> Send:
    """An automatic notice to staff, in the default language.

    `purpose="agent"`: an agent's reply to it is authenticated like one to a notification.
    `auto_submitted="auto-replied"` for an answer to the staff member's own mail (RFC 3834).
    `importance="high"`: the mail is marked important (`loops.outbound_headers`).
    `attach`: positions of the plan's kept message's attachments to carry (the template gets
    `attachment_ids`, the ids they are stored under); `attach_original`: carry the message
    as it arrived.
    """
    return Send(
        template=template,
        to=to,
        language=cfg.mailbot.default_language,
        purpose=purpose,
        context=extra,
        in_reply_to=in_reply_to,
        references=tuple(
            references if references is not None else [in_reply_to] if in_reply_to else ()
        ),
        auto_submitted=auto_submitted,
        from_name=from_name,
        importance=importance,
        attach_message=attach is not None,
        attach_only=attach,
        attach_original=attach_original,
    )


def to_customer(
    plan: Plan,
    store: Store,
    cfg: Config,
    *,
    template: str,
    purpose: str = "notice",
    **extra: object,
) -> str | None:
    """Plan an automatic answer to the requester in their language, recorded on the ticket.

    Threaded under the customer's latest message, with their chain and our mail to them
    (`references.customer_thread`). Returns why it was not planned (the limits on automatic
    answers), or None when it was.
    """
    ticket = plan.ticket
    requester = ticket["requester"]
    refused = loops.answer_refused(
        store, cfg, requester, plan.now, planned=plan.automatic_answers_to(requester)
    )
    if refused:
        return refused
    flood = loops.flood_guard(
        store, cfg, requester, plan.now, *_automatic_answers(plan, requester.rpartition("@")[2])
    )
    if flood.event:
        plan.event(flood.event, f"{template} to {requester} held ({flood.pace} wanted a minute)")
    if flood.tripped:
        _flood_tripped(plan, cfg, flood)
    if flood.refused:
        return flood.refused
    parent, chain = references.customer_thread(plan, store)
    box = mailbox(cfg, ticket)
    plan.add(
        Send(
            template=template,
            to=requester,
            language=ticket["language"],
            purpose=purpose,
            context=extra,
            in_reply_to=parent,
            references=chain,
            auto_submitted="auto-replied",  # caused by the customer's own message (RFC 3834)
            record=Record(
                "system", f"({template} sent to {requester})", box.address, box.name
            ),
        )
    )
    return None


def quoted_text(text: str, limit: int) -> tuple[str, bool]:
    """The customer's text as a notification to agents quotes it: at most `limit` UTF-8 bytes
    (`[notifications] text_max`), cut at a line end in its second half when there is one;
    and whether it was cut. Only the head is encoded: a 25 MB text is not copied whole."""
    if len(text) <= limit // 4:  # no character takes more than 4 bytes
        return text, False
    head = text[: limit + 1]
    data = head.encode("utf-8", "surrogateescape")
    if len(head) == len(text) and len(data) <= limit:
        return text, False
    if len(data) > limit:
        head = data[:limit].decode("utf-8", "ignore")
    line_end = head.rfind("\n", len(head) // 2)
    return (head[:line_end] if line_end > 0 else head).rstrip(), True


def _automatic_answers(plan: Plan, domain: str) -> tuple[int, int]:
    """Automatic answers the plan holds already: to anyone, and to addresses at `domain`."""
    answers = [
        d.to for d in plan.decisions if isinstance(d, Send) and d.auto_submitted == "auto-replied"
    ]
    return len(answers), sum(a.rpartition("@")[2].lower() == domain.lower() for a in answers)


def _flood_tripped(plan: Plan, cfg: Config, flood: loops.Flood) -> None:
    """The breaker tripped on this plan's answer: the leads hear of it (once a trip)."""
    limits = cfg.limits
    log.error(
        "flood: automatic answers paused",
        extra={
            "requester": plan.ticket.get("requester"),
            "pace": flood.pace,
            "limit": limits.auto_replies_per_minute,
            "calm_minutes": limits.auto_replies_calm_minutes,
        },
    )
    for to in leads(cfg):
        plan.add(
            to_staff(
                cfg,
                template="flood_tripped",
                to=to,
                purpose="notice",
                pace=flood.pace,
                limit=limits.auto_replies_per_minute,
                calm=limits.auto_replies_calm_minutes,
            )
        )


@dataclass(frozen=True)
class CarriedFiles:
    """Which of a message's attachments a notification to agents carries, within the cap."""

    files: list[dict[str, Any]] = field(default_factory=list)  # listed, in the message's order
    carried: tuple[int, ...] = ()  # positions among the message's attachments
    original: dict[str, Any] | None = None  # the whole message as it arrived, when offered

    @property
    def left_out(self) -> list[dict[str, Any]]:
        return [f for f in self.files if not f["carried"]]


def is_decoration(att: Attachment) -> bool:
    """A small image shown inside an HTML signature (a logo), not something the customer sent."""
    return (
        att.inline and att.content_type.startswith("image/") and len(att.data) < SIGNATURE_IMAGE_MAX
    )


def carried_files(
    cfg: Config, attachments: Sequence[Attachment], original_size: int | None = None
) -> CarriedFiles:
    """The customer's files for a notification: each in the message's order if it still fits
    in `[notifications] attachments_max`, then the original message (`original_size` bytes,
    for follow-ups) if it fits in what is left. Signature logos are neither carried nor listed.
    """
    room = cfg.notifications.attachments_max
    files, carried = [], []
    for position, att in enumerate(attachments):
        if is_decoration(att):
            continue
        fits = len(att.data) <= room
        if fits:
            room -= len(att.data)
            carried.append(position)
        files.append(
            {
                "position": position,
                "filename": safe_filename(att.filename),
                "size": len(att.data),
                "carried": fits,
            }
        )
    original = None
    if original_size is not None:
        original = {"size": original_size, "carried": original_size <= room}
    return CarriedFiles(files, tuple(carried), original)
