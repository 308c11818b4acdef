"""Lenient access to a parsed message's headers: raw values, decoded once, never raising.

The stdlib header registry (policy.default) parses a header anew on every access and raises on
some malformed values, so mailbot reads the raw (name, value) pairs instead. The index of a
message is built on first use and kept on the message object: inbound messages are not
modified after parsing.
"""

from __future__ import annotations

import email.header
import email.utils
import re
from email.message import Message

from mailbot.mail.charsets import decode_bytes

MSGID_RE = re.compile(r"<[^<>\s]{1,250}>")
FOLD_RE = re.compile(r"\r?\n[ \t]")
# Control characters never belong in a header value we show or reuse.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_INDEX = "_mailbot_raw_headers"
_DECODED = "_mailbot_decoded_headers"
_PAIRS = "_mailbot_address_pairs"


def raw_index(msg: Message) -> dict[str, list[str]]:
    """Lower-cased header name → raw values (unfolding left to the caller)."""
    index = msg.__dict__.get(_INDEX)
    if index is None:
        index = {}
        try:
            items = list(msg.raw_items())
        except Exception:  # a pathological header block reads as no headers
            items = []
        for key, value in items:
            value = str(value)
            if not value.isascii():
                # Raw 8-bit header bytes arrive as surrogate escapes: decode them properly.
                value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)
            index.setdefault(str(key).lower(), []).append(value)
        msg.__dict__[_INDEX] = index
    return index


def raw_values(msg: Message, name: str) -> list[str]:
    """Undecoded values of a header, as they came (folding kept)."""
    return raw_index(msg).get(name.lower(), [])


def decode_header_text(raw: str) -> str:
    """Decode RFC 2047 words and raw 8-bit bytes of one header value; unfold it."""
    raw = FOLD_RE.sub(" ", raw).replace("\r", "").replace("\n", "")
    if "=?" not in raw and raw.isprintable():
        return raw.strip()  # the common case: nothing encoded, nothing to remove
    try:
        parts = email.header.decode_header(raw)
    except Exception:  # malformed encoded words: keep the text as it came
        parts = [(raw, None)]
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8", "surrogateescape")
        out.append(decode_bytes(chunk, charset))
    text = "".join(out)
    # Control characters never belong in a header value we show or reuse.
    return CONTROL_RE.sub("", text).strip()


def header_values(msg: Message, name: str) -> list[str]:
    """Every value of a header, decoded and unfolded; [] when absent."""
    name = name.lower()
    decoded = msg.__dict__.setdefault(_DECODED, {})
    values = decoded.get(name)
    if values is None:
        values = decoded[name] = [decode_header_text(v) for v in raw_values(msg, name)]
    return values


def header_value(msg: Message, name: str) -> str:
    """The first value of a header, decoded; '' when absent or unreadable."""
    values = header_values(msg, name)
    return values[0] if values else ""


def _address_pairs(msg: Message, name: str) -> list[tuple[str, str]]:
    """getaddresses() over the unfolded raw values, once per message and header."""
    name = name.lower()
    cache = msg.__dict__.setdefault(_PAIRS, {})
    pairs = cache.get(name)
    if pairs is None:
        unfolded = tuple(FOLD_RE.sub(" ", v) for v in raw_values(msg, name))
        pairs = cache[name] = _getaddresses(unfolded) if unfolded else []
    return pairs


_ADDRESS_CACHE: dict[tuple[str, ...], list[tuple[str, str]]] = {}


def _getaddresses(values: tuple[str, ...]) -> list[tuple[str, str]]:
    """email.utils.getaddresses, remembered: To/Cc/From values repeat across a mail stream and
    the stdlib address parser is slow pure Python (a tenth of a millisecond per message)."""
    pairs = _ADDRESS_CACHE.get(values)
    if pairs is None:
        try:
            pairs = email.utils.getaddresses(list(values))
        except Exception:  # getaddresses can trip on exotic input
            pairs = [("", v) for v in values]
        if sum(map(len, values)) < 2000:
            if len(_ADDRESS_CACHE) >= 4096:
                _ADDRESS_CACHE.clear()
            _ADDRESS_CACHE[values] = pairs
    return pairs


def address_specs(msg: Message, name: str) -> list[str]:
    """Lower-cased addr-specs of an address header, bare local parts (MAILER-DAEMON) too."""
    return [
        addr.strip().strip("<>").lower() for _, addr in _address_pairs(msg, name) if addr.strip()
    ]


def addresses(msg: Message, name: str) -> tuple[tuple[str, str], ...]:
    """(display name, lower-cased address) pairs of an address header; bad entries skipped."""
    out = []
    for display, addr in _address_pairs(msg, name):
        addr = addr.strip().lower()
        if "@" not in addr or any(c in addr for c in " \t\r\n\x00<>,;"):
            continue
        out.append((decode_header_text(display), addr))
    return tuple(out)


def message_ids(text: str) -> tuple[str, ...]:
    """The <Message-IDs> in a header value, lower-cased, in order, without repeats."""
    return tuple(dict.fromkeys(m.lower() for m in MSGID_RE.findall(text)))
