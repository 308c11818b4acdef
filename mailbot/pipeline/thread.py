"""Thread step: find the ticket a message belongs to, in the order DESIGN §2 lays down.

1. a reply token we issued (signed Message-ID) in In-Reply-To/References;
2. any stored Message-ID, ours or the customer's, in In-Reply-To/References (the decide step
   opens a new, linked ticket when the sender does not take part and is not an agent);
3. the subject tag `[Name #123]`, only when the sender already takes part in ticket 123
   (our own past answers in a history import: see `answered_ticket`);
4. otherwise no ticket (the decide step opens a new one).
"""

from __future__ import annotations

import re

from mailbot.pipeline import Job, Step, ThreadMatch

# Reply/forward prefixes in the languages our customers' mail clients speak, in any case.
PREFIX_RE = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|odp|odpowiedź|pd|prześlij dalej|fwd?|fw|tr|antw|wg|r|rif|"
    r"automatic reply|automatyczna odpowiedź|auto)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.I,
)


# Purposes of the tokens on mail only agents get (notifications, warnings, digests).
STAFF_PURPOSES = frozenset({"agent"})


def clean_subject(subject: str) -> str:
    """The subject without reply/forward prefixes (repeated, any case) and surrounding space."""
    return PREFIX_RE.sub("", subject).strip()


def tag_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"\[\s*{re.escape(name)}\s*#\s*(\d{{1,12}})\s*\]", re.I)


def ticket_subject(name: str, subject: str) -> str:
    """A ticket's subject from a message's: no reply prefixes, no ticket tag, spaces folded."""
    return " ".join(tag_re(name).sub("", clean_subject(subject)).split())[:300] or "(no subject)"


def answered_ticket(job: Job) -> ThreadMatch:
    """The ticket an old answer of ours (history import) belongs to, when no id it references
    is stored: its subject tag, else the latest ticket of a recipient with the same subject
    opened before it was sent."""
    parsed, store = job.parsed, job.ctx.store
    assert parsed is not None
    recipients = [address for _, address in (*parsed.to, *parsed.cc)]
    match = tag_re(job.ctx.cfg.mailbot.name).search(parsed.subject)
    if match and store.tickets.exists(ticket_id := int(match.group(1))):
        return ThreadMatch(ticket_id, f"subject tag #{ticket_id} on our answer")
    subject = ticket_subject(job.ctx.cfg.mailbot.name, parsed.subject)
    for address in recipients:
        found = store.tickets.latest_with_subject(address, subject, job.received_at)
        if found:
            return ThreadMatch(found, f"our answer to {address}, same subject")
    return ThreadMatch(None, "our answer references no stored mail, names no ticket")


def find_ticket(job: Job) -> ThreadMatch:
    parsed, store, signer = job.parsed, job.ctx.store, job.ctx.signer
    assert parsed is not None and job.sender is not None
    referenced = (*parsed.in_reply_to, *reversed(parsed.references))
    automatic = job.sender.automatic
    if automatic and automatic.bounce and automatic.bounce.original_message_id:
        # A bounce names the message that failed: that is the ticket it belongs to.
        referenced = (automatic.bounce.original_message_id, *referenced)
    referenced = tuple(dict.fromkeys(referenced))
    # Our tokens for tickets that exist, with their keys: a token for a ticket that got its
    # number again (a new database, an older backup restored) does not verify.
    tokens = [
        (mid, t, key[1])
        for mid in referenced
        if (t := signer.parse(mid)) and (key := store.tickets.key(t.ticket_id))[0]
    ]
    for mid, token, ticket_key in tokens:
        # A token issued to staff acts only while its holder is an agent: once removed from
        # the config, their old notifications thread like anyone's quoted Message-ID.
        if token.purpose in STAFF_PURPOSES and not job.sender.agent:
            continue
        if signer.verify(token, job.sender.address, ticket_key):
            return ThreadMatch(token.ticket_id, f"reply token {mid}", "token")
    found = store.messages.ticket_by_message_ids(referenced)
    if found:
        return ThreadMatch(found[0], f"references stored Message-ID {found[1]}", "message-id")
    if job.sender.agent and tokens:
        # Mail from an agent's address with one of our tokens that does not verify: it goes to
        # that ticket, where the decide step keeps it as an unverified note.
        mid, token, _ = tokens[0]
        return ThreadMatch(
            token.ticket_id, f"unverified token {mid} from an agent address", "agent-token"
        )
    if job.sender.kind == "support":
        return answered_ticket(job)
    match = tag_re(job.ctx.cfg.mailbot.name).search(parsed.subject)
    if match:
        ticket_id = int(match.group(1))
        if store.tickets.exists(ticket_id) and job.sender.agent:
            return ThreadMatch(ticket_id, f"subject tag #{ticket_id}, agent address", "tag")
        if store.tickets.exists(ticket_id) and store.participants.takes_part(
            ticket_id, job.sender.address
        ):
            return ThreadMatch(ticket_id, f"subject tag #{ticket_id}, sender takes part", "tag")
        return ThreadMatch(
            None, f"subject tag #{ticket_id} ignored: {job.sender.address} does not take part"
        )
    return ThreadMatch(None, "no reference, no subject tag")


def run(job: Job) -> None:
    """Attach the message to a ticket, or leave job.match.ticket_id None for a new one."""
    job.match = find_ticket(job)


STEP = Step("thread", run, reads_store=True)
