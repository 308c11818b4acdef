"""Lenient access to a parsed message's headers: raw values, decoded on demand, never raising.

The stdlib header registry (policy.default) parses a header anew on every access and raises on
some malformed values, so mailbot reads the raw (name, value) pairs instead. A message's header
block is indexed on first use, and its parsed address lists are remembered, in one `_Headers`
per message, held while the message lives. Inbound messages are not modified after parsing; a
copy of one (copy, deepcopy, pickle) is a new message and gets its own index.
"""

from __future__ import annotations

import email.header
import email.utils
import re
import threading
import weakref
from email.message import Message

from mailbot.mail.charsets import decode_bytes

MSGID_RE = re.compile(r"<[^<>\s]{1,250}>")
FOLD_RE = re.compile(r"\r?\n[ \t]")
# Control characters never belong in a header value we show or reuse.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# An RFC 2047 encoded-word. Its text may hold address specials (":", "@", "<", ","), which
# the address parser must not see: it would take "=?utf-8?q?Jan:" for a group name.
ENCODED_WORD_RE = re.compile(r"=\?[^?\s]{1,75}\?[bBqQ]\?[^?\s]{0,998}\?=")
_WORD_MARK = "mailbotencodedword"
_WORD_MARK_RE = re.compile(_WORD_MARK + r"(\d+)x")
# Shown names: bidirectional controls reorder what an agent reads ("exe.pdf" for "fdp.exe"),
# line and paragraph separators start a new line in a notice; both go.
BIDI_RE = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
NAME_SPACE_RE = re.compile(r"[\s\u2028\u2029\x85]+")
MAX_DISPLAY_NAME = 100


class _Headers:
    """What has been read from one message's header block, by lower-cased name."""

    __slots__ = ("decoded", "pairs", "raw")

    def __init__(self, msg: Message) -> None:
        self.raw = _read_raw(msg)  # raw values, folding kept
        # getaddresses() results: parsing and the automatic-mail rules read From eight times
        # a message, and the stdlib address parser is slow pure Python.
        self.pairs: dict[str, tuple[tuple[str, str], ...]] = {}
        # Decoded values: classification reads the same few headers some fifty times a message.
        self.decoded: dict[str, tuple[str, ...]] = {}


# Weak keys: an entry goes when its message goes. SMTP, IMAP, the pipeline worker and the CLI
# parse in different threads; each message is read by the thread that parsed it, the lock
# only keeps one index per message if two threads ever index the same one at once.
_HEADERS: weakref.WeakKeyDictionary[Message, _Headers] = weakref.WeakKeyDictionary()
_HEADERS_LOCK = threading.Lock()


# The message each thread read last, weakly, and its index: the automatic-mail rules look up
# one message's headers some seventy times in a row, and a weak dictionary lookup makes a new
# weak reference each time.
_LAST = threading.local()


def _headers(msg: Message) -> _Headers:
    last: tuple[weakref.ref[Message], _Headers] | None = getattr(_LAST, "last", None)
    if last is not None and last[0]() is msg:
        return last[1]
    state = _HEADERS.get(msg)
    if state is None:
        state = _Headers(msg)
        with _HEADERS_LOCK:
            state = _HEADERS.setdefault(msg, state)
    _LAST.last = (weakref.ref(msg), state)
    return state


def _read_raw(msg: Message) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
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
    return index


def raw_index(msg: Message) -> dict[str, list[str]]:
    """Lower-cased header name → raw values (unfolding left to the caller); do not modify."""
    return _headers(msg).raw


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
    state = _headers(msg)
    values = state.decoded.get(name)
    if values is None:
        values = tuple(decode_header_text(v) for v in state.raw.get(name, ()))
        state.decoded[name] = values
    return list(values)


def header_value(msg: Message, name: str) -> str:
    """The first value of a header, decoded; '' when absent or unreadable."""
    values = header_values(msg, name)
    return values[0] if values else ""


