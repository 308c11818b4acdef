"""Recognise bounces (RFC 3464 DSNs and non-standard MTA notices) in parsed mail, without I/O."""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

from mailbot.mail.headers import address_specs, header_value, header_values, raw_index
from mailbot.mail.mime import DSN_TYPES, MESSAGE_TYPES, children, content_type, iter_parts
from mailbot.mail.mime import part_text as _part_text
from mailbot.mail.quotes import strip_reply

# Caps on scanned text: bounce notices are short; the returned original can be megabytes.
_MAX_TEXT = 200_000  # characters of a notice worth reading
_MAX_HEAD = 32_000
_DSN_CTYPES = DSN_TYPES
_HEADER_CTYPES = frozenset({"text/rfc822-headers", "message/rfc822-headers", "text/global-headers"})
_MESSAGE_CTYPES = MESSAGE_TYPES
_REPORT_PART = {
    "delivery-status": "message/delivery-status",
    "feedback-report": "message/feedback-report",
    "disposition-notification": "message/disposition-notification",
}
# DSN actions that report success (RFC 3464 §2.3.3): such a DSN is not a failure.
_NOT_FAILED_ACTIONS = frozenset({"delivered", "relayed", "expanded"})

# Header and MIME plumbing.
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_REPORT_TYPE_RE = re.compile(r"report-type\s*=\s*\"?([\w.-]+)", re.IGNORECASE)
_HTML_TAG_RE = re.compile(r"<[^<>]{0,5000}>")
_BLANK_LINE_RE = re.compile(r"\r?\n[ \t]*\r?\n")
_FIELD_LINE_RE = re.compile(r"^[ \t>]*([A-Za-z][\w-]*):[ \t]*(.*)$", re.MULTILINE)

# Status codes: DSN fields may say 2.x.x (success); free text only counts 4.x.x and 5.x.x,
# because "2.0.12" in prose is usually a version number.
_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
_TEXT_STATUS_RE = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
_SMTP_CODE_RE = re.compile(r"(?<![\d.#-])([45])[0-5]\d(?:[ -]|$)", re.MULTILINE)

# Deliberately plain: RFC 5321 allows more, but bounces quote ordinary addresses. Every
# repetition is bounded so that a megabyte of "aaaa" cannot make matching quadratic.
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,10}[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
# Gateways write "smtp=user@host" or "rfc822;user@host"; the prefix is not part of it.
_ADDR_PREFIX_RE = re.compile(r"^(?:smtp|rfc822|x400|sip|mailto)[=:;]", re.IGNORECASE)
_ADDR_HEADER_LINE_RE = re.compile(r"^\s*(?:from|to|cc|reply-to|sender|mail from):", re.IGNORECASE)
_MESSAGE_ID_LINE_RE = re.compile(
    r"^[ \t>]*(?:X-Original-|Original-)?Message-I[dD]:[ \t]*(?:\r?\n[ \t]+)?"
    r"<?([^\s<>\"@]{1,250}@[^\s<>\"]{1,250}?)>?[ \t]*\r?$",
    re.MULTILINE | re.IGNORECASE,
)
_BRACKETED_ID_RE = re.compile(r"<([^\s<>\"]{1,500})>")
_ID_RE = re.compile(r"<?([^\s<>\"@]{1,250}@[^\s<>\"]{1,250}?)>?(?:\s|$)")

# Senders that are the mail system itself (RFC 5321 §4.5.1 postmaster, MAILER-DAEMON).
DAEMON_LOCAL_RE = re.compile(
    r"^(?:mailer[-_]?daemon|mail[-_]?daemon|post[-_]?master|poostmaster)(?:[-+_.=].*)?$",
    re.IGNORECASE,
)
NOREPLY_LOCAL_RE = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply)(?:[-+_.=].*)?$", re.IGNORECASE
)
_DAEMON_NAME_RE = re.compile(
    r"mail(?:er)?[- ]?daemon|mail delivery (?:subsystem|system|service)|postmaster|"
    r"mail administrator|delivery status notification",
    re.IGNORECASE,
)
# Local parts of gateways, scanners and mail servers (MDaemon, "E500_SMTP_Mail_Service",
# "Symantec_AntiVirus_for_SMTP_Gateways"): machine-like, though not RFC-named.
_MACHINE_LOCAL_RE = re.compile(
    r"daemon|mailer|smtp|antivirus|virus|mail[-_.]?(?:service|admin|server|system|gateway)|"
    r"^bounces?\b",
    re.IGNORECASE,
)
# Addresses inside a notice that are never the failed recipient.
_SYSTEM_LOCAL_RE = re.compile(
    r"^(?:mailer[-_]?daemon|post[-_]?master|abuse|hostmaster|root|no[-_]?reply)$", re.IGNORECASE
)

