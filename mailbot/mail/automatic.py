"""Decide whether incoming mail was sent by a machine, so that it never gets an automatic answer."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from email.message import Message

from mailbot.mail.bounce import (
    DAEMON_LOCAL_RE,
    NOREPLY_LOCAL_RE,
    Bounce,
    auto_submitted,
    content_type,
    has_null_return_path,
    header_value,
    header_values,
    is_daemon_sender,
    is_report,
    local_part,
    parse_bounce,
    report_type,
    second_opinion,
    ses_notification_type,
)
from mailbot.mail.headers import address_specs

# Out-of-office subjects as Outlook, Gmail, Apple Mail, Thunderbird, Exchange and Polish
# webmails (WP, Onet, Interia, home.pl) write them. Anchored at the start ("Re: Out of office"
# is a person answering one), and the phrase must be the whole subject or be followed by ":",
# "(", a date, "until", "w biurze"…, because customers start subjects with the same words:
# "Nieobecność pracownika w systemie", "Automatyczna odpowiedź nie działa", "Out of office
# hours support".
_OOO_PHRASE = (
    r"automatyczna odpowied[źz]|odpowied[źz] automatyczna|autoodpowied[źz]|"
    r"nieobecno[śs][ćc]|nieobecn[ya]|poza biurem|jestem na urlopie|"
    r"automatic reply|auto[- ]?reply|auto[- ]?respon(?:se|der|s)|automated (?:reply|response)|"
    r"out of (?:the )?office|ooo|away from (?:the )?(?:office|my desk)|"
    r"on (?:vacation|holiday|leave)|vacation (?:reply|response|notice)|"
    r"automatische antwort|abwesenheitsnotiz|abwesenheit|abwesend|r[ée]ponse automatique|"
    r"absence|risposta automatica|respuesta autom[áa]tica|fuera de la oficina|"
    r"automatisch antwoord|afwezig|autosvar|automaattinen vastaus|automatick[áa] odpov[ěe][ďd]|"
    r"\u81ea\u52d5\u5fdc\u7b54|\u81ea\u52d5\u8fd4\u4fe1|\u4e0d\u5728\u901a\u77e5"
)
_OOO_END = (
    r"\s*(?:$|[:(\[\uff1a]|\d|until\b|till\b|from\b|auto|reply|notice|notification|"
    r"message|w (?:biurze|pracy|dniach)|(?:do|od) (?:\d|dnia))"
)
_OOO_SUBJECT_RE = re.compile(
    rf"^\s*(?:away until\b|(?:{_OOO_PHRASE})(?={_OOO_END}))", re.IGNORECASE
)
# Headers autoresponders add besides RFC 3834's Auto-Submitted (value must not be "no").
# X-Auto-Response-Suppress is deliberately absent: it says which automatic answers the sender
# does not want, not that the message is automatic. Outlook and Exchange put it on meeting
# requests and on plain mail from some clients and CRMs, so a person's request carrying it
# must still be acknowledged (Exchange's own auto-replies are caught by their subject,
# Auto-Submitted or X-MS-Exchange-Inbox-Rules-Loop).
_AUTOREPLY_HEADERS = (
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "x-autoreply-from",
    "x-mail-autoreply",
    "x-vacation",
)
_NEGATIVE_VALUE_RE = re.compile(r"^\s*(?:no|false|0)?\s*$", re.IGNORECASE)
_APPLE_VACATION_RE = re.compile(r"vacation", re.IGNORECASE)
_PRECEDENCE_LIST = frozenset({"bulk", "list", "junk"})
_ARF_SUBJECT_RE = re.compile(
    r"^\s*complaint about message from \d{1,3}(?:\.\d{1,3}){3}\b", re.IGNORECASE
)
_MESSAGE_ID_DOMAIN_RE = re.compile(r"@([^\s<>@]{1,255}?)\s*>?\s*$")
_ADDRESS_RE = re.compile(r"[^\s<>,;\"@]{1,64}@[^\s<>,;\"@]{1,255}")
_LIST_HEADERS = ("list-id", "list-unsubscribe")
# Japanese fml and other list servers that predate List-Id.
_LIST_SERVER_HEADERS = ("x-mlserver", "x-ml-name", "x-mailing-list")


@dataclass(frozen=True)
class Automatic:
    """Why a message is automatic; `bounce` is filled for recognised delivery failures."""

    kind: str  # "bounce" | "auto-reply" | "list" | "abuse-report" | "receipt" | "auto-generated"
    reason: str  # the rule that decided, for logs and the ticket's audit trail
    bounce: Bounce | None = None


_Rule = Callable[[Message], "Automatic | None"]


def detect_automatic(
    msg: Message,
    *,
    own_domains: Collection[str] = (),
    own_addresses: Collection[str] = (),
) -> Automatic | None:
    """The first rule that marks `msg` as machine-sent, or None for mail from a person.

    Order matters only for `kind`: reports and bounces first (a DSN also carries
    Auto-Submitted), then auto-replies, then lists, then generic machine markers.
    Never raises: a rule that trips on malformed mail is skipped.
    """
    domains = {d.lower().strip().lstrip("@") for d in own_domains if d.strip()}
    own = {a.lower().strip() for a in own_addresses if a.strip()}
    rules: list[_Rule] = [
        _abuse_report,
        _receipt,
        _bounce,
        _auto_reply,
        _auto_submitted,
        _list_mail,
        lambda m: _own_mail(m, domains, own),
        _daemon_sender,
        _null_return_path,
        _noreply_sender,
        _rule_generated,
        _flufl_bounce,
    ]
    for rule in rules:
        try:
            found = rule(msg)
        except Exception:  # a malformed header must not hide the other rules
            continue
        if found:
            return found
    return None


def _abuse_report(msg: Message) -> Automatic | None:
    if is_report(msg, "feedback-report"):
        return Automatic("abuse-report", "ARF feedback report (multipart/report)")
    # Hotmail JMRP complaints predate ARF; Apple Mail sends unsubscribe requests by mail.
    if _ARF_SUBJECT_RE.match(header_value(msg, "subject")):
        return Automatic("abuse-report", "complaint report subject")
    if header_value(msg, "x-apple-unsubscribe").lower() == "true":
        return Automatic("abuse-report", "X-Apple-Unsubscribe: true")
    if ses_notification_type(msg) == "Complaint":
        return Automatic("abuse-report", "Amazon SES complaint notification")
    return None


def _receipt(msg: Message) -> Automatic | None:
    if is_report(msg, "disposition-notification"):
        return Automatic("receipt", "MDN (disposition-notification)")
    return None


def _bounce(msg: Message) -> Automatic | None:
    bounce = parse_bounce(msg)
    if bounce:
        structure = "DSN (multipart/report)" if bounce.kind == "dsn" else "non-standard bounce"
        return Automatic("bounce", structure, bounce)
    if content_type(msg) == "multipart/report" and report_type(msg) == "delivery-status":
        # A DSN that reports success (delivered/relayed) is still machine mail.
        return Automatic("auto-generated", "DSN without failures (multipart/report)")
    return None


def _auto_reply(msg: Message) -> Automatic | None:
    if auto_submitted(msg) == "auto-replied":
        return Automatic("auto-reply", "Auto-Submitted: auto-replied")
    if header_value(msg, "precedence").strip().lower() == "auto_reply":
        return Automatic("auto-reply", "Precedence: auto_reply")
    for name in _AUTOREPLY_HEADERS:
        values = header_values(msg, name)
        if values and not all(_NEGATIVE_VALUE_RE.match(v) for v in values):
            return Automatic("auto-reply", f"{name} header")
    if _APPLE_VACATION_RE.search(header_value(msg, "x-apple-action")):
        return Automatic("auto-reply", "X-Apple-Action: vacation")
    subject = header_value(msg, "subject")
    match = _OOO_SUBJECT_RE.match(subject)
    if match:
        return Automatic("auto-reply", f"out-of-office subject '{match.group(0).strip()}'")
    return None


def _auto_submitted(msg: Message) -> Automatic | None:
    value = auto_submitted(msg)
    return Automatic("auto-generated", f"Auto-Submitted: {value}") if value else None


def _list_mail(msg: Message) -> Automatic | None:
    precedence = header_value(msg, "precedence").strip().lower()
    if precedence in _PRECEDENCE_LIST:
        return Automatic("list", f"Precedence: {precedence}")
    for name in _LIST_HEADERS + _LIST_SERVER_HEADERS:
        if any(v.strip() for v in header_values(msg, name)):
            return Automatic("list", f"{name.title()} present")
    return None


def _own_mail(msg: Message, domains: set[str], own: set[str]) -> Automatic | None:
    """Our own mail coming back (loops through forwarders, misdirected copies)."""
    for value in header_values(msg, "x-loop"):
        named = {a.lower() for a in _addresses_in(value)}
        if named & own:
            return Automatic("auto-generated", f"X-Loop names {sorted(named & own)[0]}")
    senders = address_specs(msg, "from")
    sender = next((a for a in senders if a in own), None)
    if sender:
        return Automatic("auto-generated", f"From is our own address {sender}")
    match = _MESSAGE_ID_DOMAIN_RE.search(header_value(msg, "message-id"))
    # A colleague writing from our domain in Thunderbird gets a Message-ID in our domain too:
    # that is a person, so the rule only holds for mail from outside.
    colleague = any(_in_domains(a.rpartition("@")[2], domains) for a in senders)
    if match and not colleague and _in_domains(match.group(1).lower(), domains):
        return Automatic("auto-generated", f"Message-ID from our domain {match.group(1).lower()}")
    return None


def _addresses_in(value: str) -> list[str]:
    return _ADDRESS_RE.findall(value)


def _in_domains(domain: str, domains: set[str]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _daemon_sender(msg: Message) -> Automatic | None:
    for name in ("from", "return-path"):
        for address in address_specs(msg, name):
            if DAEMON_LOCAL_RE.match(local_part(address)):
                kind = "bounce" if "daemon" in address else "auto-generated"
                return Automatic(kind, f"sender {address}")
    if is_daemon_sender(msg):
        return Automatic("bounce", "sender named as mail delivery system")
    return None


def _null_return_path(msg: Message) -> Automatic | None:
    return Automatic("auto-generated", "null Return-Path") if has_null_return_path(msg) else None


def _noreply_sender(msg: Message) -> Automatic | None:
    for name in ("from", "return-path"):
        for address in address_specs(msg, name):
            if NOREPLY_LOCAL_RE.match(local_part(address)):
                return Automatic("auto-generated", f"sender {address}")
    return None


def _flufl_bounce(msg: Message) -> Automatic | None:
    """Last: a bounce none of our rules recognised, by GNU Mailman's detectors."""
    bounce = second_opinion(msg)
    return Automatic("bounce", "non-standard bounce (flufl.bounce)", bounce) if bounce else None


def _rule_generated(msg: Message) -> Automatic | None:
    # Exchange stamps mail created by a mailbox rule (auto-reply or auto-forward rules).
    if header_values(msg, "x-ms-exchange-inbox-rules-loop"):
        return Automatic("auto-generated", "X-MS-Exchange-Inbox-Rules-Loop present")
    return None
