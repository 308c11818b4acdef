"""Classify step: who wrote the message (customer, agent, robot), its language and priority."""

from __future__ import annotations

import re
from functools import lru_cache

from mailbot import loops, mailboxes
from mailbot.mail import authres
from mailbot.mail.automatic import detect_automatic
from mailbot.mail.charsets import POLISH_LETTERS, fold
from mailbot.mail.headers import addresses, header_values
from mailbot.pipeline import Job, Loop, Quarantine, Sender, Step
from mailbot.tokens import Token

# Frequent short words per language; a message's language is the one whose words it uses most.
STOPWORDS = {
    "pl": frozenset(
        [
            "i",
            "w",
            "z",
            "na",
            "nie",
            "się",
            "jest",
            "że",
            "do",
            "to",
            "jak",
            "czy",
            "o",
            "po",
            "co",
            "ale",
            "mam",
            "mamy",
            "jestem",
            "być",
            "proszę",
            "dzień",
            "dobry",
            "witam",
            "pozdrawiam",
            "dziękuję",
            "dziękujemy",
            "zamówienie",
            "faktura",
            "pan",
            "pani",
            "państwa",
            "od",
            "już",
            "tak",
            "oraz",
            "dla",
            "przez",
            "przy",
            "bardzo",
            "jednak",
            "tylko",
            "może",
            "można",
        ]
    ),
    "en": frozenset(
        [
            "the",
            "and",
            "is",
            "to",
            "of",
            "you",
            "for",
            "please",
            "thanks",
            "thank",
            "hello",
            "hi",
            "regards",
            "dear",
            "we",
            "our",
            "have",
            "has",
            "it",
            "this",
            "that",
            "with",
            "not",
            "are",
            "was",
            "be",
            "can",
            "could",
            "would",
            "order",
            "invoice",
            "my",
            "your",
            "from",
            "on",
            "at",
            "as",
            "an",
            "a",
        ]
    ),
    "de": frozenset(
        [
            "und",
            "der",
            "die",
            "das",
            "ist",
            "nicht",
            "ich",
            "sie",
            "wir",
            "mit",
            "für",
            "bitte",
            "danke",
            "hallo",
            "grüße",
            "ein",
            "eine",
            "zu",
            "von",
            "auf",
        ]
    ),
}
# Letters that mark a text as Polish: all Polish letters but ó, which Spanish, Portuguese,
# Catalan, Hungarian, Czech and Slovak use too (an English mail signed "José Gómez" is not
# Polish). Polish text has plenty of the others, which are far more frequent together.
POLISH_SIGNAL_LETTERS = POLISH_LETTERS - {"ó", "Ó"}
WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)
# Exchange Online's Authentication-Results name no authserv-id; its Received-SPF names this
# receiver. Listing it in trusted_authserv_ids trusts Microsoft 365's topmost header.
MICROSOFT_AUTHSERV_ID = "protection.outlook.com"


def detect_language(text: str, languages: tuple[str, ...], default: str) -> tuple[str, str]:
    """(language, reason): the configured language whose common words the text uses most."""
    words = WORD_RE.findall(text[:4000].lower())
    scores = {lang: 0 for lang in languages if lang in STOPWORDS}
    for word in words:
        for lang in scores:
            if word in STOPWORDS[lang]:
                scores[lang] += 1
    if "pl" in scores:
        # Polish diacritics are a strong signal even in short messages.
        head = text[:4000]
        scores["pl"] += 2 * sum(map(head.count, POLISH_SIGNAL_LETTERS))
    if not scores or max(scores.values()) == 0:
        return default, f"no language signal; default {default}"
    best = max(scores, key=lambda lang: (scores[lang], lang == default))
    return best, "word scores " + ", ".join(f"{k}={v}" for k, v in sorted(scores.items()))


