"""Cheap checks on raw bytes before parsing: size, header block, MIME part count and depth.

A pathological message (a megabyte of headers, thousands of parts, nesting thousands deep)
would keep the parser busy for a long time or exhaust its recursion; these scans are linear
and stop it before parsing starts, so it is quarantined with a clear reason instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# The blank line that ends a header block (intake, limits and parse look for it).
HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
# Patterns start with a literal ("content-", "--") so the regex engine can skip ahead to it;
# whether the match starts a line (after CR or LF, as the parser sees lines) is checked after.
BOUNDARY_RE = re.compile(rb"boundary\s*=\s*(?:\"([^\"\r\n]{1,200})\"|([^\s;\"]{1,200}))", re.I)
# A Content-* field with its continuation lines, matched on the lower-cased copy.
MIME_FIELD_RE = re.compile(rb"content-[\w-]{0,40}:(?:[^\r\n]|\r?\n[ \t])*")
NESTED_MESSAGE_RE = re.compile(rb"content-type:\s*message/(?:rfc822|global)\b")
DELIMITER_RE = re.compile(rb"--([^\r\n]{1,200}?)(--)?[ \t]*(?=[\r\n]|$)")
# The stdlib header parser is slow (sometimes quadratic) on long Content-* values, and the
# parser reads them in every part.
MAX_MIME_FIELD = 8192


def _line_starts(pattern: re.Pattern[bytes], data: bytes) -> Iterator[re.Match[bytes]]:
    """Matches of `pattern` that begin a line."""
    for match in pattern.finditer(data):
        start = match.start()
        if start == 0 or data[start - 1] in b"\r\n":
            yield match


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} KB"


def check(
    raw: bytes, *, max_size: int, max_header: int, max_parts: int, max_depth: int
) -> str | None:
    """Why this message is too big or too complex to parse, or None when it may be parsed."""
    if len(raw) > max_size:
        return f"message of {_size(len(raw))} is larger than the {_size(max_size)} limit"
    end = HEADER_END_RE.search(raw, 0, max_header + 4)
    if end is None and len(raw) > max_header:
        return f"header block larger than {_size(max_header)}"
    lowered = raw.lower()  # one copy, then plain substring tests skip most regex scans
    for field in _line_starts(MIME_FIELD_RE, lowered):
        if field.end() - field.start() > MAX_MIME_FIELD:
            name = field.group(0).split(b":", 1)[0].decode("ascii", "replace")
            return f"{name.title()} field longer than {MAX_MIME_FIELD} bytes"
    boundaries = (
        {m.group(1) or m.group(2) for m in BOUNDARY_RE.finditer(raw)}
        if b"boundary" in lowered
        else set()
    )
    nested = sum(1 for _ in _line_starts(NESTED_MESSAGE_RE, lowered))
    parts = depth = 0
    open_multiparts: list[bytes] = []
    for match in _line_starts(DELIMITER_RE, raw) if boundaries else ():
        boundary = match.group(1)
        if boundary not in boundaries:
            continue
        if boundary in open_multiparts:
            # A delimiter of an outer multipart ends whatever was open inside it (even when
            # the inner closing line is missing); a closing delimiter ends it too.
            keep = open_multiparts.index(boundary) + (0 if match.group(2) else 1)
            del open_multiparts[keep:]
        elif not match.group(2):
            open_multiparts.append(boundary)
            depth = max(depth, len(open_multiparts))
        if match.group(2):
            continue
        parts += 1
        if parts > max_parts:
            return f"more than {max_parts} MIME parts"
    if depth + nested > max_depth:
        return f"MIME nesting {depth + nested} levels deep, more than {max_depth}"
    return None