# Subjects the common MTAs use for failure/delay notices (English, Polish, others seen in
# the wild). On its own a subject is never enough: people write "Delivery failed" too.
_SUBJECT_RE = re.compile(
    r"undeliver(?:ed|able)|delivery status notification|"
    r"mail delivery (?:failed|failure|problem|error|notification|warning)|"
    r"delivery (?:failure|failed|warning|problem|notification|report)|"
    r"failure (?:notice|delivery)|failed mail|mail fail(?:ure|ed)|returned mail|"
    r"returning (?:message )?to sender|non[- ]?deliver|not (?:yet )?(?:been |be )?delivered|"
    r"could ?n[o']t be delivered|cannot be delivered|delivery has failed|"
    r"warning: could not send|delayed mail|error sending your (?:mail|message)|"
    r"mail system error|message you sent blocked|postmaster notify|mail delivery status|"
    r"user unknown|unknown user|no such user|sorry, your message|"
    r"niedostarcz(?:on|aln)|nie można dostarczyć|nie mozna dostarczyc|nie dostarczono|"
    r"unzustellbar|nicht zustellbar|non remis|non recapitabile|no se puede entregar|"
    r"onbestelbaar|non distribu|"
    r"\u30e1\u30fc\u30eb\u30a8\u30e9\u30fc|\u914d\u4fe1\u4e0d\u80fd|\u914d\u9001\u4e0d\u80fd|"
    r"\u4e0d\u9054|\u672a\u9054",
    re.IGNORECASE,
)
# Prefixes a person adds when forwarding: such a message is a human's even if it quotes a
# bounce (a customer asking why their mail bounced must get an answer).
_HUMAN_PREFIX_RE = re.compile(r"^\s*(?:fwd?|tr|wg|pd|rv|enc|doorst)\s*:", re.IGNORECASE)
_REPLY_PREFIX_RE = re.compile(r"^\s*(?:re|odp|aw|sv|vs|antw|r)\s*(?:\[\d+\])?\s*:", re.IGNORECASE)

