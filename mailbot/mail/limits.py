"""Cheap checks on raw bytes before parsing: size, header block, MIME part count and depth.

A pathological message (a megabyte of headers, thousands of parts, nesting thousands deep)
would keep the parser busy for a long time or exhaust its recursion; these scans are linear
and stop it before parsing starts, so it is quarantined with a clear reason instead.
"""

from __future__ import annotations

import re

HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
# The parser ends a line at CR, LF or CRLF, so "start of line" here is after any of them.
LINE_START = rb"(?<![^\r\n])"
# A multipart declaration or a message/* part (each nests one level deeper), and delimiter lines.
BOUNDARY_RE = re.compile(rb"boundary\s*=\s*(?:\"([^\"\r\n]{1,200})\"|([^\s;\"]{1,200}))", re.I)
NESTED_MESSAGE_RE = re.compile(LINE_START + rb"content-type:\s*message/(?:rfc822|global)\b", re.I)
DELIMITER_RE = re.compile(LINE_START + rb"--([^\r\n]{1,200}?)(--)?[ \t]*(?=[\r\n]|$)")
# A Content-* field with its continuation lines: the parser reads these through the stdlib
# header parser, which is slow (sometimes quadratic) on long values, in every part.
MIME_FIELD_RE = re.compile(LINE_START + rb"content-[\w-]{0,40}:(?:[^\r\n]|\r?\n[ \t])*", re.I)
MAX_MIME_FIELD = 8192


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
    if b"content-" in lowered:
        for field in MIME_FIELD_RE.finditer(raw):
            if field.end() - field.start() > MAX_MIME_FIELD:
                name = field.group(0).split(b":", 1)[0].decode("ascii", "replace")
                return f"{name} field longer than {MAX_MIME_FIELD} bytes"
    boundaries = (
        {m.group(1) or m.group(2) for m in BOUNDARY_RE.finditer(raw)}
        if b"boundary" in lowered
        else set()
    )
    nested = len(NESTED_MESSAGE_RE.findall(raw)) if b"message/" in lowered else 0
    parts = depth = 0
    open_multiparts: list[bytes] = []
    for match in DELIMITER_RE.finditer(raw) if boundaries else ():
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
