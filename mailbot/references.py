"""In-Reply-To and References of the mail we send: the conversation each reader's client shows.

Customers' mail continues the customer's own chain: the ids of their messages, the ids those
referenced (RFC 5322 §3.6.4: the parent's References, then the parent), and the ids of what we
sent them before it, oldest first, the message answered last; so a fresh mail that reached a
ticket by its subject tag joins the conversation in the customer's client. It never names an
id the customer never saw: an agent's own mail as it reached us (their Gmail or Outlook
Message-ID), an internal note, automatic mail kept on the ticket, or our notifications to
staff. Staff notifications continue the chain of mail that person got about the ticket, so
their client keeps it together.

Ids keep the case they came in; they are compared ignoring case, since some MTAs change it and
databases from before m006 hold them lower-cased.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mailbot.decisions import KeepMessage, Plan
from mailbot.store import Store

# References kept on a mail (and per stored message): long threads would grow without end.
MAX_REFERENCES = 20


def bounded(ids: Sequence[str], limit: int = MAX_REFERENCES) -> tuple[str, ...]:
    """The first id (the thread's root) and the latest ones, as RFC 5322 §3.6.4 suggests."""
    if len(ids) <= limit:
        return tuple(ids)
    return (ids[0], *ids[len(ids) - (limit - 1) :])


def merged(ids: Iterable[str]) -> list[str]:
    """Ids without repeats in any case, in first-seen order.

    A repeat written with capitals replaces a lower-case copy: that is a row stored lower-cased
    by an older version, and the customer's client knows the id only as it wrote it.
    """
    out: dict[str, str] = {}
    for mid in ids:
        key = mid.lower()
        if key not in out or (out[key] == key and mid != key):
            out[key] = mid
    return list(out.values())


def customer_thread(plan: Plan, store: Store) -> tuple[str | None, tuple[str, ...]]:
    """(In-Reply-To, References) of mail to the ticket's customer, this plan's message included.

    In-Reply-To is the customer's latest message; References its chain as above.
    """
    # (the customer's?, id, what it referenced), oldest first
    entries: list[tuple[bool, str, tuple[str, ...]]] = [
        (row["direction"] == "in", row["message_id"], tuple((row["refs"] or "").split()))
        for row in (store.messages.conversation(plan.ticket_id) if plan.ticket_id else ())
        if row["direction"] == "out" or row["kind"] == "customer"
    ]
    entries += [
        (True, d.message_id, d.references)
        for d in plan.decisions
        if isinstance(d, KeepMessage) and d.kind == "customer" and d.message_id
    ]
    last = max((i for i, e in enumerate(entries) if e[0]), default=len(entries))
    # What we sent after the customer's latest message answered it too: a sibling, not an
    # ancestor, so it is left out (a References list reads as the line of ancestors).
    chain: list[str] = []
    for customers, mid, refs in entries[: last + 1]:
        if customers:
            chain.extend(refs)
        chain.append(mid)
    parent = entries[last][1] if last < len(entries) else None
    chain = merged(chain)
    # Only ids the customer's References brought in need a look: the customer's own messages
    # and what we recorded as sent to them are theirs to see.
    own = {mid.lower() for _, mid, _ in entries}
    foreign = [mid for mid in chain if mid.lower() not in own]
    hidden = store.messages.internal_ids(foreign) if foreign else set()
    chain = [mid for mid in chain if mid.lower() not in hidden]
    if parent is not None:
        parent = next((m for m in chain if m.lower() == parent.lower()), parent)
        chain = [m for m in chain if m != parent] + [parent]  # the message answered, last
    return parent, bounded(chain)


def staff_thread(plan: Plan, store: Store, to: str, replying_to: str | None) -> tuple[str, ...]:
    """References of a notification to `to`: the customer's first message, the mail `to` got
    about the ticket before, then `replying_to` (the message it is about)."""
    first = plan.first_customer_message_id(store)
    earlier = store.outbox.sent_to(plan.ticket_id, to) if plan.ticket_id else []
    return bounded(merged(m for m in (first, *earlier, replying_to) if m))