# Boilerplate only mail software writes (MTA banners, SMTP transcripts, DSN fields).
_STRONG_BODY_RE = re.compile(
    r"this is the qmail-send program|created (?:automatically )?by mail delivery software|"
    r"transcript of session follows|the original message was received at|"
    r"delivery has failed to these recipients|non-delivery report|"
    r"delivery to the following recipients? (?:failed|has been delayed|was delayed)|"
    r"following address(?:es)? had (?:permanent )?(?:fatal|transient) errors|"
    r"could not be delivered to one or more|failed addresses follow|message log follows|"
    r"smtp error from remote (?:mail )?server|remote (?:host|server) said|"
    r"\bsaid: *[45]\d\d|(?:^|\n)[ \t]*(?:final-recipient|diagnostic-code|reporting-mta): |"
    r"undelivered mail returned to sender|i'm afraid i wasn't able to deliver|"
    r"i(?:'m| am) sorry to (?:have to )?(?:inform|tell) you|"
    r"(?<![\w.])[45]\d\d[ -]+(?:[45]\.\d{1,3}\.\d{1,3}|requested action|<|no such|"
    r"user unknown|unknown user|mailbox (?:unavailable|full|not found)|recipient)",
    re.IGNORECASE,
)
# Generic failure phrases: people use them too, so they need a machine sender or subject.
_WEAK_BODY_RE = re.compile(
    r"(?:permanent|fatal|delivery) (?:error|failure)s?|"
    r"your message (?:did not reach|could not be delivered|was not delivered|wasn't delivered|"
    r"couldn't be delivered|cannot be delivered|"
    r"to .{1,200}? (?:was|has been) (?:rejected|blocked))|"
    r"a message that you sent|unable to deliver|trouble delivering|"
    r"message delivery (?:has )?failed|(?:mail|message) (?:has been|was) returned|"
    r"\b(?:user|mailbox|recipient|address)(?: name)? (?:unknown|not found|unavailable|"
    r"does not exist|doesn't exist|is full|full)|"
    r"no such (?:user|mailbox|recipient|address)|unknown (?:user|recipient|mailbox|local)|"
    r"host (?:not found|unknown)|over quota|quota exceeded|mailbox full|"
    r"delivery (?:failed|failure)|(?:was|were) not delivered|could ?n[o']t be delivered|"
    r"not be delivered|delivery to the following|failed recipient|"
    r"niedostarcz(?:on|aln)|nie można dostarczyć|nie mozna dostarczyc|"
    r"nie został[ao]? dostarczon|dostarczenie .{0,60}nie powiodło się|"
    r"\u9001\u4fe1\u3067\u304d\u307e\u305b\u3093|\u5c4a\u304d\u307e\u305b\u3093",
    re.IGNORECASE,
)
# Lines after which the notice ends and the returned original begins.
_ORIGINAL_MARKER_RE = re.compile(
    r"^[ \t>|*_=-]*(?:"
    r"below this line is a copy of the message|this is a copy of (?:the|your) message|"
    r"original message|(?:unsent|returned|undelivered|rejected|bounced|enclosed) "
    r"(?:message|mail|e-?mail)|message (?:header|text|headers|body) follows?|"
    r"headers? of (?:the )?(?:original|returned)|the headers? of the original message|"
    r"text of the (?:original|returned) message|copy of (?:the )?(?:original )?message|"
    r"original e-?mail)",
    re.IGNORECASE | re.MULTILINE,
)
# Start of a quoted header block inside a text notice: two consecutive header lines, the
# first one typical of a message's top (notices themselves list To/Subject/Date).
_HEADER_BLOCK_RE = re.compile(
    r"^(?:Return-Path|Received|From|Message-I[dD]|Delivered-To|X-[\w-]+):[^\n]*\n"
    r"(?:[ \t][^\n]*\n)*(?:[\w-]+):",
    re.MULTILINE | re.IGNORECASE,
)
_QUOTED_ORIGINAL_RE = re.compile(
    r"^[ \t>]*(?:Received|Message-I[dD]):", re.MULTILINE | re.IGNORECASE
)

# Warnings: the MTA keeps trying, so the failure is temporary.
_DELAY_RE = re.compile(
    r"delivery status notification \(delay\)|\bdelayed\b|delivery delay|"
    r"will (?:continue|keep) (?:to )?(?:try|attempt)|will (?:be )?retr(?:y|ied)|"
    r"still (?:be )?trying|not yet been delivered|has not yet been|"
    r"warning: could not send|warning message only|only a temporary failure|"
    r"do not need to (?:re-?send|take any action)|still in (?:the )?queue|still undelivered|"
    r"is deferred|been deferred|delivery attempts will continue",
    re.IGNORECASE,
)
# The MTA gave up: the message is dead even when the status is 4.x.x.
_GIVE_UP_RE = re.compile(
    r"not going to try again|giv(?:en|ing) up|gave up|will not be retried|"
    r"no further (?:delivery )?attempts|removed from the (?:mail )?queue|"
    r"in the queue too long|too long in (?:the )?queue|retry (?:time(?:out)?|period) "
    r"(?:exceeded|expired)|could not be delivered within",
    re.IGNORECASE,
)
_TEMPORARY_RE = re.compile(r"temporar(?:y|ily)", re.IGNORECASE)