def _getaddresses(values: list[str]) -> tuple[tuple[str, str], ...]:
    """getaddresses() with each encoded-word parsed as one atom, restored afterwards.

    RFC 2047 §5: encoded-words are decoded after the address is parsed, never before, and
    what they hold (":", "@", "<", CR LF) cannot split the address or become its addr-spec.
    """
    words: list[str] = []

    def mark(match: re.Match[str]) -> str:
        words.append(match.group(0))
        return f"{_WORD_MARK}{len(words) - 1}x"

    def restore(text: str) -> str:
        return _WORD_MARK_RE.sub(lambda m: words[int(m.group(1))], text) if words else text

    if any("=?" in v for v in values) and not any(_WORD_MARK in v for v in values):
        values = [ENCODED_WORD_RE.sub(mark, v) for v in values]
    return tuple((restore(n), restore(a)) for n, a in email.utils.getaddresses(values))


def _address_pairs(msg: Message, name: str) -> tuple[tuple[str, str], ...]:
    """getaddresses() over the unfolded raw values, once per message and header."""
    name = name.lower()
    state = _headers(msg)
    pairs = state.pairs.get(name)
    if pairs is None:
        unfolded = [FOLD_RE.sub(" ", v) for v in state.raw.get(name, [])]
        try:
            pairs = _getaddresses(unfolded) if unfolded else ()
        except Exception:  # getaddresses can trip on exotic input
            pairs = tuple(("", v) for v in unfolded)
        state.pairs[name] = pairs
    return pairs


def address_specs(msg: Message, name: str) -> list[str]:
    """Lower-cased addr-specs of an address header, bare local parts (MAILER-DAEMON) too."""
    return [
        addr.strip().strip("<>").lower() for _, addr in _address_pairs(msg, name) if addr.strip()
    ]


def addresses(msg: Message, name: str) -> tuple[tuple[str, str], ...]:
    """(display name, lower-cased address) pairs of an address header; bad entries skipped.

    The display name is decoded and made safe to show (`display_name`). An addr-spec that
    is an encoded-word ("=?utf-8?q?x@evil.example?=") is no address: RFC 2047 §5 forbids one.
    """
    out = []
    for display, addr in _address_pairs(msg, name):
        addr = addr.strip().lower()
        if (
            "@" not in addr
            or any(c in addr for c in " \t\r\n\x00<>,;")
            or ENCODED_WORD_RE.search(addr)
        ):
            continue
        out.append((display_name(decode_header_text(display), addr), addr))
    return tuple(out)


def display_name(name: str, address: str) -> str:
    """A sender's name as staff may read it next to, or instead of, their address.

    Bidirectional controls and line separators go, whitespace is collapsed, length is
    bounded. A name that looks like an address is no name: the address itself gives ''
    (the address is shown instead), another address gets the real one beside it, so
    '"ceo@4dustry.com" <x@evil.example>' reads "ceo@4dustry.com (x@evil.example)" wherever
    a mail client shows the name alone.
    """
    if name.isascii() and name.isprintable() and "@" not in name and len(name) <= 100:
        return name  # the common case: nothing to do
    name = NAME_SPACE_RE.sub(" ", BIDI_RE.sub("", CONTROL_RE.sub("", name))).strip()
    if len(name) > MAX_DISPLAY_NAME:
        name = name[: MAX_DISPLAY_NAME - 1].rstrip() + "…"
    if "@" not in name:
        return name
    if name.strip("'\"<> ").lower() == address:
        return ""
    return name if address in name.lower() else f"{name} ({address})"


def message_ids(text: str) -> tuple[str, ...]:
    """The <Message-IDs> in a header value, exactly as written, in order, without repeats.

    A msg-id is case-sensitive (RFC 5322 §3.6.4): mail clients that compare ids exactly only
    thread our answers when we give theirs back unchanged. Lookups match ids ignoring case
    (`store.messages`), for the MTAs that change it and for ids stored lower-cased long ago.
    """
    return tuple(dict.fromkeys(MSGID_RE.findall(text)))
