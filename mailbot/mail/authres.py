"""Authentication-Results (RFC 8601): the authserv-id and each method's result and properties.

A small grammar rather than the `authres` package: that one (last released 2019) rejects what
Microsoft 365 writes (no authserv-id, `action=none` without a ptype, a trailing `;`). Comments
and quoted strings are read as such, so text a sender controls inside them (an SMTP envelope
sender `"dmarc=pass"@evil.example`, a DKIM `header.i=dmarc=pass@evil.example`, an SPF comment
`(dmarc=pass)`) is a property value or nothing, never a result. A value that does not parse as
a whole gives None: it proves nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# method[/version] = result, then reason= and ptype.property= pairs (Microsoft adds action=).
KEY = r"[A-Za-z0-9][A-Za-z0-9_\-]*(?:\s*\.\s*[A-Za-z0-9][A-Za-z0-9_\-]*)?(?:\s*/\s*\d+)?"
VALUE = r'(?:"(?:[^"\\]|\\.)*"|[^\s";])+'  # quoted parts and bare characters, "=" too
PAIR_RE = re.compile(rf"\s*({KEY})\s*=\s*({VALUE})?")
AUTHSERV_RE = re.compile(r'^\s*("(?:[^"\\]|\\.)*"|[^\s";=]+)(?:\s+\d+)?\s*$')


@dataclass(frozen=True)
class Result:
    """One method's result: `dmarc=pass header.from=example.com` → ("dmarc", "pass", {...})."""

    method: str
    result: str
    properties: dict[str, str] = field(default_factory=dict)  # "header.from" → "example.com"


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str  # "" when the header has none (Microsoft 365 writes it so)
    results: tuple[Result, ...]

    def of(self, method: str) -> list[Result]:
        return [r for r in self.results if r.method == method]


def _uncomment(value: str) -> str | None:
    """The value with every (nested) comment replaced by a space; None when unbalanced."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if quoted:
            quoted = char != '"'
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return None
            depth -= 1
            if depth == 0:
                out.append(" ")
        elif depth == 0:
            quoted = char == '"'
            out.append(char)
    return None if depth or quoted else "".join(out)


def _split(value: str) -> list[str]:
    """The value cut at each `;` outside quoted strings (comments are gone already)."""
    parts, start, quoted, escaped = [], 0, False, False
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _resinfo(text: str) -> Result | None:
    pairs, pos = [], 0
    while pos < len(text.rstrip()):
        match = PAIR_RE.match(text, pos)
        if not match:
            return None
        key = re.sub(r"\s+", "", match.group(1)).lower()
        pairs.append((key, _unquote(match.group(2) or "")))
        pos = match.end()
    if not pairs:
        return None
    (method, result), properties = pairs[0], dict(reversed(pairs[1:]))  # the first one wins
    return Result(method.split("/")[0], result.lower(), properties)


def parse(value: str) -> AuthResults | None:
    """One Authentication-Results value, or None when it does not parse."""
    text = _uncomment(value)
    if text is None:
        return None
    head, *rest = _split(text)
    authserv = AUTHSERV_RE.match(head)
    if authserv:
        authserv_id = _unquote(authserv.group(1)).lower()
    elif "=" in head:
        authserv_id, rest = "", [head, *rest]  # Microsoft 365: results without an authserv-id
    else:
        return None
    results = []
    for part in rest:
        if not part.strip() or part.strip().lower() == "none":
            continue  # a trailing ";" (Microsoft), or RFC 8601's "no result"
        result = _resinfo(part)
        if result is None:
            return None
        results.append(result)
    return AuthResults(authserv_id, tuple(results))


def domain_of(value: str) -> str:
    """The domain of a `header.from` value: `example.com`, `user@example.com`, quoted or not."""
    return value.rpartition("@")[2].strip().strip(".").lower()