# Amazon SES notifications relayed by SNS: JSON text, often re-wrapped, so use regexes.
_SES_TYPE_RE = re.compile(r'\\?"notificationType\\?"\s*:\s*\\?"(Bounce|Complaint|Delivery)')
_SES_BOUNCE_TYPE_RE = re.compile(r'\\?"bounceType\\?"\s*:\s*\\?"(\w+)')
_SES_ADDRESS_RE = re.compile(r'\\?"emailAddress\\?"\s*:\s*\\?"([^"\\]+)')
_SES_STATUS_RE = re.compile(r'\\?"status\\?"\s*:\s*\\?"([^"\\]+)')
_SES_MID_RE = re.compile(
    r'\\?"name\\?"\s*:\s*\\?"Message-ID\\?"\s*,\s*\\?"value\\?"\s*:\s*\\?"<?([^"<>\\]+)',
    re.IGNORECASE,
)
_UNIXFROM_DAEMON_RE = re.compile(r"From\s+MAILER-DAEMON\b", re.IGNORECASE)


@dataclass(frozen=True)
class Bounce:
    """What a delivery failure notice says about the message that failed."""

    # True when the message will not be delivered: 5.x.x, or the MTA gave up (Action: failed,
    # even with a 4.x.x status such as 4.4.7 expired). False for delays and warnings.
    permanent: bool
    recipients: tuple[str, ...]  # failed addresses, lower-cased, best effort
    original_message_id: str | None  # Message-ID of the bounced message, with angle brackets
    status: str | None  # DSN status like "5.1.1" when known
    kind: str  # "dsn" (RFC 3464 delivery-status report) or "nonstandard"


# --- safe access to parts ------------------------------------------------------------------
# Headers come from mailbot.mail.headers: raw values decoded leniently, never the registry.


def report_type(part: Message) -> str:
    """The report-type parameter of a multipart/report, lower-cased, or ""."""
    match = _REPORT_TYPE_RE.search(header_value(part, "content-type"))
    return match.group(1).lower() if match else ""


def local_part(address: str) -> str:
    """The part before the last "@" (the whole string when there is none)."""
    return address.rsplit("@", 1)[0] if "@" in address else address


def attached_messages(msg: Message) -> list[Message]:
    """Messages attached as message/rfc822 (not walking into them)."""
    return [
        inner
        for part in iter_parts(msg)
        if content_type(part) in _MESSAGE_CTYPES
        for inner in children(part)[:1]
    ]


def part_text(part: Message) -> str:
    """Decoded text of a leaf part, at most _MAX_TEXT bytes of it."""
    return _part_text(part, _MAX_TEXT)


def is_report(msg: Message, kind: str) -> bool:
    """multipart/report with this report-type, or a top-level part of the matching type."""
    if content_type(msg) == "multipart/report" and report_type(msg) == kind:
        return True
    wanted = _REPORT_PART[kind]
    return any(content_type(p) == wanted for p in iter_parts(msg))


# --- the notice's text and its parts --------------------------------------------------------


def notice_text(msg: Message) -> str:
    """Text of the notice itself: text parts outside any attached (returned) message."""
    preambles: list[str] = []
    texts: list[str] = []
    htmls: list[str] = []
    for part in iter_parts(msg):
        ctype = content_type(part)
        if isinstance(part.preamble, str) and part.preamble.strip():
            preambles.append(part.preamble)  # a boundary typo leaves the whole notice here
        if ctype.startswith("multipart/") and not children(part):
            ctype = "text/plain"  # lost boundary: the "multipart" body is plain text
        if ctype in ("text/plain", "text/enriched"):
            texts.append(part_text(part))
        elif ctype == "text/html":  # used only for HTML-only notices (GroupWise)
            htmls.append(html.unescape(_HTML_TAG_RE.sub(" ", part_text(part))))
        if sum(map(len, texts)) > _MAX_TEXT:
            break
    return "\n".join(preambles + (texts or htmls))


def split_notice(text: str) -> str:
    """The explanatory head of a notice, cut at the returned original (marker or headers)."""
    cut = len(text)
    for regex in (_ORIGINAL_MARKER_RE, _HEADER_BLOCK_RE):
        match = regex.search(text)
        # A match on the very first line is a title, not the start of the original.
        if match and match.start() > 0:
            cut = min(cut, match.start())
    return text[: min(cut, _MAX_HEAD)]


def _has_original(msg: Message, notice: str) -> bool:
    """The notice carries the returned message or its headers (attached or quoted)."""
    if any(content_type(p) in _MESSAGE_CTYPES | _HEADER_CTYPES for p in iter_parts(msg)):
        return True
    return bool(_QUOTED_ORIGINAL_RE.search(notice))


