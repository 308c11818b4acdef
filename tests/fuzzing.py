"""Fuzzing for the tests: seed mail, mutators, pathological inputs, and running one input.

tests/test_fuzz.py runs these under Hypothesis, `python -m bench.fuzz` for minutes at a time.
`mutate(raw, rng, names, size)` applies mutators from `MUTATORS` (each `(raw, rng, size) ->
raw`, `size` bounding every count it makes up) to a seed: one of `BUILTIN`, hand-built so that
fuzzing works without the corpus, or a corpus message (`load_seeds`). `run_one` feeds one input
to `accept` + `process_pending` of a mailbot on the shipped config (`fuzz_context`, ticket #1
in place) inside a transaction that is rolled back, so every input meets the same database; a
`Worker` does the same in a child process, so that a hang is cut off instead of stalling the
run. An `Outcome` lists the fuzzing properties it breaks (`problems`): an exception escaped
`process_pending`, the row was left in a non-final status or ignored/quarantined without a
reason, or it records an unexpected-exception traceback.
"""

from __future__ import annotations

import base64
import json
import logging
import multiprocessing
import random
import re
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

from mailbot import config as config_module
from mailbot.context import Context, open_context
from mailbot.intake import accept
from mailbot.worker import process_pending
from tests.helpers import write_config

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday inside business hours
FINAL = frozenset({"processed", "ignored", "duplicate", "quarantined"})
# No mutant grows past this: the point is hostile structure, not memory exhaustion.
MAX_OUTPUT = 6_000_000

Mutator = Callable[[bytes, random.Random, int], bytes]


# -- seeds: hand-built mail, so that fuzzing works without the corpus ------------------------

_FROM = b"From: Jan Kowalski <jan@klient.pl>\r\nTo: pomoc@4dustry.com\r\n"
_DATE = b"Date: Mon, 30 Nov 2026 10:00:00 +0100\r\n"
BUILTIN: dict[str, bytes] = {
    "plain-qp": _FROM + _DATE + b"Subject: =?utf-8?q?Problem_z_zam=C3=B3wieniem?=\r\n"
    b"Message-ID: <plain-qp@klient.pl>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    b"\r\nDzie=C5=84 dobry, zam=C3=B3wienie nr 123 nie dotar=C5=82o. Prosz=C4=99 o pomoc=\r\n"
    b".\r\n\r\nPozdrawiam\r\nJan\r\n",
    "alternative-latin2": _FROM + _DATE + b"Subject: Faktura =?iso-8859-2?q?b=B3=B1d?=\r\n"
    b"Message-ID: <alt@klient.pl>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="alt-b"\r\n\r\n'
    b"--alt-b\r\nContent-Type: text/plain; charset=iso-8859-2\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\nFaktura ma b\xb3\xb1d, prosz\xea o korekt\xea.\r\n"
    b"--alt-b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.encodebytes(b"<p>Faktura ma <b>b\xc5\x82\xc4\x85d</b>.</p>").replace(b"\n", b"\r\n")
    + b"--alt-b--\r\n",
    "attachments": _FROM + _DATE + b"Subject: Zrzut ekranu awarii\r\n"
    b"Message-ID: <att@klient.pl>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="mix-b"\r\n\r\npreamble\r\n'
    b"--mix-b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nW za\xc5\x82\xc4\x85czniku log.\r\n"
    b'--mix-b\r\nContent-Type: application/pdf; name="raport.pdf"\r\n'
    b"Content-Disposition: attachment; filename*=utf-8''raport%20b%C5%82%C4%99du.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDM+Pgo=\r\n"
    b"--mix-b\r\nContent-Type: image/png\r\nContent-ID: <logo@klient.pl>\r\n"
    b"Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\r\n"
    b"--mix-b--\r\nepilogue\r\n",
    "dsn": b"From: Mail Delivery System <MAILER-DAEMON@mx.klient.pl>\r\nTo: pomoc@4dustry.com\r\n"
    + _DATE
    + b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn@mx.klient.pl>\r\n"
    b"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn-b"\r\n\r\n'
    b"--dsn-b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message"
    b" could not be delivered.\r\n\r\n<nie.ma@klient.pl>: host mx said: 550 5.1.1 User unknown\r\n"
    b"--dsn-b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.klient.pl\r\n"
    b"\r\nFinal-Recipient: rfc822; nie.ma@klient.pl\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    b"Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
    b"--dsn-b\r\nContent-Type: message/rfc822\r\n\r\nFrom: pomoc@4dustry.com\r\n"
    b"To: nie.ma@klient.pl\r\nSubject: [4Dustry #1] Re: Problem\r\n"
    b"Message-ID: <baseline@klient.pl>\r\n\r\nOdpowied\xc5\xba.\r\n--dsn-b--\r\n",
    "out-of-office": b"From: Ewa Nowak <ewa@firma.pl>\r\nTo: pomoc@4dustry.com\r\n"
    + _DATE
    + b"Subject: Automatyczna odpowied\xc5\xba: Problem\r\nMessage-ID: <ooo@firma.pl>\r\n"
    b"Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\nIn-Reply-To: <baseline@klient.pl>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nJestem na urlopie do 7 grudnia.\r\n",
    "html-only-cp1250": b"From: =?windows-1250?q?Pawe=B3?= <pawel@przyklad.pl>\r\n"
    b"To: pomoc@4dustry.com\r\n" + _DATE + b"Subject: PILNE: awaria linii\r\n"
    b"Message-ID: <html@przyklad.pl>\r\nImportance: high\r\n"
    b"Content-Type: text/html; charset=windows-1250\r\n\r\n<html><head><style>p{}</style>"
    b"</head><body><p>Linia stoi, b\xb3\xb9d <a href='https://x.pl/?a=1&b=2'>log</a></p>"
    b"<script>alert(1)</script><table><tr><td>1</td></tr></table></body></html>\r\n",
    "forwarded": _FROM + _DATE + b"Subject: Fwd: [4Dustry #1] Dostawa\r\n"
    b"Message-ID: <fwd@klient.pl>\r\n"
    b"References: <a@x.pl> <b@y.pl>\r\nIn-Reply-To: <b@y.pl>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="fwd-b"\r\n\r\n'
    b"--fwd-b\r\nContent-Type: text/plain\r\n\r\nPrzesy\xc5\x82am dalej.\r\n"
    b"--fwd-b\r\nContent-Type: message/rfc822\r\n\r\nFrom: dostawca@y.pl\r\nSubject: Dostawa\r\n"
    b'Content-Type: multipart/mixed; boundary="in-b"\r\n\r\n--in-b\r\n'
    b"Content-Type: text/plain\r\n\r\nDostawa jutro.\r\n--in-b--\r\n--fwd-b--\r\n",
    "agent-reply": b"From: Anna Kowalska <anna@4dustry.com>\r\nTo: pomoc@4dustry.com\r\n"
    + _DATE
    + b"Subject: Re: [4Dustry #1] Problem\r\nMessage-ID: <agent@4dustry.com>\r\n"
    b"In-Reply-To: <baseline@klient.pl>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"#priority urgent\r\n#close\r\nZrobione.\r\n\r\n> cytat\r\n",
    "contact-form": b"From: formularz@4dustry.com\r\nReply-To: Ola <ola@gmail.com>\r\n"
    b"To: pomoc@4dustry.com\r\n" + _DATE + b"Subject: Formularz kontaktowy: {{7*7}}\r\n"
    b"Message-ID: <form@4dustry.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Imi\xc4\x99: Ola\r\nWiadomo\xc5\x9b\xc4\x87: {{7*7}} ${7*7}\r\n",
    "digest-iso2022": b"From: =?iso-2022-jp?b?GyRCJUYlOSVIGyhC?= <tanaka@example.jp>\r\n"
    b"To: pomoc@4dustry.com, Cc <cc@example.jp>\r\nCc: inny@example.jp\r\n"
    + _DATE
    + b"Subject: =?iso-2022-jp?b?GyRCJEgbKEI=?= order\r\nMessage-ID: <digest@example.jp>\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary="dig"\r\n\r\n'
    b"--dig\r\n\r\nFrom: a@example.jp\r\nSubject: one\r\n\r\nfirst\r\n"
    b"--dig\r\n\r\nFrom: b@example.jp\r\nSubject: two\r\n\r\nsecond\r\n--dig--\r\n",
}