@lru_cache(maxsize=16)
def _keyword_re(keywords: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for all urgent keywords (folded), whole words only."""
    words = "|".join(re.escape(fold(k)) for k in keywords if k.strip())
    return re.compile(rf"(?<!\w)(?:{words})(?!\w)" if words else r"(?!x)x")


def detect_priority(job: Job) -> tuple[str, str]:
    """('urgent', why) from subject keywords or Importance/X-Priority/Priority headers."""
    parsed = job.parsed
    assert parsed is not None
    found = _keyword_re(job.ctx.cfg.urgent.keywords).search(fold(parsed.subject))
    if found:
        return "urgent", f"keyword {found.group(0)!r} in subject"
    importance = parsed.header("importance").lower()
    if importance == "high":
        return "urgent", "Importance: high"
    x_priority = parsed.header("x-priority")
    if x_priority[:1] in {"1", "2"} and not x_priority[1:2].isdigit():
        return "urgent", f"X-Priority: {x_priority}"
    if parsed.header("priority").lower() == "urgent":
        return "urgent", "Priority: urgent"
    return "normal", ""


def dmarc_pass(job: Job, address: str) -> str | None:
    """The trusted authserv-id that saw DMARC pass for the agent's domain, else None.

    Only our receiving MTA's own headers count: the topmost Authentication-Results, with the
    adjacent ones below it that carry the same trusted authserv-id (one per method with
    OpenDKIM, OpenDMARC or Rspamd milters). It must strip forged copies with its id (RFC 8601
    §5); anything below another header came with the mail. Among them the first DMARC verdict
    whose `header.from` is the agent's domain decides. Microsoft 365 writes its header without
    an authserv-id: it counts as MICROSOFT_AUTHSERV_ID. Parsed only for agents' addresses.
    """
    parsed = job.parsed
    assert parsed is not None
    trusted = {t.lower() for t in job.ctx.cfg.mailbot.trusted_authserv_ids}
    domain = address.rpartition("@")[2].lower()
    names = [name.lower() for name in parsed.message]
    positions = [i for i, name in enumerate(names) if name == "authentication-results"]
    values = header_values(parsed.message, "authentication-results")
    top: str | None = None
    for n, (position, value) in enumerate(zip(positions, values, strict=False)):
        results = authres.parse(value)
        if results is None or (n and position != positions[n - 1] + 1):
            return None  # unreadable, or below another header: not our MTA's
        authserv_id = results.authserv_id or MICROSOFT_AUTHSERV_ID
        if top is None and authserv_id in trusted:
            top = authserv_id
        if authserv_id != top:
            return None
        for result in results.of("dmarc"):
            if authres.domain_of(result.properties.get("header.from", "")) == domain:
                return top if result.result == "pass" else None
    return None


def _verified(job: Job, token: Token, address: str) -> bool:
    """Whether we issued the agent's token to this address, for the ticket of its number in
    this database (`tokens`).

    The one read of the store in this step, for agents' tokens only: a ticket's key never
    changes, so reading it before the write lock is safe.
    """
    exists, key = (
        (True, None) if token.ticket_id == 0 else job.ctx.store.tickets.key(token.ticket_id)
    )
    return exists and job.ctx.signer.verify(token, address, key)


def _agent_sender(job: Job, address: str, name: str) -> Sender:
    cfg, signer = job.ctx.cfg, job.ctx.signer
    agent = cfg.agent(address)
    assert agent is not None and job.parsed is not None
    for mid in (*job.parsed.in_reply_to, *job.parsed.references):
        token = signer.parse(mid)
        if token and token.purpose == "agent" and _verified(job, token, address):
            return Sender(
                "agent",
                address,
                name,
                f"signed token {mid}",
                agent=agent,
                token_ticket=token.ticket_id,
            )
    authserv = dmarc_pass(job, address)
    if authserv:
        return Sender("agent", address, name, f"dmarc=pass from {authserv}", agent=agent)
    return Sender(
        "unverified-agent",
        address,
        name,
        "agent address without a valid token or trusted DMARC pass",
        agent=agent,
    )


def _fallback_sender(job: Job) -> Sender:
    """A message without From: its Reply-To, Return-Path or SMTP envelope sender answers for it."""
    parsed = job.parsed
    assert parsed is not None
    candidates = [
        *((name, addr, "Reply-To") for name, addr in parsed.reply_to),
        *(("", addr, "Return-Path") for _, addr in addresses(parsed.message, "return-path")),
        ("", (job.envelope_from or "").lower(), "envelope sender"),
    ]
    for name, address, where in candidates:
        if "@" in address and not job.ctx.cfg.mailbox_receiving(address):
            return Sender("customer", address, name, f"no From; sender from {where}")
    raise Quarantine("no sender address in From, Sender, Reply-To, Return-Path or envelope")


def _support_sender(job: Job) -> Sender:
    """Old mail the support mailbox sent (history import): our answer, or our robot's mail."""
    parsed, cfg = job.parsed, job.ctx.cfg
    assert parsed is not None
    where = "Sent folder" if job.sent_by_us else "support address"
    return Sender(
        "support",
        parsed.from_addr or cfg.mailbot.address,
        parsed.from_name,
        f"sent by us ({where})",
        automatic=detect_automatic(parsed.message),
    )


def classify_sender(job: Job) -> Sender:
    parsed = job.parsed
    assert parsed is not None
    cfg = job.ctx.cfg.mailbot
    if job.history and (job.sent_by_us or job.ctx.cfg.mailbox_receiving(parsed.from_addr)):
        return _support_sender(job)
    own_addresses = loops.own_addresses(job.ctx.cfg)
    automatic = loops.automatic(parsed.message, job.ctx.cfg, job.envelope_from)
    if parsed.from_addr in own_addresses or (
        parsed.message_id and job.ctx.signer.parse(parsed.message_id)
    ):
        raise Loop(f"our own mail came back (From {parsed.from_addr}, {parsed.message_id})")
    if automatic:
        return Sender(
            "automatic", parsed.from_addr, parsed.from_name, automatic.reason, automatic=automatic
        )
    if not parsed.from_addr:
        return _fallback_sender(job)
    if parsed.from_addr in cfg.contact_forms:
        reply_to = [a for a in parsed.reply_to if a[1] not in own_addresses]
        if not reply_to:
            raise Quarantine(f"contact form mail from {parsed.from_addr} without a Reply-To")
        name, address = reply_to[0]
        return Sender(
            "customer", address, name, f"contact form {parsed.from_addr}: Reply-To", via_form=True
        )
    if job.ctx.cfg.agent(parsed.from_addr):
        return _agent_sender(job, parsed.from_addr, parsed.from_name)
    return Sender("customer", parsed.from_addr, parsed.from_name, "not an agent, not automatic")


def run(job: Job) -> None:
    """Decide who sent the message, its language and its priority."""
    parsed = job.parsed
    assert parsed is not None
    job.sender = classify_sender(job)
    cfg = job.ctx.cfg.mailbot
    job.mailbox, came = mailboxes.arrived_at(
        job.ctx.cfg, parsed.message, job.envelope_to, job.folder
    )
    if len(job.ctx.cfg.mailboxes) > 1:
        job.notes.append(f"mailbox {job.mailbox.address}: {came}")
    job.language, why = detect_language(
        f"{parsed.subject}\n{parsed.text}", cfg.languages, job.mailbox.default_language
    )
    job.notes.append(f"language {job.language}: {why}")
    job.priority, job.priority_reason = detect_priority(job)


STEP = Step("classify", run, reads_store=False)