# --- DSN fields -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recipient:
    addresses: tuple[str, ...]  # Original-Recipient first: the address we wrote to
    action: str
    status: str | None

    @property
    def failed(self) -> bool:
        # A block without Action/Status (SendGrid) is still part of a failure report.
        return self.action not in _NOT_FAILED_ACTIONS and not (self.status or "").startswith("2")

    @property
    def permanent(self) -> bool | None:
        """None when the block alone does not say."""
        if self.action == "delayed":
            return False
        # "failed" means the MTA gave up, even with a 4.x.x status (e.g. 4.4.7 expired).
        if self.action == "failed":
            return True
        if self.status:
            return self.status.startswith("5")
        return None


def _field_blocks(text: str) -> list[dict[str, str]]:
    """ "Field: value" blocks separated by blank lines, as in a delivery-status body."""
    blocks = []
    for chunk in _BLANK_LINE_RE.split(_FOLD_RE.sub("", text)):
        fields = {m.group(1).lower(): m.group(2).strip() for m in _FIELD_LINE_RE.finditer(chunk)}
        if fields:
            blocks.append(fields)
    return blocks


def _dsn_blocks(part: Message) -> list[dict[str, str]]:
    """Field blocks of a message/delivery-status part (the first is per-message)."""
    blocks: list[dict[str, str]] = []
    for sub in children(part):
        try:
            fields = raw_index(sub).items()
            blocks.append({name: _FOLD_RE.sub("", values[0]).strip() for name, values in fields})
        except Exception:  # skip an unreadable block
            continue
    # Some MTAs send the status as a flat text body: parse "Field: value" lines ourselves.
    return blocks or _field_blocks(part_text(part))


def _is_recipient_block(block: dict[str, str]) -> bool:
    return "final-recipient" in block or ("action" in block and "status" in block)


def _address_field(value: str) -> str | None:
    """Address from a DSN field like "rfc822; <User@Example.com>"."""
    match = _EMAIL_RE.search(value.split(";", 1)[-1])
    return _clean_address(match.group(0)) if match else None


def _clean_address(address: str) -> str:
    return _ADDR_PREFIX_RE.sub("", address.lower().strip("'\"=.-"))


def _status_in(text: str, regex: re.Pattern[str] = _TEXT_STATUS_RE) -> str | None:
    match = regex.search(text or "")
    return ".".join(match.groups()) if match else None


def _recipient(block: dict[str, str]) -> _Recipient:
    found = (
        _address_field(block.get(k, ""))
        for k in ("original-recipient", "final-recipient", "x-actual-recipient")
    )
    action = (block.get("action", "").split() or [""])[0].lower()
    status = _status_in(block.get("status", ""), _STATUS_RE) or _status_in(
        block.get("diagnostic-code", "")
    )
    return _Recipient(tuple(dict.fromkeys(a for a in found if a)), action, status)


def _dsn_recipients(msg: Message, notice: str) -> list[_Recipient]:
    """Per-recipient DSN blocks; from the notice text when the DSN part is missing or broken."""
    blocks = [b for p in iter_parts(msg) if content_type(p) in _DSN_CTYPES for b in _dsn_blocks(p)]
    if not any(_is_recipient_block(b) for b in blocks):
        blocks = _field_blocks(notice)
    return [_recipient(b) for b in blocks if _is_recipient_block(b)]


# --- original Message-ID --------------------------------------------------------------------


def _bracket(message_id: str) -> str:
    return f"<{message_id.strip().strip('<>')}>"


def _message_id_in(text: str) -> str | None:
    match = _MESSAGE_ID_LINE_RE.search(text)
    return _bracket(match.group(1)) if match else None


def _own_message_id(part: Message) -> str | None:
    """The part's own Message-ID header; "<…>" without "@" is accepted, as MTAs do."""
    value = header_value(part, "message-id")
    match = _BRACKETED_ID_RE.search(value) or _ID_RE.search(value)
    return _bracket(match.group(1)) if match else None