# -- helpers shared by the mutators -----------------------------------------------------------

_BLANK_RE = re.compile(rb"\r?\n\r?\n")
_FIELD_RE = re.compile(rb"^[^ \t\r\n][^\r\n]*(?:\r?\n[ \t][^\r\n]*)*(?:\r?\n)?", re.M)
_BOUNDARY_RE = re.compile(rb'(boundary\s*=\s*)("[^"\r\n]*"|[^\s;]*)', re.I)
_CHARSET_RE = re.compile(rb'(charset\s*=\s*)("[^"\r\n]*"|[^\s;]*)', re.I)
_ENCODED_WORD_RE = re.compile(rb"=\?([^?\s]{0,60})\?([bBqQ])\?")
_CTE_RE = re.compile(rb"^(content-transfer-encoding:[ \t]*)([^\r\n]*)", re.I | re.M)
_STRUCTURE_RE = re.compile(rb"^(?:content-type|content-transfer-encoding|mime-version):", re.I)
IMPORTANT = (
    b"from", b"to", b"cc", b"reply-to", b"subject", b"message-id", b"in-reply-to",
    b"references", b"content-type", b"content-transfer-encoding", b"content-disposition",
    b"return-path", b"auto-submitted", b"mime-version", b"date",
)  # fmt: skip


def split(raw: bytes) -> tuple[bytes, bytes]:
    """(header block with its blank line, body); the whole input is header when no blank line."""
    end = _BLANK_RE.search(raw)
    return (raw[: end.end()], raw[end.end() :]) if end else (raw, b"")


def header_fields(head: bytes) -> list[tuple[int, int]]:
    """Spans of the header fields (with their folded lines) in a header block."""
    return [m.span() for m in _FIELD_RE.finditer(head) if m.group().strip()]


def _pick_field(head: bytes, rng: random.Random) -> tuple[int, int] | None:
    fields = header_fields(head)
    if not fields:
        return None
    wanted = [s for s in fields if head[s[0] : s[1]].split(b":", 1)[0].lower() in IMPORTANT]
    # Mostly the headers mailbot reads; sometimes any, since X-headers feed the robot rules.
    return rng.choice(wanted if wanted and rng.random() < 0.75 else fields)


