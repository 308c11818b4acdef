"""Who hears about a ticket, and the `Send` decisions that tell them: staff notices, customer mail.

Mail to staff who are not agents (leads, account managers) names the ticket and the customer's
address but never carries the customer's words: inbound content reaches agents only (DESIGN §2).
Templates are rendered by the writer with `context()` of the ticket as it then stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from mailbot import loops, references
from mailbot.config import Config
from mailbot.decisions import Plan, Record, Send
from mailbot.mail.charsets import fold
from mailbot.store import RowLike, Store, from_db
from mailbot.templates import format_hours, format_when, when_phrase, zone_phrase

# Ticket fields as staff read them in each language (English shows the stored values).
PRIORITY_TEXT = {"pl": {"urgent": "pilny", "normal": "normalny"}}
STATUS_TEXT = {"pl": {"open": "otwarte", "pending": "czeka na klienta", "closed": "zamknięte"}}

# The subject words an acknowledgement suggests for urgent matters, per language, when they
# are among [urgent] keywords: one or two natural ones, not the whole list.
URGENT_WORDS = {"pl": ("pilne", "awaria"), "en": ("urgent",)}


def when(cfg: Config, value: str | None, language: str) -> str:
    """A stored UTC time as people read it, in the configured zone ('' when unset)."""
    moment = from_db(value)
    return format_when(moment.astimezone(cfg.tz), language) if moment else ""


def phrase(cfg: Config, value: str | None, language: str, *, deadline: bool = False) -> str:
    """A stored UTC time as it stands in a sentence: 'w środę, 2 grudnia 2026 r., o 09:20'."""
    moment = from_db(value)
    return when_phrase(moment.astimezone(cfg.tz), language, deadline=deadline) if moment else ""


def zone(cfg: Config, value: str | None, language: str) -> str:
    """The clock a stored time is told on: 'czasu polskiego', 'Warsaw time, CET'."""
    moment = from_db(value)
    return zone_phrase(moment.astimezone(cfg.tz), language) if moment else ""


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


def context(cfg: Config, ticket: RowLike, language: str) -> dict[str, object]:
    """What every template about a ticket may use."""
    return {
        "company": cfg.mailbot.name,
        "address": cfg.mailbot.address,
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
    **extra: object,
) -> Send:
    """An automatic notice to staff, in the default language.

    `purpose="agent"`: an agent's reply to it is authenticated like one to a notification.
    `auto_submitted="auto-replied"` for an answer to the staff member's own mail (RFC 3834).
    `importance="high"`: the mail is marked important (`loops.outbound_headers`).
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
    parent, chain = references.customer_thread(plan, store)
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
                "system", f"({template} sent to {requester})", cfg.mailbot.address, cfg.mailbot.name
            ),
        )
    )
    return None