def _part_message_id(part: Message) -> str | None:
    """Message-ID carried by a part that holds the returned message or its headers."""
    ctype = content_type(part)
    if ctype in _MESSAGE_CTYPES | _HEADER_CTYPES:
        inner = children(part)  # message/* subtypes come parsed; text/* ones as text
        if inner:
            # Bad nesting puts the original's headers in the attached message's body.
            return _own_message_id(inner[0]) or _message_id_in(part_text(inner[0]))
        return _message_id_in(part_text(part))
    if ctype in _DSN_CTYPES:
        # Original-Message-ID (some MTAs), or the original's headers swallowed into the DSN
        # part by a broken boundary.
        keys = ("original-message-id", "x-original-message-id", "message-id")
        return next((_bracket(b[k]) for b in _dsn_blocks(part) for k in keys if b.get(k)), None)
    return None


def original_message_id(msg: Message, notice: str) -> str | None:
    """Message-ID of the returned message, from the most to the least explicit place."""
    parts = list(iter_parts(msg))
    found = next(filter(None, map(_part_message_id, parts)), None)
    # Some MTAs return the original as a MIME part whose own headers are the original's.
    found = found or next(filter(None, map(_own_message_id, parts[1:])), None)
    found = found or _message_id_in(notice)
    # Last resort: other leaf parts (message/partial, odd attachments).
    return found or next(
        filter(None, (_message_id_in(part_text(p)) for p in parts[1:] if not p.is_multipart())),
        None,
    )


# --- recipients from free text --------------------------------------------------------------


def _envelope_addresses(msg: Message) -> set[str]:
    """Addresses of the notice's own envelope: never the failed recipient."""
    own: set[str] = set()
    for name in ("from", "to", "cc", "return-path", "reply-to", "sender"):
        own.update(address_specs(msg, name))
    return own


def _text_recipients(msg: Message, head: str) -> list[str]:
    """Failed addresses quoted in a free-text notice, excluding the notice's own addresses."""
    found = [_clean_address(a) for a in address_specs(msg, "x-failed-recipients")]
    excluded = _envelope_addresses(msg)
    for line in head.splitlines():
        if _MESSAGE_ID_LINE_RE.match(line) or _ADDR_HEADER_LINE_RE.match(line):
            continue
        for match in _EMAIL_RE.finditer(line):
            addr = _clean_address(match.group(0))
            if addr not in excluded and not _SYSTEM_LOCAL_RE.match(local_part(addr)):
                found.append(addr)
    return list(dict.fromkeys(found))


# --- who sent it ----------------------------------------------------------------------------


def is_daemon_sender(msg: Message) -> bool:
    """From/Return-Path is MAILER-DAEMON or postmaster (by address, name or mbox envelope)."""
    senders = address_specs(msg, "from") + address_specs(msg, "return-path")
    if any(DAEMON_LOCAL_RE.match(local_part(a)) for a in senders):
        return True
    # The raw From also catches names ("Mail Delivery System") and mangled addresses.
    if any(_DAEMON_NAME_RE.search(v) for v in header_values(msg, "from")):
        return True
    try:
        unixfrom = msg.get_unixfrom() or ""
    except Exception:  # no envelope line
        unixfrom = ""
    return bool(_UNIXFROM_DAEMON_RE.match(unixfrom))


def has_null_return_path(msg: Message) -> bool:
    """Return-Path: <> (RFC 5321 null reverse-path, used by bounces and auto-replies)."""
    return any(v.replace(" ", "") == "<>" for v in header_values(msg, "return-path"))


def auto_submitted(msg: Message) -> str:
    """The Auto-Submitted keyword (RFC 3834), lower-cased; "" when absent or "no"."""
    value = header_value(msg, "auto-submitted").split(";")[0].split("(")[0].strip().lower()
    return "" if value == "no" else value


def _is_machine_sender(msg: Message) -> bool:
    locals_ = [local_part(a) for a in address_specs(msg, "from")]
    return any(NOREPLY_LOCAL_RE.match(lp) or _MACHINE_LOCAL_RE.search(lp) for lp in locals_)


# --- classification -------------------------------------------------------------------------


def _bounce_subject(subject: str) -> bool:
    return not _HUMAN_PREFIX_RE.match(subject) and bool(_SUBJECT_RE.search(subject))