def _eol(raw: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in raw[:2000] else b"\n"


def amount(rng: random.Random, size: int, floor: int = 1) -> int:
    """A count between floor and size, log-uniform: mostly small, sometimes the whole budget."""
    choices = [n for n in (1, 2, 3, 10, 50, 300, 1_000, 5_000, 20_000, 100_000) if n <= size]
    return max(floor, rng.choice([*choices, size]))


def _insert(data: bytes, pos: int, piece: bytes) -> bytes:
    return data[:pos] + piece + data[pos:]


# -- mutators: (raw, rng, size) -> raw; `size` bounds every count a mutator makes up ----------


def byte_flip(raw: bytes, rng: random.Random, size: int) -> bytes:
    """Flip bits or plant syntax bytes, mostly in the header block."""
    data = bytearray(raw or b"\n")
    head_len = len(split(raw)[0]) or len(data)
    for _ in range(rng.choice((1, 1, 2, 4, 16))):
        pos = rng.randrange(head_len if rng.random() < 0.6 else len(data))
        if rng.random() < 0.5:
            data[pos] ^= 1 << rng.randrange(8)
        else:
            data[pos] = rng.choice(b"\x00\r\n\t :;=?<>\"'\\()\x7f\x80\xff-@,%*")
    return bytes(data)


def truncate(raw: bytes, rng: random.Random, size: int) -> bytes:
    """Cut the message anywhere: inside a header, a base64 line, before the closing boundary."""
    if len(raw) < 2:
        return b""
    head_len = len(split(raw)[0])
    where = rng.randrange(4)
    if where == 0 and head_len:
        return raw[: rng.randrange(head_len)]
    if where == 1:
        return raw[: len(raw) - rng.randrange(1, min(len(raw), 80))]
    return raw[: rng.randrange(len(raw))]


def duplicate_header(raw: bytes, rng: random.Random, size: int) -> bytes:
    """Repeat a header field (From, To, Content-Type...), adjacent or at the top."""
    head, body = split(raw)
    span = _pick_field(head, rng)
    if span is None:
        return raw
    field = head[span[0] : span[1]]
    if not field.endswith(b"\n"):
        field += _eol(raw)
    copies = min(amount(rng, size), MAX_OUTPUT // (4 * len(field)) + 1)
    if rng.random() < 0.5:
        return _insert(head, span[1], field * copies) + body
    return field * copies + head + body


CONTROL = (
    b"\r", b"\n", b"\x00", b"\r\n", b"\r\n\r\n", b"\n\n", b"\r\n ", b"\x0b", b"\x0c", b"\x1b",
    b"\r\nBcc: victim@example.org", b"\nTo: victim@example.org\n", b"\r\n\r\nbody injected",
    b"%0d%0aBcc:%20victim@example.org", b"=0D=0ABcc: victim@example.org", b"\xe2\x80\xa8",
    b"\xc2\x85", b"\r\x00\n",
)  # fmt: skip


def inject_control(raw: bytes, rng: random.Random, size: int) -> bytes:
    """CR, LF, NUL and header-injection attempts inside header names and values."""
    head, body = split(raw)
    for _ in range(rng.choice((1, 1, 2, 3))):
        span = _pick_field(head, rng)
        if span is None:
            head = rng.choice(CONTROL) + head
            continue
        colon = head.find(b":", span[0], span[1])
        lo = colon + 1 if colon >= 0 and rng.random() < 0.8 else span[0]
        pos = rng.randrange(lo, max(lo + 1, span[1]))
        head = _insert(head, pos, rng.choice(CONTROL))
    return head + body


def corrupt_boundary(raw: bytes, rng: random.Random, size: int) -> bytes:
    """Break multipart structure: lost, renamed, empty, huge, repeated or shared boundaries."""
    params = list(_BOUNDARY_RE.finditer(raw))
    if not params:
        head, body = split(raw)
        ctype = b'Content-Type: multipart/mixed; boundary="' + rng.choice((b"", b"x", b"-")) + b'"'
        return ctype + _eol(raw) + head + body
    match = rng.choice(params)
    value = match.group(2).strip(b'"')
    line = re.compile(rb"^--" + re.escape(value) + rb"(--)?[ \t]*\r?$", re.M) if value else None
    action = rng.randrange(9)
    if action == 0 and line:  # the closing delimiter never comes
        closes = [m for m in line.finditer(raw) if m.group(1)]
        if closes:
            m = rng.choice(closes)
            return raw[: m.start()] + raw[m.end() :]
    if action == 1 and line:  # no delimiter at all
        return line.sub(b"", raw)
    if action == 2 and line:  # stray delimiters in the middle of parts
        _, body = split(raw)
        offset = len(raw) - len(body)
        stray = (b"--" + value + rng.choice((b"", b"--", b" ", b"\t--"))) + _eol(raw)
        # One draw seeds the many positions: Hypothesis' Random should not make 1,000 choices.
        local = random.Random(rng.getrandbits(64))
        for _ in range(amount(rng, min(size, 1_000))):
            pos = offset + local.randrange(len(body) + 1)
            raw = _insert(raw, pos, _eol(raw) + stray)
        return raw
    if action == 3:  # an inner multipart reusing the outer boundary
        other = rng.choice(params)
        return raw[: other.start(2)] + match.group(2) + raw[other.end(2) :]
    if action == 4:  # RFC 2231 continuation: other scanners miss it, the parser joins it
        half = len(value) // 2
        new = b'boundary*0="' + value[:half] + b'"; boundary*1="' + value[half:] + b'"'
        return raw[: match.start()] + new + raw[match.end() :]
    new = rng.choice(
        (
            b'""', b"", value + b"x", value[:-1], b'"' + value, b'"a b;c"', b"\x00", b"--",
            b"=" * min(size, 250), b"a" * min(size, 100_000), b'"' + value + b'" x',
            b"=?utf-8?q?" + value + b"?=",
        )
    )  # fmt: skip
    return raw[: match.start(2)] + new + raw[match.end(2) :]


CHARSETS = (
    b"utf-8", b"uft-8", b"utf8", b"utf-7", b"utf-16", b"utf-16le", b"utf-32", b"utf-8-sig",
    b"iso-2022-jp", b"iso-8859-2", b"iso-8859-8-i", b"windows-1250", b"koi8-r", b"gb2312",
    b"big5", b"shift_jis", b"euc-kr", b"hz", b"cp037", b"mbcs", b"x-unknown", b"unknown-8bit",
    b"us-ascii", b"", b'""', b"\"utf-8", b"utf-8\x00", b"charset", b"../../etc/passwd",
    b"a" * 300, b"utf-8'pl'", b"rot13", b"base64", b"hex", b"zlib", b"uu", b"quopri", b"bz2",
    b"punycode", b"idna", b"undefined", b"unicode_escape", b"raw_unicode_escape", b"utf_32_be",
    b"ascii\xff", b"=?utf-8?q?x?=", b"iso-8859-1*pl",
)  # fmt: skip
POLISH_8BIT = b" za\xbf\xf3\xb3\xe6 g\xea\xb6l\xb1 ja\xbc\xf1 \xc5\xbc\xc3\xb3\xc5\x82w \\x\\u"


def swap_charset(raw: bytes, rng: random.Random, size: int) -> bytes:
    """Relabel charsets (parameters and encoded words) with odd, wrong or non-text codecs."""
    sites = [m.span(2) for m in _CHARSET_RE.finditer(raw)]
    sites += [m.span(1) for m in _ENCODED_WORD_RE.finditer(raw)]
    if not sites or rng.random() < 0.25:
        head, body = split(raw)
        label = rng.choice(CHARSETS)
        if rng.random() < 0.5:  # a text part declaring it, with 8-bit text to decode
            ctype = b"Content-Type: text/plain; charset=" + label + _eol(raw)
            return ctype + head + body + POLISH_8BIT
        subject = b"Subject: =?" + label + b"?q?=BF=F3=B3=E6_=5Cx?=" + _eol(raw)
        return subject + head + body
    for _ in range(rng.choice((1, 1, 3))):
        start, end = rng.choice(sites)
        label = rng.choice(CHARSETS)
        raw = raw[:start] + label + raw[end:]
        shift = len(label) - (end - start)
        sites = [(s + shift, e + shift) if s > start else (s, e) for s, e in sites]
    return raw


CTE_VALUES = (
    b"base64", b"quoted-printable", b"x-uuencode", b"uuencode", b"x-uue", b"7bit", b"8bit",
    b"binary", b"BASE64", b"base-64", b"", b"base64; x=y", b"quoted-printable (comment)",
    b'"base64"', b"b\x00ase64", b"base64 base64",
)  # fmt: skip
ENCODING_JUNK = (
    b"!!", b"=", b"====", b"=ZZ", b"=\r\n", b"=\n", b"\xff\xfe", b"A", b"AA=", b"-", b"begin 644 x",
    b"\r\n\r\n", b"=3", b"===\r\n=",
)  # fmt: skip


def corrupt_transfer_encoding(raw: bytes, rng: random.Random, size: int) -> bytes:
    """Bad base64/quoted-printable payloads and odd Content-Transfer-Encoding values."""
    ctes = list(_CTE_RE.finditer(raw))
    if not ctes or rng.random() < 0.35:
        if ctes:
            m = rng.choice(ctes)
            return raw[: m.start(2)] + rng.choice(CTE_VALUES) + raw[m.end(2) :]
        head, body = split(raw)
        return b"Content-Transfer-Encoding: " + rng.choice(CTE_VALUES) + _eol(raw) + head + body
    m = rng.choice(ctes)
    start = _BLANK_RE.search(raw, m.end())
    if start is None:
        return raw
    lo = start.end()
    hi = raw.find(b"\n--", lo)
    hi = len(raw) if hi < 0 else hi
    for _ in range(rng.choice((1, 2, 5))):
        pos = rng.randrange(lo, hi + 1)
        if rng.random() < 0.3 and pos < hi:
            raw = raw[:pos] + raw[pos + 1 :]  # odd length, lost padding
        else:
            junk = rng.choice(ENCODING_JUNK)
            raw = _insert(raw, pos, junk)
            hi += len(junk)
    return raw


HEADER_NAMES = (
    b"Subject", b"From", b"To", b"Cc", b"Reply-To", b"Sender", b"References", b"In-Reply-To",
    b"Message-ID", b"Content-Type", b"Content-Disposition", b"Content-Transfer-Encoding",
    b"Received", b"X-Long", b"Authentication-Results", b"Auto-Submitted", b"List-Id",
    b"Return-Path", b"Date", b"Importance", b"X-Priority", b"X-Loop", b"Precedence",
)  # fmt: skip
HEADER_PATTERNS = (
    b"x", b"=?utf-8?q?=C5=BC?= ", b"=?utf-8?b?xbvDs8WCdw==?=", b"a@b.pl, ", b"(", b")",
    b'"', b"\\", b"<", b"=?", b";a=b", b"\r\n a", b"<a@b.pl> ", b"\xc5\xbc", b" ", b"a.",
    b"; a*0=b", b"=?utf-8?q?a?= ", b"<<>>", b"@", b",", b":", b"\t",
)  # fmt: skip


def huge_header(raw: bytes, rng: random.Random, size: int) -> bytes:
    """One very long header line: encoded words, addresses, parentheses, quotes, parameters."""
    head, body = split(raw)
    name = rng.choice(HEADER_NAMES)
    pattern = rng.choice(HEADER_PATTERNS)
    target = amount(rng, min(size, 1_000_000), floor=1_000)
    value = pattern * (target // len(pattern) + 1)
    if name == b"Content-Type" and rng.random() < 0.7:
        value = b"text/plain; charset=utf-8; " + value
    line = name + b": " + value + _eol(raw)
    existing = re.search(rb"^" + name + rb":.*(?:\r?\n[ \t].*)*\r?\n", head, re.I | re.M)
    if existing and rng.random() < 0.7:
        return head[: existing.start()] + line + head[existing.end() :] + body
    return line + head + body


def _structure(raw: bytes) -> tuple[bytes, bytes]:
    """(outer header fields without MIME structure, the content as a part with its headers)."""
    head, body = split(raw)
    fields = [head[s:e] for s, e in header_fields(head)]
    eol = _eol(raw)
    fields = [f if f.endswith(b"\n") else f + eol for f in fields]
    outer = b"".join(f for f in fields if not _STRUCTURE_RE.match(f))
    inner = b"".join(
        f for f in fields if _STRUCTURE_RE.match(f) and not f.lower().startswith(b"mime")
    )
    return outer, inner + eol + body


def deep_nesting(raw: bytes, rng: random.Random, size: int) -> bytes:
    """Wrap the content in levels of multipart, message/rfc822 or digest parts."""
    depth = amount(rng, min(size, 6_000), floor=2)
    kind = rng.choice(("multipart", "rfc822", "digest", "mixed"))
    # Bare CR or LF line ends: line-based scans may read them differently from the parser.
    eol = rng.choice((b"\r\n", b"\n", b"\r"))
    outer, part = _structure(raw)
    prefix: list[bytes] = []
    suffix: list[bytes] = []
    for level in range(depth):
        this = kind if kind != "mixed" else ("multipart", "rfc822", "digest")[level % 3]
        if this == "rfc822":
            prefix.append(
                b"Content-Type: message/rfc822" + eol + eol + b"Subject: %d" % level + eol
            )
        else:
            sub = b"digest" if this == "digest" else b"mixed"
            boundary = b"lvl-%d" % level
            opening = b"Content-Type: multipart/" + sub + b'; boundary="' + boundary + b'"' + eol
            # A digest's parts default to message/rfc822: the next level needs no Content-Type.
            prefix.append(
                opening + eol + b"--" + boundary + eol + (eol if this == "digest" else b"")
            )
            suffix.append(eol + b"--" + boundary + b"--" + eol)
    return outer + b"MIME-Version: 1.0" + eol + b"".join(prefix) + part + b"".join(reversed(suffix))


def many_parts(raw: bytes, rng: random.Random, size: int) -> bytes:
    """The content repeated, or tiny parts and attachments, in one multipart of many parts."""
    count = amount(rng, min(size, 20_000), floor=2)
    eol = _eol(raw)
    outer, part = _structure(raw)
    choices = [
        b"Content-Type: text/plain" + eol + eol + b"p" + eol,
        b'Content-Type: application/octet-stream; name="a.bin"'
        + eol
        + b'Content-Disposition: attachment; filename="../../etc/passwd"'
        + eol
        + b"Content-Transfer-Encoding: base64"
        + eol
        + eol
        + b"AAEC"
        + eol,
        b"Content-Type: text/html" + eol + eol + b"<p>x</p>" + eol,
    ]
    if len(part) * count < MAX_OUTPUT // 2:
        choices.append(part)
    parts = [rng.choice(choices) for _ in range(min(count, 8))]
    body = b"".join(b"--many" + eol + parts[i % len(parts)] for i in range(count))
    ctype = b'Content-Type: multipart/mixed; boundary="many"' + eol
    return outer + b"MIME-Version: 1.0" + eol + ctype + eol + body + b"--many--" + eol


EVIL_WORDS = (
    b"=?utf-8?b?!!!?=", b"=?utf-8?x?abc?=", b"=?utf-8?q??=", b"=??q?abc?=", b"=?utf-8?Q?",
    b"=?utf-8*pl?q?za=C5=BC=C3=B3?=", b"=?utf-8?q?=3D=3Futf-8=3Fq=3Fx=3F=3D?=",
    b"=?utf-8?q?a=0D=0ABcc:_victim@example.org?=", b"=?utf-8?q?a=00b?=",
    b"=?utf-8?b?" + base64.b64encode(b"x\r\nTo: victim@example.org\r\n\r\nbody") + b"?=",
    b"=?rot13?q?=FF?=", b"=?utf-16?b?2D3=?=", b"=?utf-8?q?=E2=80=AEfdp.exe?=",
    b"=?iso-2022-jp?b?GyRCJEgbKEI=?=", b"=?utf-8?b?" + b"QUFB" * 500 + b"?=",
    b"=?" + b"a" * 200 + b"?q?x?=", b"?=", b"=?utf-8?q?_?= =?utf-8?q?_?=",
    b"=?unknown-8bit?q?=FF?=", b"=?utf-7?q?+AGEAYgBj-?=", b"=?utf-8?b?7aCA?=",
    b"=?us-ascii?q?=80?=", b"=?utf-8?q?{{7*7}}?=", b"=?utf-8?q?=22=3Cevil@x.pl=3E=22?=",
    b"=?utf-8?b?Li4vLi4vZXRjL3Bhc3N3ZA==?=", b"=?utf-8?q?=5B4Dustry_=231=5D?=",
)  # fmt: skip
FILENAMES = (
    b"filename*=rot13''%FF%FE", b"filename*=utf-8''%C5", b"filename*=''%00%2F..%2Fetc",
    b"filename*0*=utf-8''%C5; filename*1*=%BB.txt", b'filename="=?utf-8?q?a=00.exe?="',
    b"filename*=x-unknown'pl'%E9", b'filename="' + b"A" * 4096 + b'"', b"filename*99=x",
    b"filename*0=a; filename*0=b", b"filename=", b"name*=utf-16''%FF",
)  # fmt: skip


def encoded_word_abuse(raw: bytes, rng: random.Random, size: int) -> bytes:
    """RFC 2047 and RFC 2231 trickery in subjects, names, addresses, IDs and file names."""
    head, body = split(raw)
    eol = _eol(raw)
    if rng.random() < 0.25:
        fname = rng.choice(FILENAMES)
        disposition = b"Content-Disposition: attachment; " + fname + eol
        found = re.search(rb"^content-disposition:[^\r\n]*\r?\n", raw, re.I | re.M)
        if found:
            return raw[: found.start()] + disposition + raw[found.end() :]
        return disposition + head + body
    count = amount(rng, min(size, 2_000))
    words = [rng.choice(EVIL_WORDS) for _ in range(min(count, 6))]
    sep = rng.choice((b" ", b"", b"\r\n ", b"\t"))
    text = sep.join(words[i % len(words)] for i in range(count))
    name = rng.choice(
        (b"Subject", b"From", b"To", b"Cc", b"Reply-To", b"Message-ID", b"References")
    )
    if name in (b"From", b"To", b"Cc", b"Reply-To"):
        text = rng.choice(
            (text + b" <jan@klient.pl>", b'"' + text + b'" <jan@klient.pl>', text + b"@klient.pl")
        )
    line = name + b": " + text + eol
    existing = re.search(rb"^" + name + rb":.*(?:\r?\n[ \t].*)*\r?\n", head, re.I | re.M)
    if existing:
        return head[: existing.start()] + line + head[existing.end() :] + body
    return line + head + body


GARBAGE = (
    b"\xff\xfe", b"\xc5\xbc\xc3\xb3\xc5\x82w", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80",
    b"\x80", b"\xe2\x80\xae", b"\xef\xbb\xbf", b"\xb3\xb1\xea", b"\x1b$B",
)  # fmt: skip


def eight_bit_header(raw: bytes, rng: random.Random, size: int) -> bytes:
    """Raw 8-bit bytes (invalid UTF-8, surrogates, overlongs, RLO) in header names and values."""
    head, body = split(raw)
    for _ in range(rng.choice((1, 2, 4))):
        span = _pick_field(head, rng)
        piece = rng.choice(GARBAGE) if rng.random() < 0.7 else rng.randbytes(rng.randrange(1, 16))
        if span is None:
            head = piece + b": x" + _eol(raw) + head
            continue
        pos = rng.randrange(span[0], max(span[0] + 1, span[1] - 1))
        head = _insert(head, pos, piece)
    return head + body


def line_endings(raw: bytes, rng: random.Random, size: int) -> bytes:
    """LF, CR or mixed line ends, a leading blank line, an mbox From_ line, a BOM."""
    action = rng.randrange(6)
    if action == 0:
        return raw.replace(b"\r\n", b"\n")
    if action == 1:
        return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r")
    if action == 2:
        local = random.Random(rng.getrandbits(64))  # one choice per line, from a single draw
        return re.sub(rb"\r?\n", lambda _: local.choice((b"\n", b"\r\n", b"\r")), raw)
    if action == 3:
        return rng.choice((b"\r\n", b"\n\n", b" \r\n")) + raw
    if action == 4:
        return b"From jan@klient.pl Mon Nov 30 10:00:00 2026" + _eol(raw) + raw
    return b"\xef\xbb\xbf" + raw


def header_garbage(raw: bytes, rng: random.Random, size: int) -> bytes:
    """Lines that are not header fields, odd names, and a missing header/body separator."""
    head, body = split(raw)
    eol = _eol(raw)
    action = rng.randrange(4)
    if action == 0:  # no blank line: the body runs into the header block
        return head.rstrip(b"\r\n") + eol + body
    if action == 1:
        return b" continued before any field" + eol + raw
    junk = rng.choice(
        (
            b"garbage line without colon", b": no name", b"Bad Name: x",
            b"X-" + b"A" * 5000 + b": v",
            b"Subject:", b"From:", b"To: ,,,", b"\tfolded", b"Content-Type:", b"Message-ID: <>",
            b"Message-ID: <" + b"a" * 300 + b"@x>", b"Date: Mon, 99 Foo 99999 99:99:99 +9999",
            b"Date: " + b"1" * 500, b"Return-Path: <>", b"Auto-Submitted: no", b"Received: ;",
        )
    )  # fmt: skip
    fields = header_fields(head)
    pos = rng.choice([s for s, _ in fields]) if fields else 0
    return _insert(head, pos, junk + eol) + body


HTML_UNITS = (
    b"<div>", b"<table><tr><td>", b"<a href='", b"<a ", b"<!--", b"<![CDATA[", b"</a", b"&#",
    b"&", b"<p>&nbsp;", b"<", b"<!", b"<?", b"<style>x{}", b"<script>", b"<br/>", b"<li>",
    b"<b><i><u>", b"&#x110000;", b"&#99999999999;", b"<img src=x onerror=alert(1)>",
)  # fmt: skip


def html_body(raw: bytes, rng: random.Random, size: int) -> bytes:
    """The text body replaced by hostile HTML: unclosed tags, deep nesting, bad entities."""
    outer, _ = _structure(raw)
    eol = _eol(raw)
    reps = amount(rng, min(size, 40_000))
    units = [rng.choice(HTML_UNITS) for _ in range(rng.choice((1, 1, 2, 3)))]
    html = b"".join(units[i % len(units)] for i in range(reps))
    charset = rng.choice((b"utf-8", b"windows-1250", b"utf-7"))
    ctype = b"Content-Type: text/html; charset=" + charset + eol
    return outer + ctype + eol + b"<html><body>" + html + eol


_ALL = (
    byte_flip, truncate, duplicate_header, inject_control, corrupt_boundary, swap_charset,
    corrupt_transfer_encoding, huge_header, deep_nesting, many_parts, encoded_word_abuse,
    eight_bit_header, line_endings, header_garbage, html_body,
)  # fmt: skip
MUTATORS: dict[str, Mutator] = {f.__name__: f for f in _ALL}


def mutate(raw: bytes, rng: random.Random, names: list[str], size: int) -> bytes:
    """Apply the named mutators in order; never more than MAX_OUTPUT bytes."""
    for name in names:
        raw = MUTATORS[name](raw, rng, size)[:MAX_OUTPUT]
    return raw


# -- pathological inputs (timed by tests/test_fuzz.py and bench.fuzz --pathological) ----------

_HEAD = _FROM + _DATE + b"Subject: test\r\nMessage-ID: <patho@klient.pl>\r\nMIME-Version: 1.0\r\n"


def _nested_multipart(depth: int, eol: bytes = b"\r\n") -> bytes:
    opening = [
        b'Content-Type: multipart/mixed; boundary="b%d"%s%s--b%d%s' % (i, eol, eol, i, eol)
        for i in range(depth)
    ]
    closing = [b"%s--b%d--%s" % (eol, i, eol) for i in reversed(range(depth))]
    inner = b"Content-Type: text/plain" + eol + eol + b"deep" + eol
    return _HEAD.replace(b"\r\n", eol) + b"".join(opening) + inner + b"".join(closing)


def _nested_rfc822(depth: int, eol: bytes = b"\r\n") -> bytes:
    level = b"Content-Type: message/rfc822" + eol + eol + b"From: a@b.pl" + eol
    return _HEAD.replace(b"\r\n", eol) + level * depth + eol + b"deep" + eol


def _addresses(count: int) -> bytes:
    return b",\r\n ".join(b"user%d@example.com" % i for i in range(count))


def _with_header(name: bytes, value: bytes) -> bytes:
    return _HEAD.replace(b"Subject: test\r\n", b"") + name + b": " + value + b"\r\n\r\nbody\r\n"


def _parts(count: int) -> bytes:
    part = b"--p\r\nContent-Type: text/plain\r\n\r\npart\r\n"
    ctype = b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n'
    return _HEAD + ctype + part * count + b"--p--\r\n"


def _html(unit: bytes, reps: int) -> bytes:
    return _HEAD + b"Content-Type: text/html\r\n\r\n" + unit * reps + b"\r\n"


PATHOLOGICAL: dict[str, Callable[[], bytes]] = {
    "10,000 MIME parts": lambda: _parts(10_000),
    "499 MIME parts (under the cap)": lambda: _parts(499),
    "5,000-level multipart nesting": lambda: _nested_multipart(5_000),
    "5,000-level message/rfc822 nesting": lambda: _nested_rfc822(5_000),
    "19-level multipart nesting (under the cap)": lambda: _nested_multipart(19),
    "1 MB Subject of encoded words": lambda: _with_header(
        b"Subject", b"=?utf-8?b?xbvDs8WCdw==?= " * 40_000
    ),
    "250 KB Subject of encoded words (under the cap)": lambda: _with_header(
        b"Subject", b"=?utf-8?b?xbvDs8WCdw==?= " * 9_900
    ),
    "100,000 To: addresses": lambda: _with_header(b"To", _addresses(100_000)),
    "9,500 To: addresses (under the cap)": lambda: _with_header(b"To", _addresses(9_500)),
    "24 MB text body on one line": lambda: _HEAD + b"\r\n" + b"a" * 24_000_000 + b"\r\n",
    "24 MB base64 attachment": lambda: (
        _HEAD
        + b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n--p\r\nContent-Type: text/plain\r\n'
        b"\r\nsee attachment\r\n--p\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b"QUFB" * 4_500_000 + b"\r\n--p--\r\n"
    ),
    # Found by fuzzing: these reach the parser or the HTML converter inside the caps.
    "5,000-level message/rfc822 nesting, CR line ends": lambda: _nested_rfc822(5_000, b"\r"),
    # One CRLF blank line inside (here the innermost body) keeps the header-size check quiet.
    "3,000-level multipart nesting, CR line ends": lambda: _nested_multipart(3_000, b"\r").replace(
        b"deep\r", b"deep\r\n\r\n"
    ),
    # The feedparser reads a multipart's Content-Transfer-Encoding through the header registry,
    # whose defect list grows by list concatenation: quadratic in the number of bad tokens.
    "multipart with a 250 KB Content-Transfer-Encoding of '@'": lambda: _with_header(
        b"Content-Transfer-Encoding", b"@" * 250_000
    ).replace(
        b"MIME-Version: 1.0\r\n",
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="p"\r\n',
    ),
    # The header block is capped, a part's headers are not; each of the parser's 4 reads of a
    # Content-Type runs the header registry again (long values are not memoised).
    "MIME part with a 1 MB Content-Type (250,000 parameters)": lambda: (
        _HEAD
        + b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n--p\r\n'
        + b"Content-Type: text/plain; "
        + b"a=b;" * 250_000
        + b"\r\n\r\nx\r\n--p--\r\n"
    ),
    "240 KB top-level Content-Type (60,000 parameters)": lambda: _with_header(
        b"Content-Type", b"text/plain; " + b"a=b;" * 60_000
    ),
    "HTML of 30,000 unclosed '<a ' tags (90 KB)": lambda: _html(b"<a ", 30_000),
}


# Timed by `--pathological` only: each has the root cause of a case tests/test_fuzz.py times,
# and a known-slow case costs CI the whole bound.
BENCH_ONLY = frozenset(
    {
        "3,000-level multipart nesting, CR line ends",
        "MIME part with a 1 MB Content-Type (250,000 parameters)",
        "240 KB top-level Content-Type (60,000 parameters)",
    }
)


# -- running one input --------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the pipeline made of one input."""

    status: str
    reason: str | None = None
    error: str | None = None  # traceback of an unexpected exception, stored on the inbound row
    escaped: str | None = None  # traceback of an exception that escaped process_pending
    pending: int = 0  # rows still pending after process_pending returned
    seconds: float = 0.0

    def problems(self) -> list[str]:
        """The fuzzing properties this outcome breaks (empty when it is fine)."""
        found = []
        if self.escaped:
            found.append("exception escaped process_pending")
        if self.status not in FINAL or self.pending:
            found.append(f"row left in status {self.status!r} ({self.pending} pending)")
        if self.status in {"quarantined", "ignored"} and not self.reason:
            found.append(f"{self.status} without a reason")
        if self.error:
            found.append("unexpected exception recorded on the row")
        return found

    def signature(self) -> str:
        """Exception type and innermost frame: one line per distinct bug."""
        text = self.escaped or self.error
        if not text:
            return "; ".join(self.problems()) or "ok"
        return traceback_signature(text)


_FRAME_RE = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)', re.M)


def traceback_signature(text: str) -> str:
    """'RecursionError at email/feedparser.py:383 _parsegen (via mailbot/mail/parse.py:...)'."""
    frames = _FRAME_RE.findall(text)
    lines = [ln for ln in text.strip().splitlines() if ln and not ln.startswith(" ")]
    exc = lines[-1].split(":", 1)[0] if lines else "?"

    def short(frame: tuple[str, str, str]) -> str:
        path = frame[0]
        for marker in ("/mailbot/", "/site-packages/", "/lib/python3"):
            if marker in path:
                path = path[path.index(marker) + 1 :]
                path = re.sub(r"^lib/python3\.\d+/", "", path)
                break
        return f"{path}:{frame[1]} {frame[2]}"

    if not frames:
        return exc
    site = short(frames[-1])
    ours = [f for f in frames if "/mailbot/" in f[0] and "/worker.py" not in f[0]]
    via = f" (via {short(ours[-1])})" if ours and ours[-1] != frames[-1] else ""
    return f"{exc} at {site}{via}"


class _Rollback(Exception):
    """Raised to undo one input's writes, so every input meets the same database."""


def run_one(ctx: Context, raw: bytes, now: datetime = NOW) -> Outcome:
    """Feed `raw` through accept + process_pending in a transaction that is rolled back."""
    store = ctx.store
    outcome = Outcome(status="?")
    try:
        with store.atomic():
            inbound_id, _ = accept(store, raw, source="fuzz", now=now)
            started = time.perf_counter()
            try:
                process_pending(ctx, now)
            except Exception:
                outcome.escaped = traceback.format_exc()
            outcome.seconds = time.perf_counter() - started
            row = store.inbound.get(inbound_id)
            if row is not None:
                outcome.status, outcome.reason, outcome.error = (
                    row["status"],
                    row["reason"],
                    row["error"],
                )
            outcome.pending = store.count("inbound", status="pending")
            raise _Rollback
    except _Rollback:
        pass
    return outcome


# Ticket #1, committed before fuzzing: seeds that reply to it (In-Reply-To, the subject tag,
# a bounce of it) reach the follow-up, agent and bounce paths instead of all opening tickets.
BASELINE = (
    _FROM + _DATE + b"Subject: Problem z dostawa\r\nMessage-ID: <baseline@klient.pl>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nDostawa nie dotar\xc5\x82a.\r\n"
)


def fuzz_context(directory: Path) -> Context:
    """A mailbot context on the shipped config, data under `directory`, ticket #1 in place."""
    ctx = open_context(config_module.load(write_config(directory)))
    accept(ctx.store, BASELINE, source="fuzz", now=NOW)
    process_pending(ctx, NOW)
    return ctx


def _serve(conn: Connection, directory: str) -> None:
    """Child process: run every input received on `conn`, answer with its Outcome."""
    logging.disable(logging.CRITICAL)  # quarantines are expected by the thousand here
    ctx = fuzz_context(Path(directory))
    conn.send("ready")
    served = 0
    while True:
        try:
            raw = conn.recv_bytes()
        except EOFError:
            break
        conn.send(run_one(ctx, raw))
        served += 1
        if served % 2_000 == 0:  # content-addressed attachment files pile up otherwise
            shutil.rmtree(ctx.data_dir / "attachments", ignore_errors=True)
    ctx.close()


class Worker:
    """A child process running inputs; an input that takes longer than `timeout` kills it."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="mailbot-fuzz-")
        self._generation = 0
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> None:
        self._generation += 1
        directory = Path(self._tmp.name) / str(self._generation)
        directory.mkdir()
        # spawn, not fork: the parent may run threads (pytest, Hypothesis) and fork copies locks.
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, str(directory)), daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        # Start-up (imports, config, migrations) must not count against the first input.
        if not parent.poll(120) or parent.recv() != "ready":
            raise RuntimeError("fuzz worker did not start")

    def run(self, raw: bytes, timeout: float) -> Outcome | None:
        """The outcome, or None when the input did not finish within `timeout` seconds."""
        if self._process is None or not self._process.is_alive():
            self._start()
        assert self._conn is not None and self._process is not None
        self._conn.send_bytes(raw)
        if self._conn.poll(timeout):
            try:
                return self._conn.recv()
            except EOFError:  # the child died (memory, a C-level crash): report as a hang
                pass
        self._kill()
        return None

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def close(self) -> None:
        self._kill()
        self._tmp.cleanup()


def load_seeds(corpus: Path | None) -> list[tuple[str, bytes]]:
    """(name, raw) of every corpus message (sorted, so runs are reproducible) and the builtins."""
    seeds = [(f"builtin:{name}", raw) for name, raw in BUILTIN.items()]
    if corpus and (corpus / "INVENTORY.json").is_file():
        inventory = json.loads((corpus / "INVENTORY.json").read_text())["files"]
        for rel in sorted(inventory):
            if inventory[rel].get("kind") == "message":
                seeds.append((rel, (corpus / rel).read_bytes()))
    return seeds
