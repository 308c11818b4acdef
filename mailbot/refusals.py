"""What a relay's refusal of outgoing mail means, in one short line an admin can act on.

The explanations key on the enhanced status code (RFC 3463, "5.7.60") a relay puts after its
reply code, and fall back to the reply code alone. `about_recipient` tells refusals of one
recipient (unknown user, full mailbox) from refusals of our sending as such (authentication,
Send As rights, relaying): only the latter mean that outgoing mail as a whole is failing.
"""

from __future__ import annotations

import re

# Enhanced status code → what it means and what to do. Most specific codes first.
HINTS: dict[str, str] = {
    "5.7.60": "Microsoft 365: the account may not send as this address; grant it Send As on"
    " the mailbox, or sign in as the mailbox itself",
    "5.7.57": "Microsoft 365: the client is not authenticated; check username and password,"
    " enable Authenticated SMTP for the mailbox, or sign in with OAuth2",
    "5.7.139": "Microsoft 365: SMTP AUTH is disabled for the mailbox or tenant; enable"
    " Authenticated SMTP for the mailbox, or sign in with OAuth2",
    "5.7.3": "Microsoft 365: authentication failed or SMTP AUTH is disabled; enable"
    " Authenticated SMTP for the mailbox, or sign in with OAuth2",
    "5.7.708": "Microsoft 365: the tenant is blocked from sending (flagged for spam); ask"
    " Microsoft support to release it",
    "5.7.26": "the recipient's server rejected the mail on DMARC: sign it with DKIM for the"
    " sender's domain (and align SPF)",
    "5.7.8": "authentication failed: for Gmail use an app password or OAuth2; check username"
    " and password",
    "5.7.0": "authentication required: for Gmail use an app password or OAuth2; check username"
    " and password",
    "5.7.1": "relaying denied: the relay does not accept this sender or client; authenticate,"
    " or use an envelope sender the relay allows",
    "5.4.1": "the recipient was rejected (unknown address or refused by the recipient's domain)",
    "5.2.2": "the recipient's mailbox is full",
    "4.2.2": "the recipient's mailbox is full (for now: retrying)",
    "5.1.1": "the recipient's address does not exist; check it for typos",
    "5.1.10": "the recipient's address does not exist (null MX or unknown domain)",
}

# By the reply code alone, when the relay gives no enhanced code.
BY_REPLY: dict[str, str] = {
    "530": "authentication required: check username and password, or sign in with OAuth2",
    "535": "authentication failed: check username and password (for Gmail: an app password),"
    " or sign in with OAuth2",
    "550": "the relay refused the mail for good",
    "552": "the message is too large for the relay",
    "554": "the relay refused the mail (policy or spam filter)",
}

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLY = re.compile(r"\b([245]\d\d)\b")
_RECIPIENT_CLASSES = {"1", "2"}  # X.1.x addressing, X.2.x mailbox: about one recipient


def enhanced_code(error: str | None) -> str | None:
    """The first enhanced status code in a delivery error ("5.7.60"), if any."""
    match = _ENHANCED.search(error or "")
    return ".".join(match.groups()) if match else None


def explain(error: str | None) -> str | None:
    """One line saying what a delivery error means and what to do; None when unknown."""
    if not error:
        return None
    code = enhanced_code(error)
    if code in HINTS:
        return HINTS[code]
    if code is not None and code.split(".")[0] == "5" and code.split(".")[1] == "7":
        return "the relay refused the mail on security policy (authentication, sender rights)"
    reply = _REPLY.search(error)
    return BY_REPLY.get(reply[1]) if reply else None


def about_recipient(error: str) -> bool:
    """True when a refusal concerns one recipient (unknown user, full mailbox, 5.4.1), not
    our sending as such."""
    if error.startswith("recipients refused"):
        code = enhanced_code(error)
        return code is None or code.split(".")[1] in _RECIPIENT_CLASSES or code == "5.4.1"
    code = enhanced_code(error)
    return code is not None and (code.split(".")[1] in _RECIPIENT_CLASSES or code == "5.4.1")