def _looks_like_bounce(msg: Message, notice: str, head: str) -> bool:
    """Non-standard bounce: enough independent signals that mail software wrote this."""
    if header_values(msg, "x-failed-recipients") or header_values(
        msg, "x-ms-exchange-message-is-ndr"
    ):
        return True
    subject = _bounce_subject(header_value(msg, "subject"))
    strong = bool(_STRONG_BODY_RE.search(head))
    weak = strong or bool(_WEAK_BODY_RE.search(head))
    if is_daemon_sender(msg) or has_null_return_path(msg):
        return subject or weak or _has_original(msg, notice)
    if auto_submitted(msg) or _is_machine_sender(msg):
        return strong or (subject and weak)
    # A person's address: only MTA boilerplate under a bounce subject will do, and never
    # in a reply ("RE: Undeliverable mail" is a customer telling us about one).
    if _REPLY_PREFIX_RE.match(header_value(msg, "subject")):
        return False
    return subject and (strong or (weak and _has_original(msg, notice)))


def _permanence(text: str, status: str | None) -> bool:
    """True when the message is dead; warnings and retrying MTAs make it temporary."""
    if _DELAY_RE.search(text):
        return False
    if _GIVE_UP_RE.search(text):
        return True
    if status:
        return status.startswith("5")
    code = _SMTP_CODE_RE.search(text)
    if code:
        return code.group(1) == "5"
    return not _TEMPORARY_RE.search(text)


def _build(msg: Message, notice: str, head: str, kind: str) -> Bounce | None:
    """Assemble the Bounce from DSN fields where present, else from the free text."""
    recipients = _dsn_recipients(msg, notice)
    failed = [r for r in recipients if r.failed]
    if recipients and not failed:
        return None  # a success/relay notice, not a failure
    status = (
        next((r.status for r in failed if r.permanent and r.status), None)
        or next((r.status for r in failed if r.status), None)
        or _status_in(head)
    )
    verdicts = [r.permanent for r in failed if r.permanent is not None]
    text = header_value(msg, "subject") + "\n" + head
    addrs = [a for r in failed for a in r.addresses] or _text_recipients(msg, head)
    return Bounce(
        permanent=any(verdicts) if verdicts else _permanence(text, status),
        recipients=tuple(dict.fromkeys(addrs)),
        original_message_id=original_message_id(msg, notice),
        status=status,
        kind=kind,
    )


def _parse_ses(notice: str) -> Bounce | None:
    """Amazon SES bounce notification (JSON); Delivery/Complaint types are not failures."""
    kind = _SES_TYPE_RE.search(notice)
    if not kind or kind.group(1) != "Bounce":
        return None
    bounce_type = _SES_BOUNCE_TYPE_RE.search(notice)
    message_id = _SES_MID_RE.search(notice)
    status = _SES_STATUS_RE.search(notice)
    return Bounce(
        permanent=bool(bounce_type and bounce_type.group(1) == "Permanent"),
        recipients=tuple(
            dict.fromkeys(m.group(1).lower() for m in _SES_ADDRESS_RE.finditer(notice))
        ),
        original_message_id=_bracket(message_id.group(1)) if message_id else None,
        status=_status_in(status.group(1), _STATUS_RE) if status else None,
        kind="nonstandard",
    )


def _ses_type(msg: Message, notice: str) -> str | None:
    # Only from a machine: a customer may paste an SES notification into a question.
    if not (_is_machine_sender(msg) or auto_submitted(msg)):
        return None
    match = _SES_TYPE_RE.search(notice)
    return match.group(1) if match else None


def ses_notification_type(msg: Message) -> str | None:
    """ "Bounce", "Complaint" or "Delivery" for an Amazon SES notification relayed as text."""
    if not (_is_machine_sender(msg) or auto_submitted(msg)):
        return None  # checked before reading the text: most mail stops here cheaply
    return _ses_type(msg, notice_text(msg))


def _could_be_bounce(msg: Message) -> bool:
    """Cheap signals without which nothing below can call the message a bounce.

    A person's mail needs a bounce subject (see _looks_like_bounce); everything else needs a
    machine sender, a bounce header or a delivery-status part. Most mail stops here.
    """
    return bool(
        is_daemon_sender(msg)
        or has_null_return_path(msg)
        or auto_submitted(msg)
        or _is_machine_sender(msg)
        or header_values(msg, "x-failed-recipients")
        or header_values(msg, "x-ms-exchange-message-is-ndr")
        or _bounce_subject(header_value(msg, "subject"))
        or any(content_type(p) in _DSN_CTYPES for p in iter_parts(msg))
    )


def _parse(msg: Message, *, nested: bool = False) -> Bounce | None:
    if not _could_be_bounce(msg):
        return None
    if is_report(msg, "feedback-report") or is_report(msg, "disposition-notification"):
        return None
    notice = notice_text(msg)
    if _ses_type(msg, notice):
        return _parse_ses(notice)
    head = split_notice(notice)
    if is_report(msg, "delivery-status") or any(
        content_type(p) == "message/global-delivery-status" for p in iter_parts(msg)
    ):
        return _build(msg, notice, head, "dsn")
    bounce = (
        _build(msg, notice, head, "nonstandard") if _looks_like_bounce(msg, notice, head) else None
    )
    if nested or (bounce and bounce.recipients) or not (bounce or is_daemon_sender(msg)):
        return bounce
    # Gateways re-wrap a whole DSN as an attachment of their own, nearly empty, notice.
    inner = next(filter(None, (_parse(m, nested=True) for m in attached_messages(msg))), None)
    return inner or bounce


def parse_bounce(msg: Message) -> Bounce | None:
    """The bounce this message reports, or None for anything that is not a delivery failure."""
    try:
        return _parse(msg)
    except Exception:  # last resort: malformed mail must not crash intake
        return None


# flufl.bounce logs every exception of its detectors with a traceback; a malformed notice
# is ordinary here, and the second opinion below catches what they raise.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


# flufl's detectors read every line of every part: 25 MB of attachments took minutes. A
# notice names the failed addresses near its top; the returned original may follow.
_MAX_SECOND_OPINION = 16_000  # characters of the notice they, and strip_reply, are shown


def _notice_only(msg: Message, notice: str) -> Message:
    """The message's headers over the notice's text alone, as one plain-text part."""
    copy = Message()
    for name, value in msg.raw_items():
        if not name.lower().startswith(("content-", "mime-version")):
            copy[name] = value
    copy.set_payload(notice)
    return copy


def second_opinion(msg: Message) -> Bounce | None:
    """A bounce flufl.bounce (GNU Mailman's detectors) finds where `parse_bounce` found none.

    For mail no rule of ours calls automatic: a message that still bears a bounce's cheap
    signs (`_could_be_bounce`; a person's mail needs a bounce subject) and names failed
    addresses in flufl's formats, such as a gateway's notice under the original "RE:"
    subject with "non remis (delivery failed)" added. The detectors read the notice's text
    (`notice_text`, bounded), not attachments: DSNs and attached originals are ours to read.
    A person quoting a bounce to ask about
    it is never one: failed addresses count only outside a quoted message (Outlook's header
    block, "> " lines, "On … wrote:"), as `strip_reply` cuts it for agents.
    """
    try:
        if not _could_be_bounce(msg):
            return None
        notice = notice_text(msg)[:_MAX_SECOND_OPINION]
        temporary, permanent = all_failures(_notice_only(msg, notice))
        if not (temporary or permanent):
            return None
        own_words = strip_reply(notice).lower()
    except Exception:  # flufl's detectors trip on some malformed mail: no opinion then
        return None
    found = [a.decode("ascii", "replace") for a in sorted(permanent) + sorted(temporary)]
    # Only addresses in the sender's own words: in a quote, they are a person's question.
    recipients = [
        _clean_address(a) for a in found if _EMAIL_RE.fullmatch(a) and a.lower() in own_words
    ]
    if not recipients:
        return None
    head = split_notice(notice)
    return Bounce(
        permanent=bool(permanent),
        recipients=tuple(dict.fromkeys(recipients)),
        original_message_id=original_message_id(msg, notice),
        status=_status_in(head),
        kind="nonstandard",
    )
